using BenchmarkDotNet.Attributes;
using PosteriorGpu.Bench.Harness;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Gemm;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Bench.Kernels;

/// <summary>
/// Square GEMM on the default device (2 S^3 flops per launch), beside the C# reference (naive, in
/// double) and a Parallel.For i-k-j loop in float (CPU runs only). Napkin math: the CPU
/// accelerator's register-tile variant reaches a few GFLOP/s on 2 cores; an H100 does ~50 TFLOP/s
/// fp32 at best.
/// </summary>
[MemoryDiagnoser]
public class GemmBench : IThroughput
{
    private GpuDevice device = null!;
    private Tensor a = null!, b = null!, c = null!;
    private float[] ha = [], hb = [], hc = [];

    /// <summary>Edge of the square matrices.</summary>
    [ParamsSource(nameof(Sizes))]
    public int S { get; set; } = 256;

    /// <summary>Sizes by mode and device.</summary>
    public static IEnumerable<int> Sizes() => BenchMode.Pick([64], [256, 512], [512, 2048]);

    [GlobalSetup]
    public void Setup()
    {
        device = GpuDevice.Open();
        ha = HostLoops.Random(S * S, 1);
        hb = HostLoops.Random(S * S, 2);
        hc = new float[S * S];
        a = Tensor.FromHost(device, ha, S, S);
        b = Tensor.FromHost(device, hb, S, S);
        c = Tensor.Empty(device, S, S);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        a.Dispose(); b.Dispose(); c.Dispose();
        device.Dispose();
    }

    [Benchmark]
    public void RegisterTile()
    {
        Gemm.Run(a, false, b, false, c, 1f, 0f, null, GemmVariant.RegisterTile);
        device.Synchronize();
    }

    /// <summary>What Gemm.Run picks on this device.</summary>
    [Benchmark]
    public void Auto()
    {
        Gemm.Run(a, false, b, false, c);
        device.Synchronize();
    }

    [Benchmark]
    public void AutoTransposedB()
    {
        Gemm.Run(a, false, b, true, c);
        device.Synchronize();
    }

    /// <summary>The kernel's specification: a naive triple loop in double, one thread.</summary>
    [Benchmark(Baseline = true)]
    public void GemmReference() => Gemm.Reference(ha, false, hb, false, hc, 1, S, S, S);

    /// <summary>The textbook parallel loop: rows in parallel, i-k-j order, float.</summary>
    [Benchmark]
    public void GemmParallelLoop()
    {
        int n = S;
        HostLoops.For(n, 8, (r0, r1) =>
        {
            for (int i = r0; i < r1; i++)
            {
                var row = hc.AsSpan(i * n, n);
                row.Clear();
                for (int k = 0; k < n; k++)
                {
                    float aik = ha[i * n + k];
                    var bk = hb.AsSpan(k * n, n);
                    for (int j = 0; j < n; j++) row[j] += aik * bk[j];
                }
            }
        });
    }

    /// <inheritdoc/>
    public Work? WorkOf(string benchmark) => Work.Flops(2.0 * S * S * S);
}

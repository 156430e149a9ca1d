using BenchmarkDotNet.Attributes;
using PosteriorGpu.Bench.Harness;
using PosteriorGpu.Kernels.Conv;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Bench.Kernels;

/// <summary>
/// A U-Net-sized 3x3 convolution, 64 -> 64 channels at 32x32, with the ResnetBlock2D epilogue
/// (bias, time-embedding add, residual, scale): 2 * N * 64 * 1024 * 576 flops per launch (302 MFLOP
/// at N = 4), beside the C# reference (direct, in double) and a Parallel.For direct loop in float.
/// </summary>
[MemoryDiagnoser]
public class Conv2dBench : IThroughput
{
    private const int C = 64, S = 32;
    private GpuDevice device = null!;
    private Tensor x = null!, w = null!, bias = null!, add = null!, residual = null!, y = null!;
    private float[] hx = [], hw = [], hbias = [], hy = [];

    /// <summary>Images per launch.</summary>
    [ParamsSource(nameof(Batches))]
    public int N { get; set; } = 4;

    /// <summary>Batch by mode and device.</summary>
    public static IEnumerable<int> Batches() => BenchMode.Pick([1], [4], [4, 64]);

    [GlobalSetup]
    public void Setup()
    {
        device = GpuDevice.Open();
        hx = HostLoops.Random(N * C * S * S, 1);
        hw = HostLoops.Random(C * C * 9, 2);
        hbias = HostLoops.Random(C, 3);
        hy = new float[N * C * S * S];
        x = Tensor.FromHost(device, hx, N, C, S, S);
        w = Tensor.FromHost(device, hw, C, C, 3, 3);
        bias = Tensor.FromHost(device, hbias, C);
        add = Tensor.FromHost(device, HostLoops.Random(N * C, 4), N, C);
        residual = Tensor.FromHost(device, HostLoops.Random(N * C * S * S, 5), N, C, S, S);
        y = Tensor.Empty(device, N, C, S, S);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var t in new[] { x, w, bias, add, residual, y }) t.Dispose();
        device.Dispose();
    }

    [Benchmark]
    public void Conv3x3()
    {
        Conv2d.Run(x, w, bias, y, Conv2dParams.Same(1, 1));
        device.Synchronize();
    }

    [Benchmark]
    public void Conv3x3WithResnetEpilogue()
    {
        Conv2d.Run(x, w, bias, y, Conv2dParams.Same(1, 1), add, residual, 0.70710678f);
        device.Synchronize();
    }

    /// <summary>The kernel's specification: direct convolution in double, one thread.</summary>
    [Benchmark(Baseline = true)]
    public void Conv3x3Reference() => Conv2d.Reference(hx, N, C, S, S, hw, C, 3, 3, hbias, hy, Conv2dParams.Same(1, 1));

    /// <summary>Direct convolution in float, output planes (n, co) in parallel, input row loops innermost.</summary>
    [Benchmark]
    public void Conv3x3ParallelLoop() =>
        HostLoops.For(N * C, 1, (p0, p1) =>
        {
            for (int p = p0; p < p1; p++)
            {
                int n = p / C, co = p % C;
                var o = hy.AsSpan(p * S * S, S * S);
                o.Fill(hbias[co]);
                for (int ci = 0; ci < C; ci++)
                {
                    var input = hx.AsSpan((n * C + ci) * S * S, S * S);
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++)
                        {
                            float wv = hw[((co * C + ci) * 3 + ky) * 3 + kx];
                            for (int oy = 0; oy < S; oy++)
                            {
                                int iy = oy + ky - 1;
                                if (iy < 0 || iy >= S) continue;
                                int lo = Math.Max(0, 1 - kx), hi = Math.Min(S, S + 1 - kx);
                                for (int ox = lo; ox < hi; ox++) o[oy * S + ox] += wv * input[iy * S + ox + kx - 1];
                            }
                        }
                }
            }
        });

    /// <inheritdoc/>
    public Work? WorkOf(string benchmark) => Work.Flops(2.0 * N * C * S * S * C * 9);
}

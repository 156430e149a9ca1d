using BenchmarkDotNet.Attributes;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Gemm;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Bench.Kernels;

/// <summary>
/// Square GEMM on the default device (2 S^3 flops per launch). Napkin math: the CPU accelerator's
/// register-tile variant reaches a few GFLOP/s on 2 cores; an H100 does ~50 TFLOP/s fp32 at best.
/// </summary>
[MemoryDiagnoser]
public class GemmBench
{
    private GpuDevice device = null!;
    private Tensor a = null!, b = null!, c = null!;

    /// <summary>Edge of the square matrices.</summary>
    [Params(256, 512)]
    public int S { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        device = GpuDevice.Open();
        var rng = new System.Random(1);
        float[] Fill() => Enumerable.Range(0, S * S).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        a = Tensor.FromHost(device, Fill(), S, S);
        b = Tensor.FromHost(device, Fill(), S, S);
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

    [Benchmark(Baseline = true)]
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
}

using BenchmarkDotNet.Attributes;
using PosteriorGpu.Kernels.Conv;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Bench.Kernels;

/// <summary>
/// A U-Net-sized 3x3 convolution, 64 -> 64 channels at 32x32, batch 4, with the ResnetBlock2D
/// epilogue (bias, time-embedding add, residual, scale): 2 * 4 * 64 * 1024 * 576 = 302 MFLOP per launch.
/// </summary>
[MemoryDiagnoser]
public class Conv2dBench
{
    private GpuDevice device = null!;
    private Tensor x = null!, w = null!, bias = null!, add = null!, residual = null!, y = null!;

    [GlobalSetup]
    public void Setup()
    {
        device = GpuDevice.Open();
        var rng = new System.Random(1);
        float[] Fill(int n) => Enumerable.Range(0, n).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        x = Tensor.FromHost(device, Fill(4 * 64 * 32 * 32), 4, 64, 32, 32);
        w = Tensor.FromHost(device, Fill(64 * 64 * 9), 64, 64, 3, 3);
        bias = Tensor.FromHost(device, Fill(64), 64);
        add = Tensor.FromHost(device, Fill(4 * 64), 4, 64);
        residual = Tensor.FromHost(device, Fill(4 * 64 * 32 * 32), 4, 64, 32, 32);
        y = Tensor.Empty(device, 4, 64, 32, 32);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var t in new[] { x, w, bias, add, residual, y }) t.Dispose();
        device.Dispose();
    }

    [Benchmark(Baseline = true)]
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
}

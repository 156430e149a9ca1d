using BenchmarkDotNet.Attributes;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Fft;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Bench.Kernels;

/// <summary>
/// Batched 2-D FFT, each variant of the passes, out of place. Napkin math: two passes each read
/// and write the whole tensor once, so 4 x 4 bytes x N H W 2 of traffic; on an H100 (about
/// 3 TB/s) [16, 1, 256, 256, 2] is bounded near 11 us, measured about 83 us for the shared variant.
/// </summary>
[MemoryDiagnoser]
public class FftBench
{
    private GpuDevice device = null!;
    private Tensor x = null!;
    private Tensor y = null!;

    /// <summary>Image side (H = W).</summary>
    [Params(128, 256)]
    public int Size { get; set; }

    /// <summary>Items in the batch.</summary>
    [Params(8)]
    public int Batch { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        device = GpuDevice.Open();
        x = Tensor.Zeros(device, Batch, 1, Size, Size, 2);
        y = Tensor.Zeros(device, Batch, 1, Size, Size, 2);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        x.Dispose();
        y.Dispose();
        device.Dispose();
    }

    [Benchmark(Baseline = true)]
    public void Auto()
    {
        Fft2d.Forward(x, y);
        device.Synchronize();
    }

    [Benchmark]
    public void PerLine()
    {
        Fft2d.Run(x, y, inverse: false, FftNorm.Backward, Fft2d.Variant.PerLine);
        device.Synchronize();
    }

    [Benchmark]
    public void Shared()
    {
        Fft2d.Run(x, y, inverse: false, FftNorm.Backward, Fft2d.Variant.Shared);
        device.Synchronize();
    }
}

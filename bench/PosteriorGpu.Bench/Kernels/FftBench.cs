using BenchmarkDotNet.Attributes;
using PosteriorGpu.Bench.Harness;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Fft;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Bench.Kernels;

/// <summary>
/// Batched 2-D FFT, each variant of the passes, out of place. Napkin math: two passes each read
/// and write the whole tensor once, so 4 x 4 bytes x N H W 2 of traffic; on an H100 (about
/// 3 TB/s) [16, 1, 256, 256, 2] is bounded near 11 us, measured about 83 us for the shared variant.
/// GB/s counts that traffic. Beside it the C# reference (a naive DFT per row and column in double).
/// </summary>
[MemoryDiagnoser]
public class FftBench : IThroughput
{
    private GpuDevice device = null!;
    private Tensor x = null!;
    private Tensor y = null!;

    /// <summary>Image side (H = W).</summary>
    [ParamsSource(nameof(Sizes))]
    public int Size { get; set; } = 128;

    /// <summary>Sides by mode and device.</summary>
    public static IEnumerable<int> Sizes() => BenchMode.Pick([32], [128], [128, 256]);

    /// <summary>Items in the batch.</summary>
    public int Batch => BenchMode.Smoke ? 2 : 8;

    private float[] hx = [], hy = [];

    [GlobalSetup]
    public void Setup()
    {
        device = GpuDevice.Open();
        hx = HostLoops.Random(Batch * Size * Size * 2, 1);
        hy = new float[hx.Length];
        x = Tensor.FromHost(device, hx, Batch, 1, Size, Size, 2);
        y = Tensor.Zeros(device, Batch, 1, Size, Size, 2);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        x.Dispose();
        y.Dispose();
        device.Dispose();
    }

    [Benchmark]
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

    /// <summary>The kernel's specification: naive row and column DFTs in double, one thread.</summary>
    [Benchmark(Baseline = true)]
    public void FftReference() => Fft2d.Reference(hx, hy, [Batch, 1, Size, Size, 2], inverse: false);

    /// <inheritdoc/>
    public Work? WorkOf(string benchmark) => Work.Bytes(32.0 * Batch * Size * Size);
}

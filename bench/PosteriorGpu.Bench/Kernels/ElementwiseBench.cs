using BenchmarkDotNet.Attributes;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Reductions;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Bench.Kernels;

/// <summary>
/// The memory-bound sampler updates on the default device. Napkin math: the fused Langevin step
/// reads x, s, g and writes x (16 bytes per element); at 3 TB/s (H100 copy bandwidth) 2^24
/// elements take about 90 us; the noise (one Philox block and a Box-Muller per element) must hide
/// under that.
/// </summary>
[MemoryDiagnoser]
public class ElementwiseBench
{
    private GpuDevice device = null!;
    private Tensor x = null!, s = null!, g = null!, sums = null!;
    private ulong step;

    /// <summary>Elements per tensor.</summary>
    [Params(1 << 20, 1 << 24)]
    public int N { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        device = GpuDevice.Open();
        var rng = new System.Random(1);
        float[] Fill() => Enumerable.Range(0, N).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        x = Tensor.FromHost(device, Fill(), 16, N / 16);
        s = Tensor.FromHost(device, Fill(), 16, N / 16);
        g = Tensor.FromHost(device, Fill(), 16, N / 16);
        sums = Tensor.Empty(device, 16);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        x.Dispose(); s.Dispose(); g.Dispose(); sums.Dispose();
        device.Dispose();
    }

    /// <summary>x += h (s + g) + sqrt(2h) z, z drawn in the kernel: 16 bytes per element.</summary>
    [Benchmark(Baseline = true)]
    public void LangevinStep()
    {
        PosteriorGpu.Kernels.Elementwise.LangevinStep.Run(x, s, g, 1e-4f, new RandomDraw(1, 0, step++));
        device.Synchronize();
    }

    /// <summary>y = a x + b y: 12 bytes per element, no noise.</summary>
    [Benchmark]
    public void Axpby()
    {
        PosteriorGpu.Kernels.Elementwise.Axpby.Run(0.5f, s, 0.5f, x);
        device.Synchronize();
    }

    /// <summary>A DDIM step with eta = 1 (noise drawn): 12 bytes per element.</summary>
    [Benchmark]
    public void DdimStep()
    {
        DiffusionStep.Run(x, s, DiffusionStep.Ddim(0.5, 0.6, 1.0), new RandomDraw(1, 1, step++));
        device.Synchronize();
    }

    /// <summary>Squared norm per batch item: 4 bytes per element.</summary>
    [Benchmark]
    public void SquaredNorm()
    {
        BatchReduce.SquaredNorm(x, sums);
        device.Synchronize();
    }
}

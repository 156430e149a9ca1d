using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using PosteriorGpu.Bench.Harness;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Reductions;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Bench.Kernels;

/// <summary>
/// The memory-bound sampler updates on the default device, each beside its plain C# reference and
/// a Parallel.For loop (CPU runs only). Napkin math: the fused Langevin step reads
/// x, s, g and writes x (16 bytes per element); at 3 TB/s (H100 copy bandwidth) 2^24 elements take
/// about 90 us; the noise (one Philox block and a Box-Muller per element) must hide under that.
/// </summary>
[MemoryDiagnoser]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class ElementwiseBench : IThroughput
{
    private GpuDevice device = null!;
    private Tensor x = null!, s = null!, g = null!, sums = null!;
    private float[] hx = [], hs = [], hg = [];
    private ulong step;

    /// <summary>Elements per tensor.</summary>
    [ParamsSource(nameof(Sizes))]
    public int N { get; set; } = 1 << 20;

    /// <summary>Sizes by mode and device.</summary>
    public static IEnumerable<int> Sizes() => BenchMode.Pick([1 << 16], [1 << 22], [1 << 20, 1 << 24, 1 << 26]);

    [GlobalSetup]
    public void Setup()
    {
        device = GpuDevice.Open();
        hx = HostLoops.Random(N, 1);
        hs = HostLoops.Random(N, 2);
        hg = HostLoops.Random(N, 3);
        x = Tensor.FromHost(device, hx, 16, N / 16);
        s = Tensor.FromHost(device, hs, 16, N / 16);
        g = Tensor.FromHost(device, hg, 16, N / 16);
        sums = Tensor.Empty(device, 16);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        x.Dispose(); s.Dispose(); g.Dispose(); sums.Dispose();
        device.Dispose();
    }

    /// <summary>x += h (s + g) + sqrt(2h) z, z drawn in the kernel: 16 bytes per element.</summary>
    [Benchmark, BenchmarkCategory("langevin")]
    public void LangevinStep()
    {
        PosteriorGpu.Kernels.Elementwise.LangevinStep.Run(x, s, g, 1e-4f, new RandomDraw(1, 0, step++));
        device.Synchronize();
    }

    /// <summary>The same update, the kernel's C# reference (one thread).</summary>
    [Benchmark(Baseline = true), BenchmarkCategory("langevin")]
    public void LangevinReference() =>
        PosteriorGpu.Kernels.Elementwise.LangevinStep.Reference(hx, hs, hg, 1e-4f, new RandomDraw(1, 0, step++));

    /// <summary>The same update, a Parallel.For over chunks.</summary>
    [Benchmark, BenchmarkCategory("langevin")]
    public void LangevinParallelLoop()
    {
        var draw = new RandomDraw(1, 0, step++);
        float h = 1e-4f, noise = MathF.Sqrt(2 * h);
        HostLoops.For(N, 1 << 16, (a, b) =>
        {
            for (int i = a; i < b; i++) hx[i] += h * (hs[i] + hg[i]) + noise * draw.Normal(i);
        });
    }

    /// <summary>y = a x + b y: 12 bytes per element, no noise.</summary>
    [Benchmark, BenchmarkCategory("axpby")]
    public void Axpby()
    {
        PosteriorGpu.Kernels.Elementwise.Axpby.Run(0.5f, s, 0.5f, x);
        device.Synchronize();
    }

    /// <summary>The same, the kernel's C# reference (one thread).</summary>
    [Benchmark(Baseline = true), BenchmarkCategory("axpby")]
    public void AxpbyReference() => PosteriorGpu.Kernels.Elementwise.Axpby.Reference(0.5f, hs, 0.5f, hx);

    /// <summary>The same, a Parallel.For over chunks.</summary>
    [Benchmark, BenchmarkCategory("axpby")]
    public void AxpbyParallelLoop() =>
        HostLoops.For(N, 1 << 16, (a, b) =>
        {
            for (int i = a; i < b; i++) hx[i] = 0.5f * hs[i] + 0.5f * hx[i];
        });

    /// <summary>A DDIM step with eta = 1 (noise drawn): 12 bytes per element.</summary>
    [Benchmark, BenchmarkCategory("ddim")]
    public void DdimStep()
    {
        DiffusionStep.Run(x, s, DiffusionStep.Ddim(0.5, 0.6, 1.0), new RandomDraw(1, 1, step++));
        device.Synchronize();
    }

    /// <summary>The same, the kernel's C# reference (one thread).</summary>
    [Benchmark(Baseline = true), BenchmarkCategory("ddim")]
    public void DdimStepReference() => DiffusionStep.Reference(hx, hs, DiffusionStep.Ddim(0.5, 0.6, 1.0), new RandomDraw(1, 1, step++));

    /// <summary>Squared norm per batch item: 4 bytes per element.</summary>
    [Benchmark, BenchmarkCategory("norm")]
    public void SquaredNorm()
    {
        BatchReduce.SquaredNorm(x, sums);
        device.Synchronize();
    }

    /// <summary>The same, the kernel's C# reference (one thread).</summary>
    [Benchmark(Baseline = true), BenchmarkCategory("norm")]
    public void SquaredNormReference()
    {
        var result = new float[16];
        BatchReduce.Reference(BatchReduce.Op.SquaredNorm, hx, default, 16, result);
    }

    /// <inheritdoc/>
    public Work? WorkOf(string benchmark) => benchmark switch
    {
        _ when benchmark.StartsWith("Langevin") => Work.Bytes(16.0 * N),
        _ when benchmark.StartsWith("Axpby") || benchmark.StartsWith("Ddim") => Work.Bytes(12.0 * N),
        _ => Work.Bytes(4.0 * N),
    };
}

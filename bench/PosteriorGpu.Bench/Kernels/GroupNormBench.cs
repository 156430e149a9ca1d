using BenchmarkDotNet.Attributes;
using PosteriorGpu.Bench.Harness;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Norm;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Bench.Kernels;

/// <summary>
/// GroupNorm+SiLU on a U-Net-sized activation, [8, 128, 32, 32] with 32 groups (4 MiB). Napkin math:
/// the fused variant reads x twice from DRAM/L2 (statistics) and once more to normalise and writes y
/// once: about 16 MiB of traffic, ~8 us at an H100's ~2 TB/s if the reads hit DRAM. GB/s counts the
/// minimum traffic (read x once, write y once: 8 bytes per element). Beside it the C# reference
/// (two passes in double, one thread).
/// </summary>
public class GroupNormBench : IThroughput
{
    private GpuDevice device = null!;
    private Tensor x = null!, gamma = null!, beta = null!, y = null!;
    private float[] hx = [], hgamma = [], hbeta = [], hy = [];
    private const int C = 128, S = 32, Groups = 32;

    /// <summary>Images per launch.</summary>
    [ParamsSource(nameof(Batches))]
    public int N { get; set; } = 8;

    /// <summary>Batch by mode and device.</summary>
    public static IEnumerable<int> Batches() => BenchMode.Pick([1], [8], [8, 64]);

    [GlobalSetup]
    public void Setup()
    {
        device = GpuDevice.Open();
        hx = HostLoops.Random(N * C * S * S, 1);
        hgamma = HostLoops.Random(C, 2);
        hbeta = HostLoops.Random(C, 3);
        hy = new float[hx.Length];
        x = Tensor.FromHost(device, hx, N, C, S, S);
        gamma = Tensor.FromHost(device, hgamma, C);
        beta = Tensor.FromHost(device, hbeta, C);
        y = Tensor.Empty(device, N, C, S, S);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var t in new[] { x, gamma, beta, y }) t.Dispose();
        device.Dispose();
    }

    /// <summary>What Run picks on this device.</summary>
    [Benchmark]
    public void Auto()
    {
        GroupNorm.Run(x, Groups, gamma, beta, 1e-5f, y, silu: true);
        device.Synchronize();
    }

    /// <summary>Chunk statistics, merge, normalise: three barrier-free launches.</summary>
    [Benchmark]
    public void Chunked()
    {
        GroupNorm.RunChunked(x, N * Groups, C / Groups, S * S, gamma, beta, 1e-5f, y, true);
        device.Synchronize();
    }

    /// <summary>One launch, one thread group per (n, group), shared-memory reductions (GPU only: barriers).</summary>
    [Benchmark]
    public void Fused()
    {
        if (device.IsCpu) return;
        GroupNorm.RunFused(x, N * Groups, GroupNorm.GroupThreads(device), Groups, C / Groups, S * S, gamma, beta, 1e-5f, y, true);
        device.Synchronize();
    }

    /// <summary>The kernel's specification: two passes in double per (item, group), one thread.</summary>
    [Benchmark(Baseline = true)]
    public void GroupNormReference() => GroupNorm.Reference(hx, N, C, S * S, Groups, hgamma, hbeta, 1e-5f, hy, true);

    /// <inheritdoc/>
    public Work? WorkOf(string benchmark) => benchmark == nameof(Fused) && !BenchMode.OnGpu ? null : Work.Bytes(8.0 * N * C * S * S);
}

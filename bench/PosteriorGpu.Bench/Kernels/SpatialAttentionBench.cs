using BenchmarkDotNet.Attributes;
using PosteriorGpu.Kernels.Attention;
using PosteriorGpu.Bench.Harness;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Bench.Kernels;

/// <summary>
/// Self-attention over a 32x32 feature map (P = 1024 tokens), C = 128, one head, batch 4: two P x P x C
/// products, 4 * 4 * 1024^2 * 128 = 2.1 GFLOP per launch. Napkin math: the one-thread-per-query kernel
/// is bound by FMA throughput and by re-reading k and v (L1/L2-resident: 1 MiB per item), far from
/// tensor-core attention; on 2 CPU cores expect a few GFLOP/s. On a GPU the unpinned methods run the flash
/// kernel (v2: k/v tiles in shared memory, CUDA-core FMAs, no re-reads from L1/L2) and the ...PerQuery ones
/// pin v1 beside it. Beside them the C# reference (scores, softmax and sum in double, one thread).
/// </summary>
public class SpatialAttentionBench : IThroughput
{
    private GpuDevice device = null!;
    private Tensor q = null!, k = null!, v = null!, o = null!;
    private float[] hq = [], hk = [], hv = [], ho = [];

    /// <summary>Tokens per item.</summary>
    [ParamsSource(nameof(Tokens))]
    public int P { get; set; } = 256;

    /// <summary>Token counts by mode and device.</summary>
    public static IEnumerable<int> Tokens() => BenchMode.Pick([64], [256], [256, 1024]);

    private const int N = 4, C = 128;

    [GlobalSetup]
    public void Setup()
    {
        device = GpuDevice.Open();
        hq = HostLoops.Random(N * P * C, 1);
        hk = HostLoops.Random(N * P * C, 2);
        hv = HostLoops.Random(N * P * C, 3);
        ho = new float[N * P * C];
        q = Tensor.FromHost(device, hq, N, P, C);
        k = Tensor.FromHost(device, hk, N, P, C);
        v = Tensor.FromHost(device, hv, N, P, C);
        o = Tensor.Empty(device, N, P, C);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var t in new[] { q, k, v, o }) t.Dispose();
        device.Dispose();
    }

    [Benchmark]
    public void OneHead()
    {
        SpatialAttention.Run(q, k, v, 1, o);
        device.Synchronize();
    }

    [Benchmark]
    public void TwoHeads()
    {
        SpatialAttention.Run(q, k, v, 2, o);
        device.Synchronize();
    }

    /// <summary>One head with v1 pinned (a thread per query, local-memory arrays): on a GPU the flash kernel's baseline.</summary>
    [Benchmark]
    public void OneHeadPerQuery()
    {
        SpatialAttention.Run(q, k, v, 1, o, null, AttentionVariant.PerQuery);
        device.Synchronize();
    }

    /// <summary>Sixteen heads of 8 channels, the project's U-Nets' attention_head_dim (FlashD8 on a GPU).</summary>
    [Benchmark]
    public void SixteenHeads()
    {
        SpatialAttention.Run(q, k, v, 16, o);
        device.Synchronize();
    }

    /// <summary>Sixteen heads with v1 pinned.</summary>
    [Benchmark]
    public void SixteenHeadsPerQuery()
    {
        SpatialAttention.Run(q, k, v, 16, o, null, AttentionVariant.PerQuery);
        device.Synchronize();
    }

    /// <summary>The kernel's specification, one head: scores, softmax and weighted sum in double, one thread.</summary>
    [Benchmark(Baseline = true)]
    public void OneHeadReference() => SpatialAttention.Reference(hq, hk, hv, N, P, P, C, 1, ho);

    /// <inheritdoc/>
    public Work? WorkOf(string benchmark) => Work.Flops(4.0 * N * P * P * C);
}

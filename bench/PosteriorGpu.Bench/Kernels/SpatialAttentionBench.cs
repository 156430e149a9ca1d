using BenchmarkDotNet.Attributes;
using PosteriorGpu.Kernels.Attention;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Bench.Kernels;

/// <summary>
/// Self-attention over a 32x32 feature map (P = 1024 tokens), C = 128, one head, batch 4: two P x P x C
/// products, 4 * 4 * 1024^2 * 128 = 2.1 GFLOP per launch. Napkin math: the one-thread-per-query kernel
/// is bound by FMA throughput and by re-reading k and v (L1/L2-resident: 1 MiB per item), far from
/// tensor-core attention; on 2 CPU cores expect a few GFLOP/s.
/// </summary>
public class SpatialAttentionBench
{
    private GpuDevice device = null!;
    private Tensor q = null!, k = null!, v = null!, o = null!;

    /// <summary>Tokens per item.</summary>
    [Params(256, 1024)]
    public int P { get; set; }

    private const int N = 4, C = 128;

    [GlobalSetup]
    public void Setup()
    {
        device = GpuDevice.Open();
        var rng = new System.Random(1);
        float[] Fill(int n) => Enumerable.Range(0, n).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        q = Tensor.FromHost(device, Fill(N * P * C), N, P, C);
        k = Tensor.FromHost(device, Fill(N * P * C), N, P, C);
        v = Tensor.FromHost(device, Fill(N * P * C), N, P, C);
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
}

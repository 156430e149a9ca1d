using NUnit.Framework;
using PosteriorGpu.Kernels.Attention;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Tests.Kernels;

/// <summary>The flash backward (two kernels, nothing P x P stored) against SpatialAttentionBackward.Reference,
/// for every head-dimension configuration, on a CPU accelerator with 256-thread groups and 32-wide warps.</summary>
public class FlashAttentionBackwardTests
{
    private static void Check(GpuDevice dev, int n, int pq, int pk, int d, int heads, float? scale, float spread, int seed, AttentionVariant variant)
    {
        int c = d * heads;
        var q = TestData.Random(n * pq * c, seed, spread);
        var k = TestData.Random(n * pk * c, seed + 1, spread);
        var v = TestData.Random(n * pk * c, seed + 2);
        var dy = TestData.Random(n * pq * c, seed + 3);
        using var tq = Tensor.FromHost(dev, q, n, pq, c);
        using var tk = Tensor.FromHost(dev, k, n, pk, c);
        using var tv = Tensor.FromHost(dev, v, n, pk, c);
        using var tdy = Tensor.FromHost(dev, dy, n, pq, c);
        using var tdq = Tensor.Empty(dev, tq.Shape);
        using var tdk = Tensor.Empty(dev, tk.Shape);
        using var tdv = Tensor.Empty(dev, tv.Shape);
        SpatialAttentionBackward.Run(tq, tk, tv, heads, tdy, tdq, tdk, tdv, scale, variant);
        var dq = new float[q.Length];
        var dk = new float[k.Length];
        var dv = new float[v.Length];
        SpatialAttentionBackward.Reference(q, k, v, n, pq, pk, c, heads, dy, dq, dk, dv, scale);
        double tol = spread > 1 ? 1e-4 : 1e-5;
        TestData.AssertClose(tdq.ToHost(), dq, tol, $"{variant} dq d={d}");
        TestData.AssertClose(tdk.ToHost(), dk, tol, $"{variant} dk d={d}");
        TestData.AssertClose(tdv.ToHost(), dv, tol, $"{variant} dv d={d}");
    }

    // The forward's shapes (SpatialAttentionTests.FlashShapes).
    [TestCaseSource(typeof(SpatialAttentionTests), nameof(SpatialAttentionTests.FlashShapes))]
    public void Flash_MatchesReference(int n, int pq, int pk, int d, int heads) =>
        Check(TestDevices.CpuWide, n, pq, pk, d, heads, null, 1f, 110 + d, AttentionVariant.Flash);

    [Test]
    public void Flash_LargeScores_AndExplicitScale()
    {
        Check(TestDevices.CpuWide, 1, 20, 35, 16, 2, null, 20f, 120, AttentionVariant.Flash);
        Check(TestDevices.CpuWide, 2, 9, 9, 64, 2, 0.3f, 1f, 121, AttentionVariant.Flash);
    }

    [Test]
    public void PerQuery_StillMatchesReference() =>
        Check(TestDevices.Cpu, 3, 11, 7, 6, 2, null, 1f, 122, AttentionVariant.PerQuery);

    [Test]
    public void Flash_RejectsHeadDimWithoutConfiguration()
    {
        var dev = TestDevices.CpuWide;
        using var q = Tensor.Zeros(dev, 1, 4, 24);
        using var g = Tensor.Zeros(dev, 1, 4, 24);
        var ex = Assert.Throws<ArgumentException>(() => SpatialAttentionBackward.Run(q, q, q, 1, q, g, g, g, null, AttentionVariant.Flash));
        Assert.That(ex!.Message, Does.Contain("head dimension 24"));
    }

    [Test, Category("Gpu")]
    public void Gpu_MatchesReference()
    {
        foreach (var (n, p, d, heads) in new[] { (2, 256, 8, 16), (1, 100, 64, 2), (2, 64, 128, 1), (1, 77, 256, 1), (3, 50, 7, 1) })
            Check(TestDevices.Gpu, n, p, p, d, heads, null, 1f, 123, AttentionVariant.Auto);
    }
}

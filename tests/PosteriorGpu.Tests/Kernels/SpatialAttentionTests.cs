using ILGPU;
using ILGPU.Runtime;
using NUnit.Framework;
using PosteriorGpu.Kernels.Attention;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Tests.Kernels;

public class SpatialAttentionTests
{
    private static (float[] Got, float[] Expected) Compute(GpuDevice dev, int n, int pq, int pk, int c, int heads, float? scale, float spread, int seed,
        AttentionVariant variant = AttentionVariant.Auto)
    {
        var q = TestData.Random(n * pq * c, seed, spread);
        var k = TestData.Random(n * pk * c, seed + 1, spread);
        var v = TestData.Random(n * pk * c, seed + 2);
        using var tq = Tensor.FromHost(dev, q, n, pq, c);
        using var tk = Tensor.FromHost(dev, k, n, pk, c);
        using var tv = Tensor.FromHost(dev, v, n, pk, c);
        using var to = Tensor.Empty(dev, n, pq, c);
        SpatialAttention.Run(tq, tk, tv, heads, to, scale, variant);
        var expected = new float[n * pq * c];
        SpatialAttention.Reference(q, k, v, n, pq, pk, c, heads, expected, scale);
        return (to.ToHost(), expected);
    }

    // Self-attention shapes: P = 1, 7, 64, 100; odd channels; heads 1 and 2; batch 1 and 3.
    [TestCase(1, 1, 5, 1)]
    [TestCase(3, 7, 9, 1)]
    [TestCase(1, 64, 16, 2)]
    [TestCase(3, 100, 6, 2)]
    [TestCase(2, 33, 64, 1)]
    public void MatchesReference(int n, int p, int c, int heads)
    {
        var (got, expected) = Compute(TestDevices.Cpu, n, p, p, c, heads, null, 1f, 70);
        TestData.AssertClose(got, expected, 1e-5, "attention");
    }

    [Test]
    public void CrossAttention_WideHead_AndExplicitScale()
    {
        // d = 80 > 64 exercises the channel-chunk loop; Pq != Pk.
        var (got, expected) = Compute(TestDevices.Cpu, 2, 5, 11, 160, 2, 0.3f, 1f, 71);
        TestData.AssertClose(got, expected, 1e-5, "wide head");
    }

    [Test]
    public void VeryWideHead_ReadsQueryFromMemory()
    {
        // d = 300 > QueryLocal: the query is not kept in local memory.
        var (got, expected) = Compute(TestDevices.Cpu, 1, 3, 6, 300, 1, null, 1f, 80);
        TestData.AssertClose(got, expected, 1e-5, "very wide head");
    }

    [Test]
    public void LargeScores_DoNotOverflow()
    {
        // Scores of several hundred: a softmax without max subtraction overflows exp.
        var (got, expected) = Compute(TestDevices.Cpu, 1, 20, 20, 8, 1, null, 20f, 72);
        Assert.That(got.All(float.IsFinite), "finite");
        TestData.AssertClose(got, expected, 1e-4, "large scores");
    }

    [Test]
    public void SingleKey_ReturnsItsValue()
    {
        var dev = TestDevices.Cpu;
        var v = TestData.Random(2 * 6, 73);
        using var tq = Tensor.FromHost(dev, TestData.Random(2 * 3 * 6, 74), 2, 3, 6);
        using var tk = Tensor.FromHost(dev, TestData.Random(2 * 6, 75), 2, 1, 6);
        using var tv = Tensor.FromHost(dev, v, 2, 1, 6);
        using var to = Tensor.Empty(dev, 2, 3, 6);
        SpatialAttention.Run(tq, tk, tv, 3, to);
        var o = to.ToHost();
        for (int i = 0; i < o.Length; i++)
            Assert.That(o[i], Is.EqualTo(v[i / 18 * 6 + i % 6]).Within(1e-6), $"element {i}");
    }

    [Test]
    public void GpuPlan_MatchesReference_OnCpuAccelerator()
    {
        // The strided (one task per thread) plan the GPU uses, run on the CPU accelerator.
        var dev = TestDevices.Cpu;
        const int n = 2, p = 9, c = 6, heads = 2;
        var q = TestData.Random(n * p * c, 76);
        var k = TestData.Random(n * p * c, 77);
        var v = TestData.Random(n * p * c, 78);
        using var tq = Tensor.FromHost(dev, q, n, p, c);
        using var tk = Tensor.FromHost(dev, k, n, p, c);
        using var tv = Tensor.FromHost(dev, v, n, p, c);
        using var to = Tensor.Empty(dev, n, p, c);
        var kernel = dev.Kernel("test-attention-explicit", acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange,
            SpatialAttention.Dims, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(SpatialAttention.Kernel));
        var plan = ElementRange.Explicit(n * heads * p, 5, chunked: false);
        kernel(plan.Threads, plan, new SpatialAttention.Dims(heads, p, p, c, 1f / MathF.Sqrt(3)), tq.View, tk.View, tv.View, to.View);
        var expected = new float[n * p * c];
        SpatialAttention.Reference(q, k, v, n, p, p, c, heads, expected);
        TestData.AssertClose(to.ToHost(), expected, 1e-5, "strided plan");
    }

    /// <summary>The shapes (batch, query tokens, key tokens, head dimension, heads) the flash kernels are tested on, forward
    /// and backward: every head-dimension configuration; tokens not a multiple of the 16-key tile nor of the queries per
    /// group, batch 1 and odd, one and several heads, cross-attention (Pq != Pk) both ways.</summary>
    public static readonly object[] FlashShapes =
    [
        new object[] { 1, 37, 37, 8, 3 },
        new object[] { 3, 70, 70, 8, 1 },
        new object[] { 1, 1, 1, 8, 2 },
        new object[] { 3, 19, 19, 16, 2 },
        new object[] { 1, 40, 23, 32, 2 },
        new object[] { 3, 17, 17, 64, 1 },
        new object[] { 1, 5, 48, 64, 2 },
        new object[] { 1, 33, 33, 128, 2 },
        new object[] { 2, 20, 20, 256, 1 },
    ];

    // The flash kernel (v2) on a CPU accelerator with 256-thread groups and 32-wide warps (its barriers and shuffles
    // are simulated).
    [TestCaseSource(nameof(FlashShapes))]
    public void Flash_MatchesReference(int n, int pq, int pk, int d, int heads)
    {
        var (got, expected) = Compute(TestDevices.CpuWide, n, pq, pk, d * heads, heads, null, 1f, 90 + d, AttentionVariant.Flash);
        TestData.AssertClose(got, expected, 1e-5, $"flash d={d}");
    }

    [Test]
    public void Flash_LargeScores_AndExplicitScale()
    {
        // Scores of several hundred, the running max growing across tiles: the rescaling must keep exp finite.
        var (got, expected) = Compute(TestDevices.CpuWide, 1, 20, 35, 16, 2, null, 20f, 91, AttentionVariant.Flash);
        Assert.That(got.All(float.IsFinite), "finite");
        TestData.AssertClose(got, expected, 1e-4, "flash large scores");
        (got, expected) = Compute(TestDevices.CpuWide, 2, 9, 9, 64, 2, 0.3f, 1f, 92, AttentionVariant.Flash);
        TestData.AssertClose(got, expected, 1e-5, "flash explicit scale");
    }

    [Test]
    public void Flash_RejectsHeadDimWithoutConfiguration()
    {
        var dev = TestDevices.CpuWide;
        using var q = Tensor.Zeros(dev, 1, 4, 24);
        using var o = Tensor.Zeros(dev, 1, 4, 24);
        var ex = Assert.Throws<ArgumentException>(() => SpatialAttention.Run(q, q, q, 1, o, null, AttentionVariant.Flash));
        Assert.That(ex!.Message, Does.Contain("head dimension 24"));
    }

    [Test]
    public void Auto_PicksFlashOnCudaOnly_ForItsHeadDims()
    {
        Assert.That(SpatialAttention.Choose(TestDevices.Cpu, 64, 1, 1, AttentionVariant.Auto), Is.EqualTo(AttentionVariant.PerQuery));
        Assert.That(SpatialAttention.Choose(TestDevices.CpuWide, 64, 1, 1, AttentionVariant.Auto), Is.EqualTo(AttentionVariant.PerQuery));
        foreach (int d in new[] { 8, 16, 32, 64, 128, 256 })
            Assert.That(SpatialAttention.Choose(flashCapable: true, d, AttentionVariant.Auto), Is.EqualTo(AttentionVariant.Flash), $"d={d}");
        foreach (int d in new[] { 1, 3, 24, 80, 300, 512 })
            Assert.That(SpatialAttention.Choose(flashCapable: true, d, AttentionVariant.Auto), Is.EqualTo(AttentionVariant.PerQuery), $"d={d}");
        Assert.That(SpatialAttention.Choose(flashCapable: false, 64, AttentionVariant.Flash), Is.EqualTo(AttentionVariant.Flash));
    }

    [Test]
    public void RejectsBadShapes()
    {
        var dev = TestDevices.Cpu;
        using var q = Tensor.Zeros(dev, 2, 7, 6);
        using var k = Tensor.Zeros(dev, 2, 5, 6);
        using var v = Tensor.Zeros(dev, 2, 5, 4);
        using var o = Tensor.Zeros(dev, 2, 7, 6);
        var ex = Assert.Throws<ArgumentException>(() => SpatialAttention.Run(q, k, v, 1, o));
        Assert.That(ex!.Message, Does.Contain("[2, 5, 6]").And.Contain("[2, 5, 4]"));
        using var k2 = Tensor.Zeros(dev, 3, 5, 6);
        ex = Assert.Throws<ArgumentException>(() => SpatialAttention.Run(q, k2, k2, 1, o));
        Assert.That(ex!.Message, Does.Contain("[2, 7, 6]").And.Contain("[3, 5, 6]"));
        using var oBad = Tensor.Zeros(dev, 2, 6, 6);
        ex = Assert.Throws<ArgumentException>(() => SpatialAttention.Run(q, k, k, 1, oBad));
        Assert.That(ex!.Message, Does.Contain("[2, 7, 6]").And.Contain("[2, 6, 6]"));
        ex = Assert.Throws<ArgumentException>(() => SpatialAttention.Run(q, k, k, 4, o));
        Assert.That(ex!.Message, Does.Contain("6 channels").And.Contain("4 heads"));
        Assert.Throws<ArgumentOutOfRangeException>(() => SpatialAttention.Run(q, k, k, 0, o));
    }

    [Test, Category("Gpu")]
    public void Gpu_MatchesReference()
    {
        foreach (var (n, p, c, heads) in new[] { (2, 1024, 128, 1), (2, 256, 128, 2), (3, 100, 7, 1), (1, 257, 128, 16), (3, 100, 256, 1), (1, 77, 96, 3) })
        {
            var (got, expected) = Compute(TestDevices.Gpu, n, p, p, c, heads, null, 1f, 79);
            TestContext.Out.WriteLine($"attention N={n} P={p} C={c} heads={heads}: rel {TestData.RelativeError(got, expected):E2} " +
                $"max abs {TestData.MaxAbsError(got, expected):E2}");
            TestData.AssertClose(got, expected, 1e-4, "attention on GPU");
        }
    }
}

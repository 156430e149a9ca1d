using NUnit.Framework;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Norm;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Tests.Kernels;

public class GroupNormTests
{
    private static float[] Expected(float[] x, int[] shape, int groups, float[] gamma, float[] beta, float eps, bool silu)
    {
        var y = new float[x.Length];
        int spatial = x.Length / (shape[0] * shape[1]);
        GroupNorm.Reference(x, shape[0], shape[1], spatial, groups, gamma, beta, eps, y, silu);
        return y;
    }

    // Odd channels, one group and several, batch 1 and 3, rank 2/3/4, one group long enough to split
    // over several CPU chunks (5 * 67 * 61 = 20435 elements).
    [TestCase(new[] { 1, 3, 5, 7 }, 1, false)]
    [TestCase(new[] { 3, 6, 9, 11 }, 3, true)]
    [TestCase(new[] { 3, 15, 4, 5 }, 5, false)]
    [TestCase(new[] { 2, 32, 8, 8 }, 32, true)]
    [TestCase(new[] { 1, 10, 67, 61 }, 2, true)]
    [TestCase(new[] { 3, 4 }, 2, false)]
    [TestCase(new[] { 2, 9, 13 }, 9, true)]
    public void MatchesReference(int[] shape, int groups, bool silu)
    {
        var dev = TestDevices.Cpu;
        int n = Shape.Elements(shape), c = shape[1];
        // An offset mean makes a naive E[x^2] - E[x]^2 lose digits; the result must not.
        var x = TestData.Random(n, 21, 2f).Select(v => v + 30f).ToArray();
        var gamma = TestData.Random(c, 22);
        var beta = TestData.Random(c, 23);
        using var tx = Tensor.FromHost(dev, x, shape);
        using var tg = Tensor.FromHost(dev, gamma, c);
        using var tb = Tensor.FromHost(dev, beta, c);
        using var ty = Tensor.Empty(dev, shape);
        GroupNorm.Run(tx, groups, tg, tb, 1e-5f, ty, silu);
        TestData.AssertClose(ty.ToHost(), Expected(x, shape, groups, gamma, beta, 1e-5f, silu), 1e-5, "group norm");
    }

    [Test]
    public void InPlace_MatchesReference()
    {
        var dev = TestDevices.Cpu;
        int[] shape = [3, 12, 7, 9];
        var x = TestData.Random(Shape.Elements(shape), 24);
        var gamma = TestData.Random(12, 25);
        var beta = TestData.Random(12, 26);
        using var tx = Tensor.FromHost(dev, x, shape);
        using var tg = Tensor.FromHost(dev, gamma, 12);
        using var tb = Tensor.FromHost(dev, beta, 12);
        GroupNorm.Run(tx, 4, tg, tb, 1e-6f, tx, silu: true);
        TestData.AssertClose(tx.ToHost(), Expected(x, shape, 4, gamma, beta, 1e-6f, true), 1e-5, "in place");
    }

    [Test]
    public void ConstantGroup_GivesBeta()
    {
        var dev = TestDevices.Cpu;
        int[] shape = [2, 4, 3, 3];
        using var tx = Tensor.FromHost(dev, Enumerable.Repeat(5f, Shape.Elements(shape)).ToArray(), shape);
        using var tg = Tensor.FromHost(dev, [1f, 2f, 3f, 4f], 4);
        using var tb = Tensor.FromHost(dev, [0.5f, -1f, 2f, 0f], 4);
        GroupNorm.Run(tx, 2, tg, tb, 1e-5f, tx);
        var y = tx.ToHost();
        for (int i = 0; i < y.Length; i++)
            Assert.That(y[i], Is.EqualTo(new[] { 0.5f, -1f, 2f, 0f }[i / 9 % 4]).Within(1e-6), $"element {i}");
    }

    [TestCase(new[] { 1, 8, 5, 5 }, 2, true)]
    [TestCase(new[] { 3, 6, 3, 7 }, 3, false)]
    [TestCase(new[] { 2, 4, 33, 3 }, 1, true)]
    public void GpuVariant_MatchesReference_OnCpuAccelerator(int[] shape, int groups, bool silu)
    {
        var dev = TestDevices.Cpu;
        int n = Shape.Elements(shape), c = shape[1];
        var x = TestData.Random(n, 27, 3f);
        var gamma = TestData.Random(c, 28);
        var beta = TestData.Random(c, 29);
        using var tx = Tensor.FromHost(dev, x, shape);
        using var tg = Tensor.FromHost(dev, gamma, c);
        using var tb = Tensor.FromHost(dev, beta, c);
        using var ty = Tensor.Empty(dev, shape);
        int spatial = n / (shape[0] * c);
        // Few threads per group: barriers are real thread synchronisations on the CPU accelerator.
        GroupNorm.RunFused(tx, shape[0] * groups, Math.Min(8, GroupNorm.GroupThreads(dev)), groups, c / groups, spatial, tg, tb, 1e-5f, ty, silu);
        TestData.AssertClose(ty.ToHost(), Expected(x, shape, groups, gamma, beta, 1e-5f, silu), 1e-5, "fused variant");
    }

    [TestCase(new[] { 1, 8, 4, 4 }, 2, true, 256)]
    [TestCase(new[] { 3, 6, 2, 6 }, 3, false, 64)]
    [TestCase(new[] { 2, 4, 32, 32 }, 1, true, 256)]     // a 4,096-float slab, 16 quads per thread
    [TestCase(new[] { 1, 32, 8, 8 }, 32, false, 32)]     // one warp per group, two channels... one channel per group
    public void SlabVariant_MatchesReference_OnCpuAccelerator(int[] shape, int groups, bool silu, int threads)
    {
        var dev = TestDevices.CpuWide;
        int n = Shape.Elements(shape), c = shape[1];
        var x = TestData.Random(n, 37, 3f);
        for (int i = 0; i < n; i++) x[i] += 40f;   // a large mean: the two-pass variance must not cancel
        var gamma = TestData.Random(c, 38);
        var beta = TestData.Random(c, 39);
        using var tx = Tensor.FromHost(dev, x, shape);
        using var tg = Tensor.FromHost(dev, gamma, c);
        using var tb = Tensor.FromHost(dev, beta, c);
        using var ty = Tensor.Empty(dev, shape);
        int spatial = n / (shape[0] * c);
        Assert.That(GroupNormSlab.Fits(tx, ty, c / groups, spatial), Is.True);
        GroupNormSlab.Run(tx, shape[0] * groups, threads, groups, c / groups, spatial, tg, tb, 1e-5f, ty, silu);
        TestData.AssertClose(ty.ToHost(), Expected(x, shape, groups, gamma, beta, 1e-5f, silu), 1e-4, "slab variant");
    }

    [Test]
    public void SlabVariant_InPlace_MatchesReference()
    {
        var dev = TestDevices.CpuWide;
        int[] shape = [2, 4, 4, 8];
        var x = TestData.Random(256, 40);
        var gamma = TestData.Random(4, 41);
        var beta = TestData.Random(4, 42);
        using var tx = Tensor.FromHost(dev, x, shape);
        using var tg = Tensor.FromHost(dev, gamma, 4);
        using var tb = Tensor.FromHost(dev, beta, 4);
        GroupNormSlab.Run(tx, 2 * 2, 64, 2, 2, 32, tg, tb, 1e-5f, tx, true);
        TestData.AssertClose(tx.ToHost(), Expected(x, shape, 2, gamma, beta, 1e-5f, true), 1e-5, "slab in place");
    }

    [Test]
    public void Slab_FitsOnlyWholeAlignedQuadsThatFitSharedMemory()
    {
        var dev = TestDevices.CpuWide;
        using var a = Tensor.Zeros(dev, 1, 4, 5, 5);
        Assert.That(GroupNormSlab.Fits(a, a, 4, 25), Is.False, "25 positions: a quad would straddle two channels");
        using var big = Tensor.Zeros(dev, 1, 16, 32, 32);
        Assert.That(GroupNormSlab.Fits(big, big, 16, 1024), Is.False, "a 16,384-float slab does not fit");
        Assert.That(GroupNormSlab.Fits(big, big, 8, 1024), Is.True);
    }

    [Test]
    public void RejectsBadShapes()
    {
        var dev = TestDevices.Cpu;
        using var x = Tensor.Zeros(dev, 2, 6, 3, 3);
        using var g6 = Tensor.Zeros(dev, 6);
        using var g5 = Tensor.Zeros(dev, 5);
        using var yBad = Tensor.Zeros(dev, 2, 6, 3, 4);
        var ex = Assert.Throws<ArgumentException>(() => GroupNorm.Run(x, 2, g6, g6, 1e-5f, yBad));
        Assert.That(ex!.Message, Does.Contain("[2, 6, 3, 3]").And.Contain("[2, 6, 3, 4]"));
        ex = Assert.Throws<ArgumentException>(() => GroupNorm.Run(x, 2, g5, g6, 1e-5f, x));
        Assert.That(ex!.Message, Does.Contain("gamma").And.Contain("[6]").And.Contain("[5]"));
        ex = Assert.Throws<ArgumentException>(() => GroupNorm.Run(x, 4, g6, g6, 1e-5f, x));
        Assert.That(ex!.Message, Does.Contain("6 channels").And.Contain("4 groups"));
        using var flat = Tensor.Zeros(dev, 6);
        ex = Assert.Throws<ArgumentException>(() => GroupNorm.Run(flat, 1, g6, g6, 1e-5f, flat));
        Assert.That(ex!.Message, Does.Contain("rank >= 2").And.Contain("[6]"));
        Assert.Throws<ArgumentOutOfRangeException>(() => GroupNorm.Run(x, 0, g6, g6, 1e-5f, x));
        Assert.Throws<ArgumentOutOfRangeException>(() => GroupNorm.Run(x, 2, g6, g6, float.NaN, x));
    }

    [Test, Category("Gpu")]
    public void Gpu_MatchesReference()
    {
        var dev = TestDevices.Gpu;
        foreach (var (shape, groups) in new[] { (new[] { 8, 128, 32, 32 }, 32), (new[] { 2, 256, 16, 16 }, 32), (new[] { 3, 7, 13, 11 }, 7) })
        {
            int n = Shape.Elements(shape), c = shape[1];
            var x = TestData.Random(n, 30, 2f).Select(v => v + 10f).ToArray();
            var gamma = TestData.Random(c, 31);
            var beta = TestData.Random(c, 32);
            using var tx = Tensor.FromHost(dev, x, shape);
            using var tg = Tensor.FromHost(dev, gamma, c);
            using var tb = Tensor.FromHost(dev, beta, c);
            using var ty = Tensor.Empty(dev, shape);
            var expected = Expected(x, shape, groups, gamma, beta, 1e-5f, true);
            GroupNorm.Run(tx, groups, tg, tb, 1e-5f, ty, silu: true);
            var fused = ty.ToHost();
            int spatial = n / (shape[0] * c);
            GroupNorm.RunChunked(tx, shape[0] * groups, c / groups, spatial, tg, tb, 1e-5f, ty, true);
            var chunked = ty.ToHost();
            TestContext.Out.WriteLine($"{Shape.Format(shape)} groups {groups}: fused rel {TestData.RelativeError(fused, expected):E2} " +
                $"max abs {TestData.MaxAbsError(fused, expected):E2}; chunked rel {TestData.RelativeError(chunked, expected):E2} " +
                $"max abs {TestData.MaxAbsError(chunked, expected):E2}");
            TestData.AssertClose(fused, expected, 1e-5, "fused on GPU");
            TestData.AssertClose(chunked, expected, 1e-5, "chunked on GPU");
        }
    }
}

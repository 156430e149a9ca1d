using NUnit.Framework;
using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Embedding;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Tests.Kernels;

public class SmallKernelTests
{
    [TestCase(1, 1, 1, true)]
    [TestCase(3, 5, 7 * 9, true)]
    [TestCase(2, 4, 33, false)]
    public void ChannelScaleShift_MatchesReference(int n, int c, int spatial, bool silu)
    {
        var dev = TestDevices.Cpu;
        var x = TestData.Random(n * c * spatial, 1, 3f);
        var t = TestData.Random(n * 2 * c, 2);
        using var tx = Tensor.FromHost(dev, x, n, c, spatial);
        using var tt = Tensor.FromHost(dev, t, n, 2 * c);
        ChannelScaleShift.Run(tx, tt, tx, silu);
        var expected = new float[x.Length];
        ChannelScaleShift.Reference(x, t, n, c, spatial, silu, expected);
        TestData.AssertClose(tx.ToHost(), expected, 1e-6, "scale-shift");
        using var wrong = Tensor.Zeros(dev, n, c);
        Assert.That(Assert.Throws<ArgumentException>(() => ChannelScaleShift.Run(tx, wrong, tx, silu))!.Message,
            Does.Contain($"[{n}, {2 * c}]").And.Contain($"[{n}, {c}]"));
    }

    [TestCase(1, 1)]
    [TestCase(4, 37)]
    [TestCase(3, 2 * 16 * 16 + 1)]
    public void ScalePerItem_MatchesReference(int n, int len)
    {
        var dev = TestDevices.Cpu;
        var x = TestData.Random(n * len, 3);
        var s = TestData.Random(n, 4, 5f);
        using var tx = Tensor.FromHost(dev, x, n, len);
        using var ts = Tensor.FromHost(dev, s, n);
        using var ty = Tensor.Empty(dev, n, len);
        ScalePerItem.Run(tx, ts, ty);
        var expected = new float[x.Length];
        ScalePerItem.Reference(x, s, expected);
        TestData.AssertClose(ty.ToHost(), expected, 1e-7, "scale per item");
    }

    [TestCase(1, 1)]
    [TestCase(5, 37)]
    [TestCase(3, 2 * 16 * 16 + 1)]
    public void SelectItems_MatchesReference(int n, int len)
    {
        var dev = TestDevices.Cpu;
        var x = TestData.Random(n * len, 5);
        var candidate = TestData.Random(n * len, 6);
        var accept = Enumerable.Range(0, n).Select(i => i % 2 == 0 ? 1f : 0f).ToArray();
        using var tx = Tensor.FromHost(dev, x, n, len);
        using var tc = Tensor.FromHost(dev, candidate, n, len);
        using var ta = Tensor.FromHost(dev, accept, n);
        SelectItems.Run(tx, tc, ta);
        var expected = (float[])x.Clone();
        SelectItems.Reference(expected, candidate, accept);
        Assert.That(tx.ToHost(), Is.EqualTo(expected), "bitwise: an accepted item is the candidate exactly");
        Assert.That(expected.AsSpan(0, len).ToArray(), Is.EqualTo(candidate.AsSpan(0, len).ToArray()), "item 0 accepted");
        if (n > 1) Assert.That(expected.AsSpan(len, len).ToArray(), Is.EqualTo(x.AsSpan(len, len).ToArray()), "item 1 kept");
        using var wrong = Tensor.Zeros(dev, n + 1);
        Assert.Throws<ArgumentException>(() => SelectItems.Run(tx, tc, wrong));
    }

    [TestCase(1, 1, 1)]
    [TestCase(5, 10, 33)]
    public void EmbeddingAdd_MatchesReference(int n, int classes, int dim)
    {
        var dev = TestDevices.Cpu;
        var table = TestData.Random(classes * dim, 5);
        var y = TestData.Random(n * dim, 6);
        var labels = Enumerable.Range(0, n).Select(i => (i * 7) % classes).ToArray();
        using var tt = Tensor.FromHost(dev, table, classes, dim);
        using var tl = Tensor.FromHost(dev, labels.Select(l => (float)l).ToArray(), n);
        using var ty = Tensor.FromHost(dev, y, n, dim);
        EmbeddingAdd.Run(tt, tl, ty);
        EmbeddingAdd.Reference(table, labels, dim, y);
        TestData.AssertClose(ty.ToHost(), y, 1e-7, "embedding add");
    }
}

public class SamplerKernelTests
{
    [TestCase(1, 1)]
    [TestCase(3, 37)]
    public void BroadcastMultiply_MatchesReference(int n, int item)
    {
        var dev = TestDevices.Cpu;
        var x = TestData.Random(n * item, 1);
        var m = TestData.Random(item, 2);
        using var tx = Tensor.FromHost(dev, x, n, item);
        using var tm = Tensor.FromHost(dev, m, item);
        using var ty = Tensor.Empty(dev, n, item);
        BroadcastMultiply.Run(tx, tm, ty);
        var expected = new float[x.Length];
        BroadcastMultiply.Reference(x, m, expected);
        Assert.That(ty.ToHost(), Is.EqualTo(expected));
        using var wrong = Tensor.Empty(dev, item + 1);
        Assert.Throws<ArgumentException>(() => BroadcastMultiply.Run(tx, wrong, ty));
    }

    [Test]
    public void AddNoise_MatchesReference_AndNegativeScaleUndoesIt()
    {
        var dev = TestDevices.Cpu;
        var x = TestData.Random(5001, 3);
        var draw = new PosteriorGpu.Kernels.Random.RandomDraw(4, 2, 7);
        using var tx = Tensor.FromHost(dev, x, 5001);
        AddNoise.Run(tx, 0.3f, draw);
        var expected = (float[])x.Clone();
        AddNoise.Reference(expected, 0.3f, draw);
        TestData.AssertClose(tx.ToHost(), expected, 1e-6, "add noise");
        AddNoise.Run(tx, -0.3f, draw);
        TestData.AssertClose(tx.ToHost(), x, 1e-6, "add then subtract the same noise");
    }

    [TestCase(0f)]
    [TestCase(-0.4f)]
    public void MultistepUpdate_MatchesReference(float c2)
    {
        var dev = TestDevices.Cpu;
        const int n = 3 * 1001;
        var x = TestData.Random(n, 8);
        var eps = TestData.Random(n, 9);
        var prev = TestData.Random(n, 10);
        var c = new MultistepUpdate.Coefficients(0.5f, -1.5f, 1.1f, 0.3f, c2);
        using var tx = Tensor.FromHost(dev, x, 3, 1001);
        using var te = Tensor.FromHost(dev, eps, 3, 1001);
        using var tp = Tensor.FromHost(dev, prev, 3, 1001);
        MultistepUpdate.Run(tx, te, tp, c);
        MultistepUpdate.Reference(x, eps, prev, c);
        TestData.AssertClose(tx.ToHost(), x, 1e-6, "multistep x");
        TestData.AssertClose(tp.ToHost(), prev, 1e-6, "multistep prediction kept");
    }
}

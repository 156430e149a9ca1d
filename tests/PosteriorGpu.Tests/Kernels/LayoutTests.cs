using NUnit.Framework;
using PosteriorGpu.Kernels.Layout;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Tests.Kernels;

public class LayoutTests
{
    [TestCase(1, 1, 1, 1, 1)]
    [TestCase(1, 3, 5, 7, 9)]
    [TestCase(3, 2, 7, 13, 11)]
    [TestCase(2, 64, 32, 16, 16)]
    public void ConcatChannels_MatchesReference(int n, int ca, int cb, int h, int w)
    {
        var dev = TestDevices.Cpu;
        var a = TestData.Random(n * ca * h * w, 60);
        var b = TestData.Random(n * cb * h * w, 61);
        using var ta = Tensor.FromHost(dev, a, n, ca, h, w);
        using var tb = Tensor.FromHost(dev, b, n, cb, h, w);
        using var ty = Tensor.Empty(dev, n, ca + cb, h, w);
        ConcatChannels.Run(ta, tb, ty);
        var expected = new float[ty.Length];
        ConcatChannels.Reference(a, b, n, expected);
        Assert.That(ty.ToHost(), Is.EqualTo(expected));
    }

    [Test]
    public void ConcatChannels_SmallExample()
    {
        var dev = TestDevices.Cpu;
        // Two items, a has one channel, b two, 2 pixels each.
        using var ta = Tensor.FromHost(dev, [1f, 2f, 3f, 4f], 2, 1, 1, 2);
        using var tb = Tensor.FromHost(dev, [5f, 6f, 7f, 8f, 9f, 10f, 11f, 12f], 2, 2, 1, 2);
        using var ty = Tensor.Empty(dev, 2, 3, 1, 2);
        ConcatChannels.Run(ta, tb, ty);
        Assert.That(ty.ToHost(), Is.EqualTo(new float[] { 1, 2, 5, 6, 7, 8, 3, 4, 9, 10, 11, 12 }));
    }

    [Test]
    public void ConcatChannels_RejectsBadShapes()
    {
        var dev = TestDevices.Cpu;
        using var a = Tensor.Zeros(dev, 2, 3, 4, 4);
        using var b = Tensor.Zeros(dev, 2, 5, 4, 5);
        using var b2 = Tensor.Zeros(dev, 2, 5, 4, 4);
        using var y = Tensor.Zeros(dev, 2, 8, 4, 4);
        var ex = Assert.Throws<ArgumentException>(() => ConcatChannels.Run(a, b, y));
        Assert.That(ex!.Message, Does.Contain("[2, 3, 4, 4]").And.Contain("[2, 5, 4, 5]"));
        using var yBad = Tensor.Zeros(dev, 2, 7, 4, 4);
        ex = Assert.Throws<ArgumentException>(() => ConcatChannels.Run(a, b2, yBad));
        Assert.That(ex!.Message, Does.Contain("[2, 8, 4, 4]").And.Contain("[2, 7, 4, 4]"));
    }

    [TestCase(1, 1, 1, 1)]
    [TestCase(1, 3, 5, 7)]
    [TestCase(3, 13, 8, 9)]
    [TestCase(2, 64, 16, 16)]
    public void Tokens_RoundTrip_MatchesReference(int n, int c, int h, int w)
    {
        var dev = TestDevices.Cpu;
        int len = n * c * h * w;
        var x = TestData.Random(len, 62);
        var res = TestData.Random(len, 63);
        using var tx = Tensor.FromHost(dev, x, n, c, h, w);
        using var tr = Tensor.FromHost(dev, res, n, c, h, w);
        using var tt = Tensor.Empty(dev, n, h * w, c);
        Tokens.FromImage(tx, tt);
        var tokens = new float[len];
        Tokens.FromImageReference(x, n, c, h * w, tokens);
        Assert.That(tt.ToHost(), Is.EqualTo(tokens), "from image");

        using var ty = Tensor.Empty(dev, n, c, h, w);
        Tokens.ToImage(tt, null, 1f, ty);
        Assert.That(ty.ToHost(), Is.EqualTo(x), "to image undoes from image");

        Tokens.ToImage(tt, tr, 0.5f, ty);
        var expected = new float[len];
        Tokens.ToImageReference(tokens, res, true, 0.5f, n, c, h * w, expected);
        TestData.AssertClose(ty.ToHost(), expected, 1e-6, "to image with residual");

        // The residual may be the output itself.
        Tokens.ToImage(tt, tr, 0.5f, tr);
        TestData.AssertClose(tr.ToHost(), expected, 1e-6, "to image in place on the residual");
    }

    [Test]
    public void Tokens_RejectBadShapes()
    {
        var dev = TestDevices.Cpu;
        using var x = Tensor.Zeros(dev, 2, 3, 4, 5);
        using var bad = Tensor.Zeros(dev, 2, 3, 20);
        var ex = Assert.Throws<ArgumentException>(() => Tokens.FromImage(x, bad));
        Assert.That(ex!.Message, Does.Contain("[2, 20, 3]").And.Contain("[2, 3, 20]"));
        ex = Assert.Throws<ArgumentException>(() => Tokens.ToImage(bad, null, 1f, x));
        Assert.That(ex!.Message, Does.Contain("[2, 20, 3]").And.Contain("[2, 3, 20]"));
        using var good = Tensor.Zeros(dev, 2, 20, 3);
        using var res = Tensor.Zeros(dev, 2, 3, 5, 4);
        ex = Assert.Throws<ArgumentException>(() => Tokens.ToImage(good, res, 1f, x));
        Assert.That(ex!.Message, Does.Contain("[2, 3, 5, 4]").And.Contain("[2, 3, 4, 5]"));
    }

    [Test, Category("Gpu")]
    public void Gpu_MatchesReference()
    {
        var dev = TestDevices.Gpu;
        const int n = 8, c = 128, h = 32, w = 32, len = n * c * h * w;
        var x = TestData.Random(len, 64);
        var res = TestData.Random(len, 65);
        using var tx = Tensor.FromHost(dev, x, n, c, h, w);
        using var tr = Tensor.FromHost(dev, res, n, c, h, w);
        using var tt = Tensor.Empty(dev, n, h * w, c);
        using var ty = Tensor.Empty(dev, n, 2 * c, h, w);
        Tokens.FromImage(tx, tt);
        var tokens = new float[len];
        Tokens.FromImageReference(x, n, c, h * w, tokens);
        Assert.That(tt.ToHost(), Is.EqualTo(tokens), "from image");
        Tokens.ToImage(tt, tr, 0.5f, tr);
        var expected = new float[len];
        Tokens.ToImageReference(tokens, res, true, 0.5f, n, c, h * w, expected);
        var got = tr.ToHost();
        TestContext.Out.WriteLine($"tokens to image: max abs {TestData.MaxAbsError(got, expected):E2}");
        TestData.AssertClose(got, expected, 1e-6, "to image");
        ConcatChannels.Run(tx, tr, ty);
        var cat = new float[2 * len];
        ConcatChannels.Reference(x, got, n, cat);
        Assert.That(ty.ToHost(), Is.EqualTo(cat), "concat");
    }
}

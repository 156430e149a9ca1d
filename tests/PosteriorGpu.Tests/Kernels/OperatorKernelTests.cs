using NUnit.Framework;
using PosteriorGpu.Kernels.Operators;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Tests.Kernels;

/// <summary>The forward operators' kernels against their references on random data of awkward shapes (odd sizes,
/// batch 1 and more), and their shape checks.</summary>
public class OperatorKernelTests
{
    [TestCase(1, 1, 1, 1, 1)]
    [TestCase(3, 2, 5, 7, 1)]
    [TestCase(2, 3, 4, 6, 2)]
    public void MaskMultiply_MatchesReference(int n, int c, int h, int w, int group)
    {
        var dev = TestDevices.Cpu;
        var mask = TestData.Random(h * w, 1);
        var x = TestData.Random(n * c * h * w * group, 2);
        using var tm = Tensor.FromHost(dev, mask, h * w);
        using var tx = Tensor.FromHost(dev, x, n, c, h, w * group);
        using var ty = Tensor.Empty(dev, tx.Shape);
        MaskMultiply.Run(tm, group, tx, ty);
        var expected = new float[x.Length];
        MaskMultiply.Reference(mask, group, x, expected);
        TestData.AssertClose(ty.ToHost(), expected, 1e-7, "mask multiply");
        using var badMask = Tensor.Zeros(dev, h * w + 1);
        if (n * c * h * w * group % (h * w + 1) != 0)
            Assert.That(Assert.Throws<ArgumentException>(() => MaskMultiply.Run(badMask, group, tx, ty))!.Message, Does.Contain("does not tile"));
    }

    [TestCase(1, 1)]
    [TestCase(3, 1001)]
    public void Residual_MatchesReference(int n, int m)
    {
        var dev = TestDevices.Cpu;
        var y = TestData.Random(n * m, 3);
        var ax = TestData.Random(n * m, 4);
        using var ty = Tensor.FromHost(dev, y, n, m);
        using var tax = Tensor.FromHost(dev, ax, n, m);
        Residual.Run(ty, tax, 7.5f);
        var expected = new float[ax.Length];
        Residual.Reference(y, ax, 7.5f, expected);
        TestData.AssertClose(tax.ToHost(), expected, 1e-7, "residual");
        using var wrong = Tensor.Zeros(dev, n, m + 1);
        Assert.Throws<ArgumentException>(() => Residual.Run(ty, wrong, 1f));
    }

    [TestCase(1, 1, 1, 1, 1, false, false)]
    [TestCase(1, 5, 6, 3, 5, false, false)]
    [TestCase(2, 7, 9, 5, 5, false, true)]
    [TestCase(3, 3, 4, 5, 7, true, false)]
    [TestCase(2, 6, 5, 3, 3, true, true)]
    public void BlurCorrelation_MatchesReference(int n, int h, int w, int kh, int kw, bool circular, bool adjoint)
    {
        var dev = TestDevices.Cpu;
        const int c = 2;
        var k = TestData.Random(kh * kw, 5);
        var x = TestData.Random(n * c * h * w, 6);
        using var tk = Tensor.FromHost(dev, k, kh * kw);
        using var tx = Tensor.FromHost(dev, x, n, c, h, w);
        using var ty = Tensor.Empty(dev, tx.Shape);
        BlurCorrelation.Run(tk, kh, kw, circular, adjoint, tx, ty);
        var expected = new float[x.Length];
        BlurCorrelation.Reference(x, expected, n * c, h, w, k, kh, kw, circular, adjoint);
        TestData.AssertClose(ty.ToHost(), expected, 1e-6, $"blur {kh} x {kw}, circular {circular}, adjoint {adjoint}");
        Assert.That(Assert.Throws<ArgumentException>(() => BlurCorrelation.Run(tk, kh + 1, kw, circular, adjoint, tx, ty))!.Message,
            Does.Contain("odd sizes"));
    }

    [TestCase(1, 1, 2, 2, 1)]
    [TestCase(1, 3, 6, 10, 2)]
    [TestCase(3, 2, 8, 12, 4)]
    [TestCase(2, 1, 9, 3, 3)]
    public void BlockAverageAndSpread_MatchReferences(int n, int c, int h, int w, int f)
    {
        var dev = TestDevices.Cpu;
        var x = TestData.Random(n * c * h * w, 7);
        var y = TestData.Random(n * c * (h / f) * (w / f), 8);
        using var tx = Tensor.FromHost(dev, x, n, c, h, w);
        using var ty = Tensor.FromHost(dev, y, n, c, h / f, w / f);
        using var pooled = Tensor.Empty(dev, ty.Shape);
        using var spread = Tensor.Empty(dev, tx.Shape);
        BlockAverage.Run(tx, pooled, f);
        BlockSpread.Run(ty, spread, f);
        var expectedPool = new float[y.Length];
        var expectedSpread = new float[x.Length];
        BlockAverage.Reference(x, expectedPool, n * c, h, w, f);
        BlockSpread.Reference(y, expectedSpread, n * c, h, w, f);
        TestData.AssertClose(pooled.ToHost(), expectedPool, 1e-6, "block average");
        TestData.AssertClose(spread.ToHost(), expectedSpread, 1e-7, "block spread");
        using var wrong = Tensor.Zeros(dev, n, c, h / f + 1, w / f);
        Assert.That(Assert.Throws<ArgumentException>(() => BlockAverage.Run(tx, wrong, f))!.Message,
            Does.Contain(Shape.Format([n, c, h / f, w / f])));
        Assert.Throws<ArgumentException>(() => BlockSpread.Run(wrong, tx, f));
    }

    [TestCase(1, 1, 0f)]
    [TestCase(3, 77, 0f)]
    [TestCase(2, 1001, 0.4f)]
    public void SignQuantize_MatchesReference(int n, int m, float sigma)
    {
        var dev = TestDevices.Cpu;
        var u = TestData.Random(n * m, 9);
        u[0] = 0f;   // sign(0) = +1 without noise
        var draw = new RandomDraw(3, 4, 5);
        using var tu = Tensor.FromHost(dev, u, n, m);
        SignQuantize.Run(tu, sigma, draw);
        var expected = (float[])u.Clone();
        SignQuantize.Reference(expected, sigma, draw);
        var got = tu.ToHost();
        Assert.That(got, Is.EqualTo(expected));
        Assert.That(got.All(v => v is 1f or -1f), Is.True);
        if (sigma == 0) Assert.That(got[0], Is.EqualTo(1f));
        Assert.Throws<ArgumentOutOfRangeException>(() => SignQuantize.Run(tu, -1f, draw));
    }

    /// <summary>The two probit kernels of one-bit sensing (gradient weights; log-CDF terms of the log-likelihood) against
    /// their references, at noise levels that put u = y t / sigma far below 0.</summary>
    [TestCase("weights", 1, 1, 1f)]
    [TestCase("weights", 3, 257, 0.3f)]
    [TestCase("weights", 2, 100, 1e-3f)]
    [TestCase("log-cdf", 1, 1, 1f)]
    [TestCase("log-cdf", 3, 257, 0.3f)]
    [TestCase("log-cdf", 2, 100, 1e-3f)]
    public void ProbitKernels_MatchReferences(string kernel, int n, int m, float sigma)
    {
        var dev = TestDevices.Cpu;
        bool weights = kernel == "weights";
        Action<Tensor, Tensor, float> run = weights ? ProbitWeights.Run : ProbitLogCdf.Run;
        var y = TestData.Random(n * m, 10).Select(v => v >= 0 ? 1f : -1f).ToArray();
        var t = TestData.Random(n * m, 11, 2f);
        using var ty = Tensor.FromHost(dev, y, n, m);
        using var tt = Tensor.FromHost(dev, t, n, m);
        run(ty, tt, 1f / sigma);
        var expected = (float[])t.Clone();
        if (weights) ProbitWeights.Reference(y, expected, 1f / sigma);
        else ProbitLogCdf.Reference(y, expected, 1f / sigma);
        var got = tt.ToHost();
        Assert.That(got.All(float.IsFinite), Is.True, "no NaN or infinity, even where u is far below 0");
        if (!weights) Assert.That(got.All(v => v <= 0), Is.True, "log Phi <= 0");
        TestData.AssertClose(got, expected, weights ? 2e-6 : 1e-6, $"probit {kernel}, sigma {sigma}");
        using var wrong = Tensor.Zeros(dev, n, m + 1);
        Assert.Throws<ArgumentException>(() => run(ty, wrong, 1f));
    }

    [TestCase(1, 1, 2, 2, 2)]
    [TestCase(1, 2, 8, 4, 2)]
    [TestCase(3, 1, 3, 5, 4)]
    public void PhaseRetrievalKernels_MatchReferences(int n, int c, int h, int w, int s)
    {
        var dev = TestDevices.Cpu;
        int hp = h * s, wp = w * s;
        var modulation = TestData.Random(2 * c * h * w, 12);
        var x = TestData.Random(n * c * h * w, 13);
        using var tm = Tensor.FromHost(dev, modulation, modulation.Length);
        using var tx = Tensor.FromHost(dev, x, n, c, h, w);
        using var tz = Tensor.Empty(dev, n, c, hp, wp, 2);
        PadModulate.Run(tm, tx, tz);
        var z = new float[tz.Length];
        PadModulate.Reference(modulation, c * h * w, x, z, n * c, h, w, hp, wp);
        TestData.AssertClose(tz.ToHost(), z, 1e-7, "pad modulate");

        var y = TestData.Random(n * c * hp * wp, 14).Select(Math.Abs).ToArray();
        var u = TestData.Random(tz.Length, 15);
        u[0] = u[1] = 0f;   // z = 0: the residual is 0, not NaN
        using var ty = Tensor.FromHost(dev, y, n, c, hp, wp);
        using var tu = Tensor.FromHost(dev, u, tz.Shape);
        AmplitudeResidual.Run(4f, ty, tu);
        var expectedU = (float[])u.Clone();
        AmplitudeResidual.Reference(4f, y, expectedU);
        var gotU = tu.ToHost();
        Assert.That((gotU[0], gotU[1]), Is.EqualTo((0f, 0f)));
        TestData.AssertClose(gotU, expectedU, 1e-6, "amplitude residual");

        using var grad = Tensor.Empty(dev, tx.Shape);
        CropDemodulate.Run(tm, tu, grad);
        var expectedGrad = new float[x.Length];
        CropDemodulate.Reference(modulation, c * h * w, gotU, expectedGrad, n * c, h, w, hp, wp);
        TestData.AssertClose(grad.ToHost(), expectedGrad, 1e-6, "crop demodulate");

        using var small = Tensor.Empty(dev, n, c, h, w - 1, 2);
        Assert.That(Assert.Throws<ArgumentException>(() => PadModulate.Run(tm, tx, small))!.Message, Does.Contain("smaller than the image"));
        using var wrongY = Tensor.Zeros(dev, n, c, hp, wp + 1);
        Assert.Throws<ArgumentException>(() => AmplitudeResidual.Run(1f, wrongY, tu));
        using var badModulation = Tensor.Zeros(dev, modulation.Length + 2);
        Assert.That(Assert.Throws<ArgumentException>(() => CropDemodulate.Run(badModulation, tu, grad))!.Message, Does.Contain("modulation"));
    }
}

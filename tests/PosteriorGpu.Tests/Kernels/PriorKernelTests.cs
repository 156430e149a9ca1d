using NUnit.Framework;
using PosteriorGpu.Kernels.Priors;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.Priors;

namespace PosteriorGpu.Tests.Kernels;

/// <summary>The prior kernels against their references on random data of awkward shapes.</summary>
public class PriorKernelTests
{
    private static float[] Levels(int n, int seed)
    {
        var rng = new Random(seed);
        var a = Enumerable.Range(0, n).Select(_ => rng.NextDouble()).ToArray();
        return PriorLevels.Table(a);
    }

    private static float[] Positive(int n, int seed) => TestData.Random(n, seed).Select(v => 0.05f + Math.Abs(v)).ToArray();

    [TestCase(1, 1)]
    [TestCase(3, 37)]
    [TestCase(5, 300)]
    public void SpectralScale_MatchesReference(int n, int d)
    {
        var dev = TestDevices.Cpu;
        var z = TestData.Random(n * d, 1);
        var shift = TestData.Random(d, 2);
        var lambda = Positive(d, 3);
        var levels = Levels(n, 4);
        using var tz = Tensor.FromHost(dev, z, n, d);
        using var ts = Tensor.FromHost(dev, shift, d);
        using var tl = Tensor.FromHost(dev, lambda, d);
        using var tv = Tensor.FromHost(dev, levels, n, 4);
        using var to = Tensor.Empty(dev, n, d);
        SpectralScale.Run(tz, ts, tl, tv, to);
        var expected = new float[n * d];
        SpectralScale.Reference(z, shift, lambda, levels, expected);
        TestData.AssertClose(to.ToHost(), expected, 1e-6, "spectral scale");
        using var bad = Tensor.Empty(dev, n, d + 1);
        var ex = Assert.Throws<ArgumentException>(() => SpectralScale.Run(tz, ts, tl, tv, bad));
        Assert.That(ex!.Message, Does.Contain($"[{n}, {d}]").And.Contain($"[{n}, {d + 1}]"));
    }

    [TestCase(1, 1, 1)]
    [TestCase(3, 5, 7)]
    [TestCase(7, 25, 33)]
    public void MixtureTermsAndSoftmax_MatchReference(int n, int k, int d)
    {
        var dev = TestDevices.Cpu;
        var z = TestData.Random(n * k * d, 1, 2f);
        var shifts = TestData.Random(k * d, 2);
        var lambdas = Positive(k * d, 3);
        var logW = TestData.Random(k, 4).Select(v => v - 2f).ToArray();
        var levels = Levels(n, 5);
        using var tz = Tensor.FromHost(dev, z, n, k * d);
        using var ts = Tensor.FromHost(dev, shifts, k, d);
        using var tl = Tensor.FromHost(dev, lambdas, k, d);
        using var tw = Tensor.FromHost(dev, logW, k);
        using var tv = Tensor.FromHost(dev, levels, n, 4);
        using var tlog = Tensor.Empty(dev, n, k);
        MixtureComponentTerms.Run(tz, ts, tl, tw, tv, tlog);
        var ez = (float[])z.Clone();
        var elog = new float[n * k];
        MixtureComponentTerms.Reference(ez, shifts, lambdas, logW, levels, elog);
        TestData.AssertClose(tz.ToHost(), ez, 1e-6, "mixture scaled eigenbasis eps");
        TestData.AssertClose(tlog.ToHost(), elog, 1e-5, "mixture logits");

        using var tr = Tensor.Empty(dev, n, k);
        MixtureSoftmax.Run(tlog, tr);
        var er = new float[n * k];
        MixtureSoftmax.Reference(tlog.ToHost(), k, er);
        TestData.AssertClose(tr.ToHost(), er, 1e-6, "mixture softmax");
        for (int i = 0; i < n; i++) Assert.That(er.AsSpan(i * k, k).ToArray().Sum(), Is.EqualTo(1f).Within(1e-5));

        using var bad = Tensor.Empty(dev, n, k + 1);
        var ex = Assert.Throws<ArgumentException>(() => MixtureComponentTerms.Run(tz, ts, tl, tw, tv, bad));
        Assert.That(ex!.Message, Does.Contain($"[{n}, {k}]").And.Contain($"[{n}, {k + 1}]"));
        ex = Assert.Throws<ArgumentException>(() => MixtureSoftmax.Run(tlog, bad));
        Assert.That(ex!.Message, Does.Contain($"[{n}, {k}]").And.Contain($"[{n}, {k + 1}]"));
    }

    [Test]
    public void MixtureSoftmax_IsStableForLargeLogits()
    {
        var dev = TestDevices.Cpu;
        float[] logits = [-1000f, -1001f, -5000f, 800f, 799f, float.NegativeInfinity];
        using var t = Tensor.FromHost(dev, logits, 2, 3);
        MixtureSoftmax.Run(t, t);
        var r = t.ToHost();
        var e = 1 / (1 + Math.Exp(-1));
        Assert.That(r[0], Is.EqualTo(e).Within(1e-6));
        Assert.That(r[1], Is.EqualTo(1 - e).Within(1e-6));
        Assert.That(r[2], Is.EqualTo(0f));
        Assert.That(r[3], Is.EqualTo(e).Within(1e-6));
        Assert.That(r[5], Is.EqualTo(0f));
    }
}

using NUnit.Framework;
using PosteriorGpu.Kernels.Random;

namespace PosteriorGpu.Tests.Kernels;

public class PhiloxTests
{
    // Known-answer vectors of Random123's kat_vectors for philox4x32_10 (counter words, key words, output).
    [TestCase(0u, 0u, 0u, 0u, 0u, 0u, 0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u)]
    [TestCase(0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu)]
    [TestCase(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u, 0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u)]
    public void Block_MatchesKnownAnswers(uint c0, uint c1, uint c2, uint c3, uint k0, uint k1, uint e0, uint e1, uint e2, uint e3)
    {
        Philox.Block(c0, c1, c2, c3, k0, k1, out uint r0, out uint r1, out uint r2, out uint r3);
        Assert.That(new[] { r0, r1, r2, r3 }, Is.EqualTo(new[] { e0, e1, e2, e3 }));
    }

    [Test]
    public void Normal_HasStandardMoments()
    {
        const int n = 400_000;
        var draw = new RandomDraw(12345, 7, 3);
        double m1 = 0, m2 = 0, m3 = 0, m4 = 0;
        for (int i = 0; i < n; i++)
        {
            double z = draw.Normal(i);
            m1 += z; m2 += z * z; m3 += z * z * z; m4 += z * z * z * z;
        }
        m1 /= n; m2 /= n; m3 /= n; m4 /= n;
        // Standard errors at n = 4e5: mean 0.0016, variance 0.0022, skew 0.0039, kurtosis 0.015 (5-6 sigma bounds).
        Assert.That(m1, Is.EqualTo(0).Within(0.01), "mean");
        Assert.That(m2, Is.EqualTo(1).Within(0.012), "variance");
        Assert.That(m3, Is.EqualTo(0).Within(0.025), "third moment");
        Assert.That(m4, Is.EqualTo(3).Within(0.08), "fourth moment");
    }

    [Test]
    public void Uniform_HasUniformMomentsAndRange()
    {
        const int n = 400_000;
        var draw = new RandomDraw(99, 1, 0);
        double m1 = 0, m2 = 0;
        for (int i = 0; i < n; i++)
        {
            double u = draw.Uniform(i);
            Assert.That(u, Is.GreaterThanOrEqualTo(0).And.LessThan(1));
            m1 += u; m2 += u * u;
        }
        Assert.That(m1 / n, Is.EqualTo(0.5).Within(0.003));
        Assert.That(m2 / n - (m1 / n) * (m1 / n), Is.EqualTo(1.0 / 12).Within(0.002));
    }

    [TestCase(1ul, 2ul, 0u, 0u, 0ul, 0ul)]   // two seeds
    [TestCase(5ul, 5ul, 0u, 1u, 0ul, 0ul)]   // two streams
    [TestCase(5ul, 5ul, 0u, 0u, 0ul, 1ul)]   // two steps
    public void DifferentDraws_AreUncorrelated(ulong seedA, ulong seedB, uint streamA, uint streamB, ulong stepA, ulong stepB)
    {
        const int n = 200_000;
        var a = new RandomDraw(seedA, streamA, stepA);
        var b = new RandomDraw(seedB, streamB, stepB);
        double c = 0, identical = 0;
        for (int i = 0; i < n; i++)
        {
            float x = a.Normal(i), y = b.Normal(i);
            c += x * y;
            if (x == y) identical++;
        }
        // The correlation of independent normals has standard error 1/sqrt(n) = 0.0022.
        Assert.That(c / n, Is.EqualTo(0).Within(0.012));
        Assert.That(identical, Is.LessThan(5));
    }

    [Test]
    public void NeighbouringElements_AreUncorrelated()
    {
        const int n = 200_000;
        var d = new RandomDraw(42, 0, 0);
        for (int lag = 1; lag <= 4; lag++)
        {
            double c = 0;
            for (int i = 0; i < n; i++) c += d.Normal(i) * d.Normal(i + lag);
            Assert.That(c / n, Is.EqualTo(0).Within(0.012), $"lag {lag}");
        }
    }
}

public class RandomDrawOffsetTests
{
    [Test]
    public void ASampleGetsTheSameNoiseAloneOrInABatch()
    {
        var draw = new RandomDraw(7, 3, 11);
        const int perSample = 50;
        // Sample 5 drawn inside a batch starting at sample 0, and alone as a batch starting at 5.
        for (int j = 0; j < perSample; j++)
            Assert.That(draw.ForBatch(5, perSample).Normal(j), Is.EqualTo(draw.Normal(5 * perSample + j)));
    }
}

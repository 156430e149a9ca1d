using NUnit.Framework;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;
using PosteriorGpu.Models.Priors;

namespace PosteriorGpu.Tests.Priors;

public class GaussianMixturePriorTests
{
    [TestCase(25, 1, 10, 10, TestName = "K25 d100 [1,10,10]")]
    [TestCase(3, 2, 2, 2, TestName = "K3 d8 [2,2,2]")]
    [TestCase(4, 1, 1, 1, TestName = "K4 d1 [1,1,1]")]
    public void Epsilon_MatchesDoubleReference_PerItemLevels(int k, int c, int h, int w)
    {
        int d = c * h * w;
        var mixture = PriorTestData.Mixture(k, d, 100 + k);
        using var prior = new GaussianMixturePrior(TestDevices.Cpu, c, h, w, mixture, PriorTestData.Linear);
        var t = PriorTestData.MixedTimesteps;
        var x = PriorTestData.Noised(mixture.Sample(t.Length, 3), d, t, PriorTestData.Linear, 4);
        var eps = GaussianPriorTests.DeviceEpsilon(prior, x, t);
        var reference = prior.EpsilonReference(x, t);
        TestData.AssertClose(eps, PriorTestData.ToFloat(reference), 1e-4, "mixture eps");
        for (int n = 0; n < t.Length; n++)
        {
            if (t[n] == 0) { Assert.That(eps.AsSpan(n * d, d).ToArray(), Is.All.EqualTo(0f)); continue; }
            TestData.AssertClose(eps.AsSpan(n * d, d), PriorTestData.ToFloat(reference[(n * d)..((n + 1) * d)]), 1e-4, $"mixture eps item {n} (t = {t[n]})");
        }
    }

    [Test]
    public void Epsilon_BetweenTwoCompetingComponents()
    {
        // Points half-way between two well separated components: the responsibilities are far from 0 and 1
        // and the eps depends on both, so the softmax path is exercised, not only the winner.
        int d = 6;
        var m1 = Enumerable.Repeat(1.5, d).ToArray();
        var m2 = Enumerable.Repeat(-1.5, d).ToArray();
        var mixture = new GaussianMixtureDistribution([0.3, 0.7],
            [GaussianDistribution.Full(m1, PriorTestData.Spd(d, 1, 0.2, 1)), GaussianDistribution.Diagonal(m2, Enumerable.Repeat(0.4, d).ToArray())]);
        using var prior = new GaussianMixturePrior(TestDevices.Cpu, 1, 2, 3, mixture, PriorTestData.Linear);
        float[] t = [50f, 300f, 600f, 50f, 300f];
        var x = new float[t.Length * d];
        var rng = new Random(5);
        for (int i = 0; i < x.Length; i++) x[i] = (float)(0.3 * (rng.NextDouble() - 0.5));
        var eps = GaussianPriorTests.DeviceEpsilon(prior, x, t);
        TestData.AssertClose(eps, PriorTestData.ToFloat(prior.EpsilonReference(x, t)), 1e-4, "two competing components");

        using var tx = Tensor.FromHost(TestDevices.Cpu, x, t.Length, 1, 2, 3);
        using var r = Tensor.Empty(TestDevices.Cpu, t.Length, 2);
        prior.PredictResponsibilities(tx, t, r);
        var rh = r.ToHost();
        var expected = new float[rh.Length];
        for (int n = 0; n < t.Length; n++)
        {
            var rr = mixture.AtNoiseLevel(PriorTestData.LinearAlphaBar(t[n])).Responsibilities(PriorTestData.Row(x, n, d));
            expected[2 * n] = (float)rr[0];
            expected[2 * n + 1] = (float)rr[1];
        }
        Assert.That(expected.Min(), Is.GreaterThan(1e-3), "the test points should sit between the components");
        TestData.AssertClose(rh, expected, 1e-4, "responsibilities");
    }

    [Test]
    public void OneComponent_EqualsGaussianPrior()
    {
        var g = PriorTestData.LowRank(12, 3, 71);
        var mixture = new GaussianMixtureDistribution([2.5], [g]);
        using var mp = new GaussianMixturePrior(TestDevices.Cpu, 3, 2, 2, mixture, PriorTestData.Linear);
        using var gp = new GaussianPrior(TestDevices.Cpu, 3, 2, 2, g, PriorTestData.Linear);
        var t = PriorTestData.MixedTimesteps;
        var x = PriorTestData.Noised(g.Sample(t.Length, 1), 12, t, PriorTestData.Linear, 2);
        TestData.AssertClose(GaussianPriorTests.DeviceEpsilon(mp, x, t), GaussianPriorTests.DeviceEpsilon(gp, x, t), 1e-5, "K = 1 vs Gaussian (device)");
        var rm = mp.EpsilonReference(x, t);
        var rg = gp.EpsilonReference(x, t);
        for (int i = 0; i < rm.Length; i++) Assert.That(rm[i], Is.EqualTo(rg[i]).Within(1e-12 + 1e-12 * Math.Abs(rg[i])));
    }

    [TestCase(1.0)]
    [TestCase(0.7)]
    [TestCase(0.05)]
    public void HostScore_MatchesFiniteDifferencesOfMixtureLogDensity(double a)
    {
        var mixture = PriorTestData.Mixture(5, 8, 81, spread: 1);
        var marginal = mixture.AtNoiseLevel(a);
        var x = PriorTestData.Noised(mixture.Sample(3, 1), 8, [(float)(1000 * (1 - a))], PriorTestData.Linear, 2);
        for (int n = 0; n < 3; n++)
        {
            var xi = PriorTestData.Row(x, n, 8);
            var fd = GaussianPriorTests.FiniteDifferenceGradient(v => marginal.LogDensity(v), xi, 1e-5);
            var s = marginal.Score(xi);
            double num = 0, den = 0;
            for (int i = 0; i < 8; i++) { num += (s[i] - fd[i]) * (s[i] - fd[i]); den += fd[i] * fd[i]; }
            Assert.That(Math.Sqrt(num / den), Is.LessThan(1e-6), $"host mixture score vs finite differences, a = {a}, item {n}");
        }
    }

    [Test]
    public void DeviceScore_MatchesFiniteDifferencesOfMixtureLogDensity()
    {
        var mixture = PriorTestData.Mixture(5, 8, 91, spread: 1);
        using var prior = new GaussianMixturePrior(TestDevices.Cpu, 2, 1, 4, mixture, PriorTestData.Linear);
        float t = 300f;
        double a = PriorTestData.LinearAlphaBar(t);
        var x = PriorTestData.Noised(mixture.Sample(4, 1), 8, [t], PriorTestData.Linear, 2);
        var eps = GaussianPriorTests.DeviceEpsilon(prior, x, [t]);
        var marginal = mixture.AtNoiseLevel(a);
        float f = ScoreConversion.EpsilonToScoreFactor(a);
        for (int n = 0; n < 4; n++)
        {
            var fd = GaussianPriorTests.FiniteDifferenceGradient(v => marginal.LogDensity(v), PriorTestData.Row(x, n, 8), 1e-5);
            TestData.AssertClose(eps.AsSpan(n * 8, 8).ToArray().Select(e => e * f).ToArray(), PriorTestData.ToFloat(fd), 1e-4, $"device score item {n}");
        }
    }

    [Test]
    public void Rejects_BadInputs()
    {
        var dev = TestDevices.Cpu;
        var mixture = PriorTestData.Mixture(3, 6, 1);
        var ex = Assert.Throws<ArgumentException>(() => new GaussianMixturePrior(dev, 1, 2, 2, mixture, PriorTestData.Linear));
        Assert.That(ex!.Message, Does.Contain("[1, 2, 2]").And.Contain("dimension 6"));
        using var prior = new GaussianMixturePrior(dev, 1, 2, 3, mixture, PriorTestData.Linear);
        using var x = Tensor.Zeros(dev, 2, 1, 3, 2);
        ex = Assert.Throws<ArgumentException>(() => prior.PredictEpsilon(x, [1f], x));
        Assert.That(ex!.Message, Does.Contain("[1, 2, 3]").And.Contain("[2, 1, 3, 2]"));
        using var x2 = Tensor.Zeros(dev, 2, 1, 2, 3);
        using var r = Tensor.Zeros(dev, 2, 4);
        ex = Assert.Throws<ArgumentException>(() => prior.PredictResponsibilities(x2, [1f], r));
        Assert.That(ex!.Message, Does.Contain("[2, 3]").And.Contain("[2, 4]"));
    }

    [Test]
    [Category("Gpu")]
    public void Gpu_MatchesDoubleReference()
    {
        var dev = TestDevices.Gpu;
        int d = 100, k = 25, n = 512;
        var mixture = PriorTestData.Mixture(k, d, 7);
        using var prior = new GaussianMixturePrior(dev, 1, 10, 10, mixture, PriorTestData.Linear);
        var t = Enumerable.Range(0, n).Select(i => (float)(i * 999.0 / n)).ToArray();
        var x = PriorTestData.Noised(mixture.Sample(n, 1), d, t, PriorTestData.Linear, 2);
        using var tx = Tensor.FromHost(dev, x, n, 1, 10, 10);
        using var te = Tensor.Empty(dev, n, 1, 10, 10);
        prior.PredictEpsilon(tx, t, te);
        var eps = te.ToHost();
        var reference = PriorTestData.ToFloat(prior.EpsilonReference(x, t));
        TestContext.Out.WriteLine($"mixture prior K={k} d={d} N={n} on {dev.Description}: max abs {TestData.MaxAbsError(eps, reference):E3}, relative {TestData.RelativeError(eps, reference):E3}");
        TestData.AssertClose(eps, reference, 1e-4, "gpu mixture eps");

        var g = PriorTestData.Full(d, 8);
        using var gp = new GaussianPrior(dev, 1, 10, 10, g, PriorTestData.Linear);
        gp.PredictEpsilon(tx, t, te);
        var ge = te.ToHost();
        var gr = PriorTestData.ToFloat(gp.EpsilonReference(x, t));
        TestContext.Out.WriteLine($"gaussian prior d={d} N={n}: max abs {TestData.MaxAbsError(ge, gr):E3}, relative {TestData.RelativeError(ge, gr):E3}");
        TestData.AssertClose(ge, gr, 1e-4, "gpu gaussian eps");
    }
}

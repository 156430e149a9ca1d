using NUnit.Framework;
using PosteriorGpu.Samplers.Diagnostics;

namespace PosteriorGpu.Tests.Diagnostics;

public class FrechetDistanceTests
{
    private static GaussianStatistics Stats(double[] mean, double[] cov) => new(mean, cov, 1000);

    /// <summary>A random symmetric positive-definite matrix: B B^T + d I / 4.</summary>
    private static double[] Spd(int d, int seed)
    {
        var b = TestData.Random(d * d, seed);
        var s = new double[d * d];
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++)
            {
                double acc = i == j ? d / 4.0 : 0;
                for (int k = 0; k < d; k++) acc += (double)b[i * d + k] * b[j * d + k];
                s[i * d + j] = acc;
            }
        return s;
    }

    [Test]
    public void DiagonalCovariances_MatchClosedForm()
    {
        // For commuting (here diagonal) covariances tr (S1 S2)^{1/2} = sum sqrt(a_i b_i), so
        // d^2 = ||mu1 - mu2||^2 + sum (sqrt(a_i) - sqrt(b_i))^2.
        double[] a = [1, 4, 0.25], b = [9, 1, 0.25];
        double[] mu1 = [0, 1, 2], mu2 = [1, 1, 0];
        double expected = 1 + 0 + 4 + (1 - 3) * (1 - 3) + (2 - 1) * (2 - 1) + 0;
        var s1 = Stats(mu1, Diagonal(a));
        var s2 = Stats(mu2, Diagonal(b));
        Assert.That(FrechetDistance.Compute(s1, s2), Is.EqualTo(expected).Within(1e-10));
        Assert.That(FrechetDistance.Reference(s1, s2), Is.EqualTo(expected).Within(1e-10));
    }

    private static double[] Diagonal(double[] v)
    {
        var m = new double[v.Length * v.Length];
        for (int i = 0; i < v.Length; i++) m[i * v.Length + i] = v[i];
        return m;
    }

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(7)]
    [TestCase(20)]
    public void GeneralCovariances_MatchReference(int d)
    {
        var s1 = Stats(TestData.Random(d, 70).Select(x => (double)x).ToArray(), Spd(d, 71));
        var s2 = Stats(TestData.Random(d, 72).Select(x => (double)x).ToArray(), Spd(d, 73));
        double fast = FrechetDistance.Compute(s1, s2), reference = FrechetDistance.Reference(s1, s2);
        Assert.That(fast, Is.EqualTo(reference).Within(1e-8 * Math.Max(1, reference)));
        Assert.That(FrechetDistance.Compute(s2, s1), Is.EqualTo(fast).Within(1e-8 * Math.Max(1, fast)), "symmetric");
        Assert.That(FrechetDistance.Compute(s1, s1), Is.EqualTo(0).Within(1e-8 * d), "zero against itself");
        Assert.That(fast, Is.GreaterThan(0));
    }

    [Test]
    public void ScaledCovariance_MatchesClosedForm()
    {
        // S2 = c^2 S1 commutes with S1: d^2 = (1 - c)^2 tr S1 (same means).
        int d = 6;
        var s = Spd(d, 74);
        var mean = new double[d];
        var s1 = Stats(mean, s);
        var s2 = Stats(mean, s.Select(x => 2.25 * x).ToArray());
        double trace = Enumerable.Range(0, d).Sum(i => s[i * d + i]);
        Assert.That(FrechetDistance.Compute(s1, s2), Is.EqualTo(0.25 * trace).Within(1e-9 * trace));
    }

    [Test]
    public void SampleStatistics_OfGaussianDraws_ApproachTheClosedForm()
    {
        // Draws of N(mu, diag(sigma^2)) in 3-D: the sample statistics' distance to the true ones shrinks with n.
        var rng = new Random(75);
        double[] mu = [1, -2, 0.5], sigma = [1, 2, 0.5];
        int n = 20000, d = 3;
        var x = new float[n * d];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < d; j++)
            {
                double z = Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
                x[i * d + j] = (float)(mu[j] + sigma[j] * z);
            }
        var sample = GaussianStatistics.Of(x, n, d);
        var truth = Stats(mu, Diagonal(sigma.Select(s => s * s).ToArray()));
        for (int j = 0; j < d; j++)
        {
            Assert.That(sample.Mean[j], Is.EqualTo(mu[j]).Within(4 * sigma[j] / Math.Sqrt(n)));
            Assert.That(sample.Covariance[j * d + j], Is.EqualTo(sigma[j] * sigma[j]).Within(0.05 * sigma[j] * sigma[j]));
        }
        Assert.That(FrechetDistance.Compute(sample, truth), Is.LessThan(0.01));
        // Shifting every draw by (3, 0, 0) adds 9.
        var shifted = x.Select((v, i) => i % d == 0 ? v + 3f : v).ToArray();
        Assert.That(FrechetDistance.Compute(GaussianStatistics.Of(shifted, n, d), sample), Is.EqualTo(9).Within(1e-4));
    }

    [Test]
    public void Statistics_AreTheUnbiasedSampleMoments()
    {
        float[] x = [1, 2, 3, 6, 5, 4];   // three 2-D vectors: (1, 2), (3, 6), (5, 4)
        var s = GaussianStatistics.Of(x, 3, 2);
        Assert.That(s.Mean, Is.EqualTo(new[] { 3.0, 4.0 }).Within(1e-12));
        // numpy.cov([[1, 3, 5], [2, 6, 4]]) = [[4, 2], [2, 4]]
        Assert.That(s.Covariance, Is.EqualTo(new[] { 4.0, 2.0, 2.0, 4.0 }).Within(1e-12));
    }

    [Test]
    public void MismatchedInputs_AreRejected()
    {
        Assert.Throws<ArgumentException>(() => GaussianStatistics.Of(new float[5], 2, 3));
        Assert.Throws<ArgumentException>(() => GaussianStatistics.Of(new float[3], 1, 3));
        var ex = Assert.Throws<ArgumentException>(() => FrechetDistance.Compute(Stats([0], [1]), Stats([0, 0], [1, 0, 0, 1])));
        Assert.That(ex!.Message, Does.Contain("dimensions 1 and 2"));
    }
}

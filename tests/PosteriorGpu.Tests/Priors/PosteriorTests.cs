using MathNet.Numerics.LinearAlgebra;
using NUnit.Framework;
using PosteriorGpu.Models.Priors;

namespace PosteriorGpu.Tests.Priors;

public class PosteriorTests
{
    private static double MaxAbs(Matrix<double> m) => m.Enumerate().Max(Math.Abs);

    [TestCase(6, 3, 0.1)]
    [TestCase(5, 8, 0.5)]
    [TestCase(1, 1, 0.3)]
    public void GaussianPosterior_MatchesInformationForm(int d, int m, double sigma)
    {
        var prior = GaussianDistribution.LowRankPlusDiagonal(PriorTestData.Vector(d, 1), PriorTestData.Vector(d, 2).Select(v => 0.1 + Math.Abs(v)).ToArray(),
            PriorTestData.RandomMatrix(d, 2, 3));
        var a = PriorTestData.RandomMatrix(m, d, 4);
        var y = PriorTestData.Vector(m, 5);
        var post = GaussianPosterior.Compute(prior, a, y, sigma);

        var priorPrecision = prior.Covariance.Inverse();
        var cov = (priorPrecision + a.TransposeThisAndMultiply(a) / (sigma * sigma)).Inverse();
        var mean = cov * (priorPrecision * prior.Mean + a.TransposeThisAndMultiply(Vector<double>.Build.DenseOfArray(y)) / (sigma * sigma));
        Assert.That(MaxAbs(post.Covariance - cov), Is.LessThan(1e-10 * (1 + MaxAbs(cov))), "posterior covariance");
        Assert.That((post.Mean - mean).AbsoluteMaximum(), Is.LessThan(1e-9 * (1 + mean.AbsoluteMaximum())), "posterior mean");
    }

    [Test]
    public void GaussianPosterior_FloatMatrixOverload_AndErrors()
    {
        var prior = PriorTestData.Full(4, 11);
        var a = PriorTestData.RandomMatrix(2, 4, 12);
        var af = new float[8];
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 4; j++) af[i * 4 + j] = (float)a[i, j];
        var aRounded = GaussianPosterior.MatrixOf(af, 2, 4);
        double[] y = [0.3, -0.2];
        var p1 = GaussianPosterior.Compute(prior, af, 2, y, 0.2);
        var p2 = GaussianPosterior.Compute(prior, aRounded, y, 0.2);
        Assert.That((p1.Mean - p2.Mean).AbsoluteMaximum(), Is.LessThan(1e-14));

        var ex = Assert.Throws<ArgumentException>(() => GaussianPosterior.Compute(prior, PriorTestData.RandomMatrix(2, 5, 1), y, 0.2));
        Assert.That(ex!.Message, Does.Contain("2x5").And.Contain("dimension 4"));
        ex = Assert.Throws<ArgumentException>(() => GaussianPosterior.Compute(prior, a, [1.0, 2.0, 3.0], 0.2));
        Assert.That(ex!.Message, Does.Contain("3 entries").And.Contain("2x4"));
        Assert.Throws<ArgumentOutOfRangeException>(() => GaussianPosterior.Compute(prior, a, y, 0));
        ex = Assert.Throws<ArgumentException>(() => GaussianPosterior.Compute(prior, af.AsSpan(0, 7), 2, y, 0.2));
        Assert.That(ex!.Message, Does.Contain("7 values").And.Contain("2 x 4"));
    }

    [Test]
    public void GaussianPosterior_ExactSamples_HaveTheFormulaMoments()
    {
        int d = 5, count = 20000;
        var prior = PriorTestData.Full(d, 21);
        var a = PriorTestData.RandomMatrix(2, d, 22);
        var post = GaussianPosterior.Compute(prior, a, [0.5, -1.0], 0.3);
        var s = post.Sample(count, 23);
        var mean = DistributionDistances.SampleMean(s, d);
        var cov = DistributionDistances.SampleCovariance(s, d);
        for (int i = 0; i < d; i++)
        {
            double sd = Math.Sqrt(post.Covariance[i, i]);
            Assert.That(mean[i], Is.EqualTo(post.Mean[i]).Within(4 * sd / Math.Sqrt(count)), $"mean[{i}]");
            for (int j = 0; j < d; j++)
            {
                double scale = Math.Sqrt(post.Covariance[i, i] * post.Covariance[j, j]);
                Assert.That(cov[i, j], Is.EqualTo(post.Covariance[i, j]).Within(0.05 * scale), $"cov[{i}, {j}]");
            }
        }
        Assert.That(DistributionDistances.GaussianW2(s, post), Is.LessThan(0.03));
        // Same seed, same samples.
        Assert.That(post.Sample(10, 23), Is.EqualTo(s.AsSpan(0, 10 * d).ToArray()));
    }

    [Test]
    public void MixturePosterior_WeightsAndMeans_MatchNumericalIntegration1D()
    {
        double[] means = [-2, 0.5, 3], vars = [0.3, 1.0, 0.2], w = [0.5, 0.2, 0.3];
        var prior = new GaussianMixtureDistribution(w, means.Select((m, k) => GaussianDistribution.Diagonal([m], [vars[k]])).ToArray());
        double gain = 1.7, sigma = 0.6, y = 1.1;
        var post = GaussianMixturePosterior.Compute(prior, Matrix<double>.Build.DenseOfArray(new double[,] { { gain } }), [y], sigma);

        // Trapezoid rule on a fine grid of p(y | x) w_k N(x; mu_k, v_k).
        double lo = -12, hi = 12;
        int steps = 200000;
        double hx = (hi - lo) / steps;
        var mass = new double[3];
        var first = new double[3];
        for (int i = 0; i <= steps; i++)
        {
            double x = lo + i * hx, tw = i == 0 || i == steps ? 0.5 : 1;
            double like = Math.Exp(-0.5 * (y - gain * x) * (y - gain * x) / (sigma * sigma));
            for (int k = 0; k < 3; k++)
            {
                double p = tw * hx * w[k] * Math.Exp(-0.5 * (x - means[k]) * (x - means[k]) / vars[k]) / Math.Sqrt(vars[k]) * like;
                mass[k] += p;
                first[k] += p * x;
            }
        }
        double total = mass.Sum();
        var weights = post.Weights;
        for (int k = 0; k < 3; k++)
        {
            Assert.That(weights[k], Is.EqualTo(mass[k] / total).Within(1e-8), $"posterior weight {k}");
            Assert.That(post.Components[k].Mean[0], Is.EqualTo(first[k] / mass[k]).Within(1e-8), $"component {k} posterior mean");
        }
        Assert.That(post.Mean()[0], Is.EqualTo(first.Sum() / total).Within(1e-8), "posterior mean");
    }

    [Test]
    public void MixturePosterior_MeanMatchesBayesRuleByImportanceSampling()
    {
        int d = 3, count = 200000;
        var prior = PriorTestData.Mixture(4, d, 31, spread: 1.5);
        var a = PriorTestData.RandomMatrix(1, d, 32);
        double sigma = 0.5;
        double[] y = [0.4];
        var post = GaussianMixturePosterior.Compute(prior, a, y, sigma);
        // Self-normalised importance sampling with prior samples and likelihood weights: E[x | y] by Bayes' rule.
        var xs = prior.Sample(count, 33);
        var mean = new double[d];
        double total = 0;
        for (int n = 0; n < count; n++)
        {
            double ax = 0;
            for (int i = 0; i < d; i++) ax += a[0, i] * xs[n * d + i];
            double l = Math.Exp(-0.5 * (y[0] - ax) * (y[0] - ax) / (sigma * sigma));
            total += l;
            for (int i = 0; i < d; i++) mean[i] += l * xs[n * d + i];
        }
        var exact = post.Mean();
        var sd = post.Covariance().Diagonal();
        for (int i = 0; i < d; i++)
            Assert.That(mean[i] / total, Is.EqualTo(exact[i]).Within(0.03 * Math.Sqrt(sd[i])), $"posterior mean[{i}]");
    }

    [Test]
    public void MixturePosterior_ExactSamples_HaveTheMixtureMoments()
    {
        int d = 4, count = 20000;
        var prior = PriorTestData.Mixture(5, d, 41, spread: 2);
        var post = GaussianMixturePosterior.Compute(prior, PriorTestData.RandomMatrix(2, d, 42), [1.0, -0.5], 0.4);
        var s = post.Sample(count, 43);
        var mean = DistributionDistances.SampleMean(s, d);
        var cov = DistributionDistances.SampleCovariance(s, d);
        var em = post.Mean();
        var ec = post.Covariance();
        for (int i = 0; i < d; i++)
        {
            double sd = Math.Sqrt(ec[i, i]);
            Assert.That(mean[i], Is.EqualTo(em[i]).Within(4 * sd / Math.Sqrt(count)), $"mean[{i}]");
            for (int j = 0; j < d; j++)
                Assert.That(cov[i, j], Is.EqualTo(ec[i, j]).Within(0.06 * Math.Sqrt(ec[i, i] * ec[j, j])), $"cov[{i}, {j}]");
        }
    }

    [Test]
    public void MixturePosterior_OneComponent_IsTheGaussianPosterior()
    {
        var g = PriorTestData.Full(5, 51);
        var a = PriorTestData.RandomMatrix(3, 5, 52);
        double[] y = [0.1, 0.2, -0.3];
        var mp = GaussianMixturePosterior.Compute(new GaussianMixtureDistribution([1.0], [g]), a, y, 0.2);
        var gp = GaussianPosterior.Compute(g, a, y, 0.2);
        Assert.That(mp.Weights[0], Is.EqualTo(1.0));
        Assert.That((mp.Components[0].Mean - gp.Mean).AbsoluteMaximum(), Is.LessThan(1e-14));
        Assert.That(DistributionDistances.GaussianW2(mp.Components[0], gp), Is.LessThan(1e-6));
    }

    [Test]
    public void MixturePosterior_FarComponents_KeepTheirWeightsInLogSpace()
    {
        // Evidences of exp(-2000) and below: direct normalisation would divide 0 by 0.
        var prior = new GaussianMixtureDistribution([0.5, 0.5],
            [GaussianDistribution.Isotropic([60.0, 0.0], 0.1), GaussianDistribution.Isotropic([63.0, 0.0], 0.1)]);
        var post = GaussianMixturePosterior.Compute(prior, Matrix<double>.Build.DenseIdentity(2), [0.0, 0.0], 0.1);
        var w = post.Weights;
        Assert.That(w.Sum(), Is.EqualTo(1.0).Within(1e-12));
        Assert.That(w[0], Is.EqualTo(1.0).Within(1e-12));
        Assert.That(post.LogWeights[1], Is.LessThan(-100).And.GreaterThan(double.NegativeInfinity));
    }
}

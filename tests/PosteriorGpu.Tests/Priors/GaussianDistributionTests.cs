using MathNet.Numerics.LinearAlgebra;
using NUnit.Framework;
using PosteriorGpu.Models.Priors;

namespace PosteriorGpu.Tests.Priors;

public class GaussianDistributionTests
{
    [Test]
    public void LowRankPlusDiagonal_IsDPlusVVt_AndEigenReconstructs()
    {
        double[] diag = [0.5, 0.2, 0.3, 0.9];
        var v = PriorTestData.RandomMatrix(4, 2, 1);
        var g = GaussianDistribution.LowRankPlusDiagonal([0, 1, 2, 3], diag, v);
        var expected = v * v.Transpose() + Matrix<double>.Build.DenseOfDiagonalArray(diag);
        Assert.That((g.Covariance - expected).Enumerate().Max(Math.Abs), Is.LessThan(1e-14));
        var u = g.Eigenvectors;
        var rebuilt = u * Matrix<double>.Build.DenseOfDiagonalArray(g.Eigenvalues.ToArray()) * u.Transpose();
        Assert.That((rebuilt - expected).Enumerate().Max(Math.Abs), Is.LessThan(1e-12));
        Assert.That((u.TransposeThisAndMultiply(u) - Matrix<double>.Build.DenseIdentity(4)).Enumerate().Max(Math.Abs), Is.LessThan(1e-12));
    }

    [Test]
    public void LogDensityAndScore_MatchExplicitFormulas()
    {
        var g = PriorTestData.Full(5, 2);
        var x = PriorTestData.Vector(5, 3, 2);
        var dx = Vector<double>.Build.DenseOfArray(x) - g.Mean;
        var inv = g.Covariance.Inverse();
        double expected = -0.5 * (5 * Math.Log(2 * Math.PI) + Math.Log(g.Covariance.Determinant()) + dx * (inv * dx));
        Assert.That(g.LogDensity(x), Is.EqualTo(expected).Within(1e-10));
        var score = g.Score(x);
        var es = -(inv * dx);
        for (int i = 0; i < 5; i++) Assert.That(score[i], Is.EqualTo(es[i]).Within(1e-10));
    }

    [Test]
    public void AtNoiseLevel_IsTheForwardMarginal()
    {
        var g = PriorTestData.LowRank(4, 1, 5);
        var m = g.AtNoiseLevel(0.3);
        for (int i = 0; i < 4; i++)
        {
            Assert.That(m.Mean[i], Is.EqualTo(Math.Sqrt(0.3) * g.Mean[i]).Within(1e-15));
            for (int j = 0; j < 4; j++)
                Assert.That(m.Covariance[i, j], Is.EqualTo(0.3 * g.Covariance[i, j] + (i == j ? 0.7 : 0)).Within(1e-15));
        }
        var d = PriorTestData.Diagonal(3, 6).AtNoiseLevel(0);
        Assert.That(d.IsDiagonal);
        Assert.That(d.Covariance.Diagonal().ToArray(), Is.EqualTo(new[] { 1.0, 1.0, 1.0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => g.AtNoiseLevel(1.5));
    }

    [Test]
    public void Samples_HaveTheMoments_LowRankPrior()
    {
        int d = 6, count = 20000;
        var g = PriorTestData.LowRank(d, 2, 7);
        var s = g.Sample(count, 8);
        Assert.That(DistributionDistances.GaussianW2(s, g), Is.LessThan(0.03));
        var m = DistributionDistances.SampleMean(s, d);
        for (int i = 0; i < d; i++)
            Assert.That(m[i], Is.EqualTo(g.Mean[i]).Within(4 * Math.Sqrt(g.Covariance[i, i] / count)));
    }

    [Test]
    public void Rejects_BadCovariances()
    {
        var ex = Assert.Throws<ArgumentException>(() => GaussianDistribution.Full([0.0, 0.0], new double[,] { { 1, 2 }, { 2, 1 } }));
        Assert.That(ex!.Message, Does.Contain("not positive definite"));
        ex = Assert.Throws<ArgumentException>(() => GaussianDistribution.Full([0.0, 0.0], new double[,] { { 1, 0.5 }, { 0.4, 1 } }));
        Assert.That(ex!.Message, Does.Contain("not symmetric"));
        ex = Assert.Throws<ArgumentException>(() => GaussianDistribution.Full([0.0, 0.0, 0.0], new double[,] { { 1, 0 }, { 0, 1 } }));
        Assert.That(ex!.Message, Does.Contain("2x2").And.Contain("3x3"));
        ex = Assert.Throws<ArgumentException>(() => GaussianDistribution.Diagonal([0.0, 0.0], [1.0, 0.0]));
        Assert.That(ex!.Message, Does.Contain("variance[1]"));
        ex = Assert.Throws<ArgumentException>(() => new GaussianMixtureDistribution([1.0, 1.0],
            [GaussianDistribution.Isotropic([0.0], 1), GaussianDistribution.Isotropic([0.0, 1.0], 1)]));
        Assert.That(ex!.Message, Does.Contain("component 1 has dimension 2"));
        ex = Assert.Throws<ArgumentException>(() => new GaussianMixtureDistribution([1.0], [GaussianDistribution.Isotropic([0.0], 1), GaussianDistribution.Isotropic([1.0], 1)]));
        Assert.That(ex!.Message, Does.Contain("1 weights for 2 components"));
    }
}

using MathNet.Numerics.LinearAlgebra;
using NUnit.Framework;
using PosteriorGpu.Models.Priors;

namespace PosteriorGpu.Tests.Priors;

public class DistributionDistancesTests
{
    [Test]
    public void GaussianW2_IdenticalIsZero_ShiftedIsTheShift()
    {
        var g = PriorTestData.Full(6, 1);
        Assert.That(DistributionDistances.GaussianW2(g, g), Is.LessThan(1e-6));
        var shift = PriorTestData.Vector(6, 2);
        var moved = GaussianDistribution.Full((g.Mean + Vector<double>.Build.DenseOfArray(shift)).ToArray(), g.Covariance);
        double norm = Math.Sqrt(shift.Sum(v => v * v));
        Assert.That(DistributionDistances.GaussianW2(g, moved), Is.EqualTo(norm).Within(1e-6));
    }

    [Test]
    public void GaussianW2_Diagonal_HasTheClosedForm()
    {
        double[] m1 = [0, 1, 2], m2 = [1, 1, 0], v1 = [1, 4, 0.25], v2 = [4, 1, 1];
        double expected = Math.Sqrt(1 + 0 + 4 + Enumerable.Range(0, 3).Sum(i => Math.Pow(Math.Sqrt(v1[i]) - Math.Sqrt(v2[i]), 2)));
        var p = GaussianDistribution.Diagonal(m1, v1);
        var q = GaussianDistribution.Diagonal(m2, v2);
        Assert.That(DistributionDistances.GaussianW2(p, q), Is.EqualTo(expected).Within(1e-10));
        // Symmetric in its arguments, also for non-commuting covariances.
        var a = PriorTestData.Full(4, 3);
        var b = PriorTestData.Full(4, 4);
        Assert.That(DistributionDistances.GaussianW2(a, b), Is.EqualTo(DistributionDistances.GaussianW2(b, a)).Within(1e-9));
        var ex = Assert.Throws<ArgumentException>(() => DistributionDistances.GaussianW2(a, p));
        Assert.That(ex!.Message, Does.Contain("4x4").And.Contain("3x3"));
    }

    [Test]
    public void W2Sorted1D_UnequalSizes_IsExact()
    {
        Assert.That(DistributionDistances.W2Sorted1D([0.0, 1.0], [0.0, 0.5, 1.0]), Is.EqualTo(Math.Sqrt(1.0 / 12)).Within(1e-15));
        Assert.That(DistributionDistances.W2Sorted1D([1.0, 2.0, 3.0], [1.5, 2.5, 3.5]), Is.EqualTo(0.5).Within(1e-15));
        Assert.That(DistributionDistances.W2Sorted1D([2.0], [2.0, 2.0, 2.0, 2.0]), Is.EqualTo(0.0));
    }

    [Test]
    public void SlicedW2_Sanity()
    {
        int d = 8, count = 4000;
        var g = PriorTestData.Full(d, 11);
        var s1 = g.Sample(count, 1);
        Assert.That(DistributionDistances.SlicedW2(s1, s1, d), Is.EqualTo(0.0));

        // An exact shift by delta moves every projection by delta . theta: SW2^2 is the mean of (delta . theta)^2, about |delta|^2 / d.
        var delta = PriorTestData.Vector(d, 12);
        var shifted = s1.Select((v, i) => v + (float)delta[i % d]).ToArray();
        double sw = DistributionDistances.SlicedW2(s1, shifted, d, directions: 512, seed: 3);
        double expected = Math.Sqrt(delta.Sum(v => v * v) / d);
        Assert.That(sw, Is.EqualTo(expected).Within(0.12 * expected));

        // Two independent sample sets of one law are close; of another law (the same shifted) far.
        var s2 = g.Sample(count / 2, 2);
        double same = DistributionDistances.SlicedW2(s1, s2, d, seed: 4);
        double other = DistributionDistances.SlicedW2(shifted, s2, d, seed: 4);
        TestContext.Out.WriteLine($"sliced W2: same law {same:F4}, shifted law {other:F4} (expected {expected:F4})");
        Assert.That(same, Is.LessThan(0.05));
        Assert.That(other, Is.GreaterThan(5 * same));
        Assert.Throws<ArgumentException>(() => DistributionDistances.SlicedW2(s1, s2.AsSpan(0, 7), d));
    }

    [Test]
    public void SampleMoments_MatchDirectComputation()
    {
        float[] s = [1, 2, 3, 6, 5, 4];
        Assert.That(DistributionDistances.SampleMean(s, 2), Is.EqualTo(new[] { 3.0, 4.0 }));
        var c = DistributionDistances.SampleCovariance(s, 2);
        Assert.That(c[0, 0], Is.EqualTo(4.0).Within(1e-12));
        Assert.That(c[1, 1], Is.EqualTo(4.0).Within(1e-12));
        Assert.That(c[0, 1], Is.EqualTo(2.0).Within(1e-12));
        Assert.That(c[1, 0], Is.EqualTo(2.0).Within(1e-12));
    }
}

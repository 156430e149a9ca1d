using MathNet.Numerics.Distributions;
using MathNet.Numerics.LinearAlgebra;

namespace PosteriorGpu.Models.Priors;

/// <summary>
/// Distances the posterior tests measure samplers with: the 2-Wasserstein distance between two Gaussians
/// (closed form), the exact 1-D W2 between two empirical distributions, and the sliced W2 between two sample
/// sets; plus the sample mean and covariance.
/// </summary>
public static class DistributionDistances
{
    /// <summary>W2(N(m1, S1), N(m2, S2)) = sqrt(|m1 - m2|^2 + tr(S1 + S2 - 2 (S2^{1/2} S1 S2^{1/2})^{1/2}))
    /// (Dowson and Landau 1982), matrix square roots by symmetric eigendecomposition.</summary>
    /// <exception cref="ArgumentException">The dimensions disagree.</exception>
    public static double GaussianW2(IReadOnlyList<double> mean1, Matrix<double> cov1, IReadOnlyList<double> mean2, Matrix<double> cov2)
    {
        int d = mean1.Count;
        if (mean2.Count != d || cov1.RowCount != d || cov1.ColumnCount != d || cov2.RowCount != d || cov2.ColumnCount != d)
            throw new ArgumentException(
                $"W2 needs two Gaussians of one dimension but got means of {mean1.Count} and {mean2.Count} entries and covariances " +
                $"{cov1.RowCount}x{cov1.ColumnCount} and {cov2.RowCount}x{cov2.ColumnCount}");
        double m = 0;
        for (int i = 0; i < d; i++) m += (mean1[i] - mean2[i]) * (mean1[i] - mean2[i]);
        var r2 = SymmetricSqrt(cov2);
        var cross = SymmetricSqrt(r2 * cov1 * r2);
        double tr = cov1.Trace() + cov2.Trace() - 2 * cross.Trace();
        // Rounding can leave a tiny negative trace for (nearly) identical covariances.
        return Math.Sqrt(Math.Max(m + tr, 0));
    }

    /// <summary>W2 between two <see cref="GaussianDistribution"/>s.</summary>
    public static double GaussianW2(GaussianDistribution p, GaussianDistribution q) =>
        GaussianW2(p.Mean.ToArray(), p.Covariance, q.Mean.ToArray(), q.Covariance);

    /// <summary>The Gaussian W2 between the moments of a sample set (row-major [count, d]) and a Gaussian: the
    /// metric for "is the sampler's mean and covariance right".</summary>
    public static double GaussianW2(ReadOnlySpan<float> samples, GaussianDistribution g) =>
        GaussianW2(SampleMean(samples, g.Dimension), SampleCovariance(samples, g.Dimension), g.Mean.ToArray(), g.Covariance);

    /// <summary>The exact W2 between the empirical distributions of two sorted 1-D samples (any sizes): the
    /// L2 distance of their quantile functions, integrated over the merged breakpoints i/n and j/m.</summary>
    public static double W2Sorted1D(ReadOnlySpan<double> sortedA, ReadOnlySpan<double> sortedB)
    {
        int n = sortedA.Length, m = sortedB.Length;
        if (n == 0 || m == 0) throw new ArgumentException("W2 needs two non-empty samples");
        double acc = 0, level = 0;
        int i = 0, j = 0;
        while (i < n && j < m)
        {
            double nextA = (double)(i + 1) / n, nextB = (double)(j + 1) / m;
            double next = Math.Min(nextA, nextB);
            double diff = sortedA[i] - sortedB[j];
            acc += (next - level) * diff * diff;
            level = next;
            // Compare in integers so equal breakpoints advance both pointers together.
            long ca = (long)(i + 1) * m, cb = (long)(j + 1) * n;
            if (ca <= cb) i++;
            if (cb <= ca) j++;
        }
        return Math.Sqrt(acc);
    }

    /// <summary>Sliced W2 between two sample sets (row-major [count, d], any counts): sqrt of the mean over
    /// <paramref name="directions"/> random unit directions (normalised Gaussians from a System.Random seeded
    /// with <paramref name="seed"/>) of the squared exact 1-D W2 of the projections.</summary>
    /// <exception cref="ArgumentException">A set is empty or not a whole number of d-vectors.</exception>
    public static double SlicedW2(ReadOnlySpan<float> a, ReadOnlySpan<float> b, int dimension, int directions = 128, int seed = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(dimension, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(directions, 1);
        if (a.Length == 0 || b.Length == 0 || a.Length % dimension != 0 || b.Length % dimension != 0)
            throw new ArgumentException($"sliced W2 needs non-empty sets of {dimension}-vectors but got {a.Length} and {b.Length} values");
        var rng = new Random(seed);
        var theta = new double[dimension];
        var pa = new double[a.Length / dimension];
        var pb = new double[b.Length / dimension];
        double acc = 0;
        for (int t = 0; t < directions; t++)
        {
            double norm = 0;
            for (int i = 0; i < dimension; i++)
            {
                theta[i] = Normal.Sample(rng, 0, 1);
                norm += theta[i] * theta[i];
            }
            norm = Math.Sqrt(norm);
            for (int i = 0; i < dimension; i++) theta[i] /= norm;
            Project(a, theta, pa);
            Project(b, theta, pb);
            Array.Sort(pa);
            Array.Sort(pb);
            double w = W2Sorted1D(pa, pb);
            acc += w * w;
        }
        return Math.Sqrt(acc / directions);
    }

    /// <summary>The sample mean of row-major [count, d] samples.</summary>
    public static double[] SampleMean(ReadOnlySpan<float> samples, int dimension)
    {
        int count = Count(samples, dimension);
        var m = new double[dimension];
        for (int n = 0; n < count; n++)
            for (int i = 0; i < dimension; i++) m[i] += samples[n * dimension + i];
        for (int i = 0; i < dimension; i++) m[i] /= count;
        return m;
    }

    /// <summary>The unbiased sample covariance (divisor count - 1) of row-major [count, d] samples.</summary>
    public static Matrix<double> SampleCovariance(ReadOnlySpan<float> samples, int dimension)
    {
        int count = Count(samples, dimension);
        if (count < 2) throw new ArgumentException("a sample covariance needs at least two samples");
        var m = SampleMean(samples, dimension);
        var c = new double[dimension, dimension];
        var v = new double[dimension];
        for (int n = 0; n < count; n++)
        {
            for (int i = 0; i < dimension; i++) v[i] = samples[n * dimension + i] - m[i];
            for (int i = 0; i < dimension; i++)
                for (int j = 0; j <= i; j++) c[i, j] += v[i] * v[j];
        }
        for (int i = 0; i < dimension; i++)
            for (int j = 0; j <= i; j++) c[j, i] = c[i, j] /= count - 1;
        return Matrix<double>.Build.DenseOfArray(c);
    }

    /// <summary>U diag(sqrt(max(lambda, 0))) U^T for a symmetric positive semi-definite matrix.</summary>
    public static Matrix<double> SymmetricSqrt(Matrix<double> s)
    {
        var evd = ((s + s.Transpose()) * 0.5).Evd(Symmetricity.Symmetric);
        var u = evd.EigenVectors;
        var root = Matrix<double>.Build.DenseOfDiagonalArray(evd.EigenValues.Select(c => Math.Sqrt(Math.Max(c.Real, 0))).ToArray());
        return u * root * u.Transpose();
    }

    private static int Count(ReadOnlySpan<float> samples, int dimension)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(dimension, 1);
        if (samples.Length == 0 || samples.Length % dimension != 0)
            throw new ArgumentException($"expected a non-empty set of {dimension}-vectors but got {samples.Length} values");
        return samples.Length / dimension;
    }

    private static void Project(ReadOnlySpan<float> x, double[] theta, double[] result)
    {
        int d = theta.Length;
        for (int n = 0; n < result.Length; n++)
        {
            double acc = 0;
            for (int i = 0; i < d; i++) acc += x[n * d + i] * theta[i];
            result[n] = acc;
        }
    }
}

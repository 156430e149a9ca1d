using MathNet.Numerics.Distributions;
using MathNet.Numerics.LinearAlgebra;

namespace PosteriorGpu.Models.Priors;

/// <summary>
/// A multivariate normal N(mu, Sigma) on the host, in double precision: log density, score, exact
/// seeded sampling, its noised marginal at a diffusion level, and the eigendecomposition the device
/// priors use. Sigma must be symmetric positive definite. Immutable; the vectors and matrices it
/// exposes are shared, not copied: do not modify them.
/// </summary>
public sealed class GaussianDistribution
{
    private const double Log2Pi = 1.8378770664093454835606594728112;
    private readonly double[] diagonal; // the variances when IsDiagonal, else empty
    private double[]? eigenvalues;
    private Matrix<double>? eigenvectors;
    private Matrix<double>? cholesky;
    private double logDeterminant = double.NaN;

    private GaussianDistribution(Vector<double> mean, Matrix<double> covariance, double[]? variances)
    {
        Mean = mean;
        Covariance = covariance;
        diagonal = variances ?? [];
    }

    /// <summary>The mean mu.</summary>
    public Vector<double> Mean { get; }

    /// <summary>The covariance Sigma (dense, symmetric).</summary>
    public Matrix<double> Covariance { get; }

    /// <summary>d, the dimension.</summary>
    public int Dimension => Mean.Count;

    /// <summary>True when Sigma was given as a diagonal (its eigenvectors are then the identity).</summary>
    public bool IsDiagonal => diagonal.Length > 0;

    /// <summary>N(mu, Sigma) with a full covariance (symmetrised; must be positive definite).</summary>
    /// <exception cref="ArgumentException">Sizes disagree, a value is not finite, Sigma is not symmetric or not positive definite.</exception>
    public static GaussianDistribution Full(IReadOnlyList<double> mean, Matrix<double> covariance)
    {
        ArgumentNullException.ThrowIfNull(mean);
        ArgumentNullException.ThrowIfNull(covariance);
        var mu = CheckedMean(mean);
        int d = mu.Count;
        if (covariance.RowCount != d || covariance.ColumnCount != d)
            throw new ArgumentException($"covariance is {covariance.RowCount}x{covariance.ColumnCount} but the mean has {d} entries; expected {d}x{d}", nameof(covariance));
        double scale = 0;
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++)
            {
                double v = covariance[i, j];
                if (!double.IsFinite(v)) throw new ArgumentException($"covariance[{i}, {j}] = {v} is not finite", nameof(covariance));
                scale = Math.Max(scale, Math.Abs(v));
            }
        for (int i = 0; i < d; i++)
            for (int j = 0; j < i; j++)
            {
                if (Math.Abs(covariance[i, j] - covariance[j, i]) > 1e-8 * scale)
                    throw new ArgumentException($"covariance is not symmetric: [{i}, {j}] = {covariance[i, j]} but [{j}, {i}] = {covariance[j, i]}", nameof(covariance));
            }
        var sym = (covariance + covariance.Transpose()) * 0.5;
        var g = new GaussianDistribution(mu, sym, null);
        g.RequirePositiveDefinite();
        return g;
    }

    /// <summary>N(mu, Sigma) with Sigma given as a row-major d x d array.</summary>
    public static GaussianDistribution Full(IReadOnlyList<double> mean, double[,] covariance) =>
        Full(mean, Matrix<double>.Build.DenseOfArray(covariance));

    /// <summary>N(mu, diag(variances)); every variance must be positive.</summary>
    /// <exception cref="ArgumentException">Sizes disagree or a variance is not positive and finite.</exception>
    public static GaussianDistribution Diagonal(IReadOnlyList<double> mean, IReadOnlyList<double> variances)
    {
        ArgumentNullException.ThrowIfNull(mean);
        ArgumentNullException.ThrowIfNull(variances);
        var mu = CheckedMean(mean);
        if (variances.Count != mu.Count)
            throw new ArgumentException($"{variances.Count} variances for a mean of {mu.Count} entries", nameof(variances));
        var v = variances.ToArray();
        for (int i = 0; i < v.Length; i++)
        {
            if (!(v[i] > 0 && double.IsFinite(v[i])))
                throw new ArgumentException($"variance[{i}] = {v[i]} must be positive and finite", nameof(variances));
        }
        return new GaussianDistribution(mu, Matrix<double>.Build.DenseOfDiagonalArray(v), v);
    }

    /// <summary>N(mu, variance I).</summary>
    public static GaussianDistribution Isotropic(IReadOnlyList<double> mean, double variance) =>
        Diagonal(mean, Enumerable.Repeat(variance, mean.Count).ToArray());

    /// <summary>N(mu, D + V V^T) with D = diag(<paramref name="diagonal"/>) positive and V (<paramref name="factor"/>)
    /// d x r. Sigma is formed densely (fine for d up to a few hundred) and treated as a full covariance.</summary>
    /// <exception cref="ArgumentException">Sizes disagree or a diagonal entry is not positive.</exception>
    public static GaussianDistribution LowRankPlusDiagonal(IReadOnlyList<double> mean, IReadOnlyList<double> diagonal, Matrix<double> factor)
    {
        ArgumentNullException.ThrowIfNull(mean);
        ArgumentNullException.ThrowIfNull(diagonal);
        ArgumentNullException.ThrowIfNull(factor);
        int d = mean.Count;
        if (diagonal.Count != d)
            throw new ArgumentException($"{diagonal.Count} diagonal entries for a mean of {d} entries", nameof(diagonal));
        if (factor.RowCount != d)
            throw new ArgumentException($"the low-rank factor is {factor.RowCount}x{factor.ColumnCount} but the mean has {d} entries; expected {d} rows", nameof(factor));
        for (int i = 0; i < d; i++)
        {
            if (!(diagonal[i] > 0 && double.IsFinite(diagonal[i])))
                throw new ArgumentException($"diagonal[{i}] = {diagonal[i]} must be positive and finite", nameof(diagonal));
        }
        var sigma = factor * factor.Transpose();
        for (int i = 0; i < d; i++) sigma[i, i] += diagonal[i];
        return Full(mean, sigma);
    }

    /// <summary>Eigenvalues of Sigma, in the order of <see cref="Eigenvectors"/>' columns (the variances for a diagonal Sigma).</summary>
    public IReadOnlyList<double> Eigenvalues
    {
        get
        {
            EnsureEigen();
            return eigenvalues!;
        }
    }

    /// <summary>Orthonormal eigenvectors U of Sigma as columns, Sigma = U diag(lambda) U^T (the identity for a diagonal Sigma).</summary>
    public Matrix<double> Eigenvectors
    {
        get
        {
            EnsureEigen();
            return eigenvectors!;
        }
    }

    /// <summary>The lower Cholesky factor L of Sigma = L L^T.</summary>
    public Matrix<double> CholeskyFactor
    {
        get
        {
            EnsureCholesky();
            return cholesky!;
        }
    }

    /// <summary>log det Sigma.</summary>
    public double LogDeterminant
    {
        get
        {
            EnsureCholesky();
            return logDeterminant;
        }
    }

    /// <summary>The marginal of x_a = sqrt(a) x_0 + sqrt(1 - a) eps at alpha_bar = a: N(sqrt(a) mu, a Sigma + (1 - a) I).</summary>
    /// <exception cref="ArgumentOutOfRangeException">a is outside [0, 1].</exception>
    public GaussianDistribution AtNoiseLevel(double a)
    {
        RequireLevel(a);
        var mu = Mean * Math.Sqrt(a);
        if (IsDiagonal)
            return new GaussianDistribution(mu, Matrix<double>.Build.DenseOfDiagonalArray(diagonal.Select(v => a * v + (1 - a)).ToArray()),
                diagonal.Select(v => a * v + (1 - a)).ToArray());
        var c = Covariance * a;
        for (int i = 0; i < Dimension; i++) c[i, i] += 1 - a;
        var g = new GaussianDistribution(mu, c, null);
        if (eigenvalues is not null)
        {
            g.eigenvalues = eigenvalues.Select(l => a * l + (1 - a)).ToArray();
            g.eigenvectors = eigenvectors;
        }
        return g;
    }

    /// <summary>log N(x; mu, Sigma).</summary>
    public double LogDensity(ReadOnlySpan<double> x)
    {
        var w = Whiten(x);
        double m = 0;
        for (int i = 0; i < w.Length; i++) m += w[i] * w[i];
        return -0.5 * (Dimension * Log2Pi + LogDeterminant + m);
    }

    /// <summary>The score grad log N(x; mu, Sigma) = -Sigma^{-1} (x - mu), solved with the Cholesky factor.</summary>
    public double[] Score(ReadOnlySpan<double> x)
    {
        var w = Whiten(x);
        // Back substitution L^T s = w, then negate.
        var l = CholeskyFactor;
        int d = Dimension;
        var s = new double[d];
        for (int i = d - 1; i >= 0; i--)
        {
            double acc = w[i];
            for (int k = i + 1; k < d; k++) acc -= l[k, i] * s[k];
            s[i] = acc / l[i, i];
        }
        for (int i = 0; i < d; i++) s[i] = -s[i];
        return s;
    }

    /// <summary><paramref name="count"/> exact samples x = mu + L z (z standard normal from a System.Random
    /// seeded with <paramref name="seed"/>), row-major [count, d].</summary>
    public float[] Sample(int count, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var rng = new Random(seed);
        var result = new float[count * Dimension];
        var x = new double[Dimension];
        for (int n = 0; n < count; n++)
        {
            SampleInto(rng, x);
            for (int i = 0; i < x.Length; i++) result[n * Dimension + i] = (float)x[i];
        }
        return result;
    }

    /// <summary>One exact sample drawn with <paramref name="rng"/> into <paramref name="x"/> (length d).</summary>
    public void SampleInto(Random rng, Span<double> x)
    {
        ArgumentNullException.ThrowIfNull(rng);
        if (x.Length != Dimension) throw new ArgumentException($"destination holds {x.Length} values, expected d = {Dimension}", nameof(x));
        int d = Dimension;
        Span<double> z = d <= 512 ? stackalloc double[d] : new double[d];
        for (int i = 0; i < d; i++) z[i] = Normal.Sample(rng, 0, 1);
        var l = CholeskyFactor;
        for (int i = 0; i < d; i++)
        {
            double acc = Mean[i];
            for (int k = 0; k <= i; k++) acc += l[i, k] * z[k];
            x[i] = acc;
        }
    }

    /// <summary>w = L^{-1} (x - mu) by forward substitution.</summary>
    private double[] Whiten(ReadOnlySpan<double> x)
    {
        int d = Dimension;
        if (x.Length != d) throw new ArgumentException($"x holds {x.Length} values, expected d = {d}", nameof(x));
        var l = CholeskyFactor;
        var w = new double[d];
        for (int i = 0; i < d; i++)
        {
            double acc = x[i] - Mean[i];
            for (int k = 0; k < i; k++) acc -= l[i, k] * w[k];
            w[i] = acc / l[i, i];
        }
        return w;
    }

    internal static void RequireLevel(double a)
    {
        if (!(a >= 0 && a <= 1)) throw new ArgumentOutOfRangeException(nameof(a), a, "alpha_bar must lie in [0, 1]");
    }

    private static Vector<double> CheckedMean(IReadOnlyList<double> mean)
    {
        if (mean.Count == 0) throw new ArgumentException("the mean is empty", nameof(mean));
        for (int i = 0; i < mean.Count; i++)
        {
            if (!double.IsFinite(mean[i])) throw new ArgumentException($"mean[{i}] = {mean[i]} is not finite", nameof(mean));
        }
        return Vector<double>.Build.DenseOfEnumerable(mean);
    }

    private void RequirePositiveDefinite()
    {
        EnsureEigen();
        double max = eigenvalues!.Max(), min = eigenvalues!.Min();
        if (!(min > 1e-12 * Math.Max(max, 0)) || !(min > 0))
            throw new ArgumentException($"covariance ({Dimension}x{Dimension}) is not positive definite: eigenvalues range from {min} to {max}", "covariance");
        EnsureCholesky();
    }

    private void EnsureEigen()
    {
        if (eigenvalues is not null) return;
        if (IsDiagonal)
        {
            eigenvectors = Matrix<double>.Build.DenseIdentity(Dimension);
            eigenvalues = diagonal;
            return;
        }
        var evd = Covariance.Evd(Symmetricity.Symmetric);
        eigenvectors = evd.EigenVectors;
        eigenvalues = evd.EigenValues.Select(c => c.Real).ToArray();
    }

    private void EnsureCholesky()
    {
        if (cholesky is not null) return;
        Matrix<double> l;
        if (IsDiagonal) l = Matrix<double>.Build.DenseOfDiagonalArray(diagonal.Select(Math.Sqrt).ToArray());
        else
        {
            try { l = Covariance.Cholesky().Factor; }
            catch (ArgumentException e) { throw new ArgumentException($"covariance ({Dimension}x{Dimension}) is not positive definite", "covariance", e); }
        }
        double ld = 0;
        for (int i = 0; i < Dimension; i++) ld += 2 * Math.Log(l[i, i]);
        logDeterminant = ld;
        cholesky = l;
    }
}

using MathNet.Numerics.LinearAlgebra;

namespace PosteriorGpu.Models.Priors;

/// <summary>
/// The exact posterior of a Gaussian prior x ~ N(mu, Sigma) under a linear-Gaussian measurement
/// y = A x + sigma_y z, z ~ N(0, I): N(mu_post, Sigma_post) with Sigma_post = (Sigma^{-1} + A^T A / sigma_y^2)^{-1}
/// and mu_post = Sigma_post (Sigma^{-1} mu + A^T y / sigma_y^2). Computed in the update (Kalman) form, which
/// needs no inverse of Sigma: S = A Sigma A^T + sigma_y^2 I, K = Sigma A^T S^{-1} (by Cholesky of S),
/// mu_post = mu + K (y - A mu), and Sigma_post = (I - K A) Sigma (I - K A)^T + sigma_y^2 K K^T (Joseph's form,
/// symmetric positive definite by construction).
/// </summary>
public static class GaussianPosterior
{
    /// <summary>The posterior N(mu_post, Sigma_post) given <paramref name="a"/> (m x d), y (m) and sigma_y &gt; 0.</summary>
    /// <exception cref="ArgumentException">Sizes disagree, or sigma_y is not positive and finite.</exception>
    public static GaussianDistribution Compute(GaussianDistribution prior, Matrix<double> a, IReadOnlyList<double> y, double sigmaY)
    {
        var (s, residual) = Innovation(prior, a, y, sigmaY);
        var sigma = prior.Covariance;
        var chol = s.Cholesky();
        // K^T = S^{-1} A Sigma (S and Sigma are symmetric).
        var gain = chol.Solve(a * sigma).Transpose();
        var mean = prior.Mean + gain * residual;
        var ika = Matrix<double>.Build.DenseIdentity(prior.Dimension) - gain * a;
        var cov = ika * sigma * ika.Transpose() + gain * gain.Transpose() * (sigmaY * sigmaY);
        return GaussianDistribution.Full(mean.ToArray(), (cov + cov.Transpose()) * 0.5);
    }

    /// <summary>As <see cref="Compute(GaussianDistribution, Matrix{double}, IReadOnlyList{double}, double)"/> with A given
    /// row-major as <paramref name="rows"/> x d floats (the layout of a device measurement matrix).</summary>
    public static GaussianDistribution Compute(GaussianDistribution prior, ReadOnlySpan<float> aRowMajor, int rows, IReadOnlyList<double> y, double sigmaY) =>
        Compute(prior, MatrixOf(aRowMajor, rows, prior.Dimension), y, sigmaY);

    /// <summary>log p(y) = log N(y; A mu, A Sigma A^T + sigma_y^2 I), the evidence of the measurement under the prior.</summary>
    /// <exception cref="ArgumentException">Sizes disagree, or sigma_y is not positive and finite.</exception>
    public static double LogEvidence(GaussianDistribution prior, Matrix<double> a, IReadOnlyList<double> y, double sigmaY)
    {
        var (s, residual) = Innovation(prior, a, y, sigmaY);
        var l = s.Cholesky().Factor;
        int m = residual.Count;
        double logDet = 0, maha = 0;
        var w = new double[m];
        for (int i = 0; i < m; i++)
        {
            double acc = residual[i];
            for (int k = 0; k < i; k++) acc -= l[i, k] * w[k];
            w[i] = acc / l[i, i];
            maha += w[i] * w[i];
            logDet += 2 * Math.Log(l[i, i]);
        }
        return -0.5 * (m * Math.Log(2 * Math.PI) + logDet + maha);
    }

    /// <summary>A row-major <paramref name="rows"/> x <paramref name="columns"/> float array as a double matrix.</summary>
    /// <exception cref="ArgumentException">The array does not hold rows x columns values.</exception>
    public static Matrix<double> MatrixOf(ReadOnlySpan<float> rowMajor, int rows, int columns)
    {
        if (rows < 1 || rowMajor.Length != rows * columns)
            throw new ArgumentException($"the measurement matrix holds {rowMajor.Length} values, expected {rows} x {columns}", nameof(rowMajor));
        var m = Matrix<double>.Build.Dense(rows, columns);
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < columns; j++) m[i, j] = rowMajor[i * columns + j];
        return m;
    }

    /// <summary>S = A Sigma A^T + sigma_y^2 I and y - A mu, after checking the sizes.</summary>
    private static (Matrix<double> S, Vector<double> Residual) Innovation(GaussianDistribution prior, Matrix<double> a, IReadOnlyList<double> y, double sigmaY)
    {
        ArgumentNullException.ThrowIfNull(prior);
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(y);
        if (a.ColumnCount != prior.Dimension)
            throw new ArgumentException($"A is {a.RowCount}x{a.ColumnCount} but the prior has dimension {prior.Dimension}; expected {prior.Dimension} columns", nameof(a));
        if (y.Count != a.RowCount)
            throw new ArgumentException($"y has {y.Count} entries but A is {a.RowCount}x{a.ColumnCount}; expected {a.RowCount}", nameof(y));
        if (!(sigmaY > 0 && double.IsFinite(sigmaY)))
            throw new ArgumentOutOfRangeException(nameof(sigmaY), sigmaY, "the measurement noise sigma_y must be positive and finite");
        var s = a * prior.Covariance * a.Transpose();
        for (int i = 0; i < s.RowCount; i++) s[i, i] += sigmaY * sigmaY;
        s = (s + s.Transpose()) * 0.5;
        var residual = Vector<double>.Build.DenseOfEnumerable(y) - a * prior.Mean;
        return (s, residual);
    }
}

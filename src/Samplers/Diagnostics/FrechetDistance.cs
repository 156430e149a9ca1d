using MathNet.Numerics.LinearAlgebra;

namespace PosteriorGpu.Samplers.Diagnostics;

/// <summary>
/// The Frechet (2-Wasserstein) distance between two Gaussians, the statistic of FID (Heusel et al. 2017,
/// "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium", eq. 6):
/// d^2 = ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^{1/2}). The trace of the square root is taken as
/// tr((S1^{1/2} S2 S1^{1/2})^{1/2}), which has the same eigenvalues as (S1 S2)^{1/2} but is symmetric,
/// so two symmetric eigendecompositions give it without the complex round-off of a general sqrtm.
/// Reported as d^2, as FID is.
/// </summary>
public static class FrechetDistance
{
    /// <summary>d^2 between two sets of statistics (MathNet symmetric eigendecompositions), at least 0.</summary>
    /// <exception cref="ArgumentException">The dimensions differ.</exception>
    public static double Compute(GaussianStatistics a, GaussianStatistics b)
    {
        Require(a, b);
        int d = a.Dimension;
        var s1 = Matrix<double>.Build.Dense(d, d, (i, j) => a.Covariance[i * d + j]);
        var s2 = Matrix<double>.Build.Dense(d, d, (i, j) => b.Covariance[i * d + j]);
        var root1 = SymmetricSqrt(s1);
        var m = root1 * s2 * root1;
        m = (m + m.Transpose()) * 0.5;   // exact symmetry for the symmetric solver
        double traceRoot = m.Evd(Symmetricity.Symmetric).EigenValues.Sum(e => Math.Sqrt(Math.Max(0, e.Real)));
        // d^2 >= 0; identical or nearly identical statistics can round to a tiny negative value.
        return Math.Max(0, MeanTerm(a, b) + s1.Trace() + s2.Trace() - 2 * traceRoot);
    }

    private static Matrix<double> SymmetricSqrt(Matrix<double> s)
    {
        var evd = s.Evd(Symmetricity.Symmetric);
        var roots = Vector<double>.Build.Dense(s.RowCount, i => Math.Sqrt(Math.Max(0, evd.EigenValues[i].Real)));
        return evd.EigenVectors * Matrix<double>.Build.DenseOfDiagonalVector(roots) * evd.EigenVectors.Transpose();
    }

    /// <summary>
    /// The specification, in plain loops: tr (S1 S2)^{1/2} by the Denman-Beavers iteration on the
    /// (non-symmetric) product, Y_{k+1} = (Y_k + Z_k^{-1}) / 2, Z_{k+1} = (Z_k + Y_k^{-1}) / 2, Y_0 = S1 S2,
    /// Z_0 = I, whose Y converges to the principal square root when S1 S2 has positive eigenvalues
    /// (both covariances positive definite). For small, well-conditioned cases (tests).
    /// </summary>
    /// <exception cref="ArgumentException">The dimensions differ.</exception>
    /// <exception cref="InvalidOperationException">The iteration did not converge (a singular covariance).</exception>
    public static double Reference(GaussianStatistics a, GaussianStatistics b, int iterations = 100)
    {
        Require(a, b);
        int d = a.Dimension;
        var y = Multiply(a.Covariance, b.Covariance, d);
        var z = new double[d * d];
        for (int i = 0; i < d; i++) z[i * d + i] = 1;
        for (int k = 0; k < iterations; k++)
        {
            var yInv = Inverse(y, d);
            var zInv = Inverse(z, d);
            double change = 0;
            for (int i = 0; i < d * d; i++)
            {
                double ny = 0.5 * (y[i] + zInv[i]);
                change = Math.Max(change, Math.Abs(ny - y[i]));
                y[i] = ny;
                z[i] = 0.5 * (z[i] + yInv[i]);
            }
            if (change < 1e-13) break;
            if (k == iterations - 1) throw new InvalidOperationException($"frechet distance reference: Denman-Beavers did not converge in {iterations} iterations (last change {change:E2})");
        }
        double trace = 0;
        for (int i = 0; i < d; i++) trace += a.Covariance[i * d + i] + b.Covariance[i * d + i] - 2 * y[i * d + i];
        return MeanTerm(a, b) + trace;
    }

    private static void Require(GaussianStatistics a, GaussianStatistics b)
    {
        if (a.Dimension != b.Dimension)
            throw new ArgumentException($"frechet distance: the statistics have dimensions {a.Dimension} and {b.Dimension}; they must come from the same features");
    }

    private static double MeanTerm(GaussianStatistics a, GaussianStatistics b)
    {
        double s = 0;
        for (int i = 0; i < a.Dimension; i++) s += (a.Mean[i] - b.Mean[i]) * (a.Mean[i] - b.Mean[i]);
        return s;
    }

    private static double[] Multiply(double[] p, double[] q, int d)
    {
        var r = new double[d * d];
        for (int i = 0; i < d; i++)
            for (int k = 0; k < d; k++)
                for (int j = 0; j < d; j++) r[i * d + j] += p[i * d + k] * q[k * d + j];
        return r;
    }

    /// <summary>Gauss-Jordan elimination with partial pivoting.</summary>
    private static double[] Inverse(double[] m, int d)
    {
        var a = (double[])m.Clone();
        var inv = new double[d * d];
        for (int i = 0; i < d; i++) inv[i * d + i] = 1;
        for (int c = 0; c < d; c++)
        {
            int pivot = c;
            for (int r = c + 1; r < d; r++) if (Math.Abs(a[r * d + c]) > Math.Abs(a[pivot * d + c])) pivot = r;
            if (a[pivot * d + c] == 0) throw new InvalidOperationException("frechet distance reference: a singular matrix in the Denman-Beavers iteration");
            if (pivot != c)
                for (int j = 0; j < d; j++)
                {
                    (a[c * d + j], a[pivot * d + j]) = (a[pivot * d + j], a[c * d + j]);
                    (inv[c * d + j], inv[pivot * d + j]) = (inv[pivot * d + j], inv[c * d + j]);
                }
            double diag = a[c * d + c];
            for (int j = 0; j < d; j++)
            {
                a[c * d + j] /= diag;
                inv[c * d + j] /= diag;
            }
            for (int r = 0; r < d; r++)
            {
                if (r == c) continue;
                double f = a[r * d + c];
                if (f == 0) continue;
                for (int j = 0; j < d; j++)
                {
                    a[r * d + j] -= f * a[c * d + j];
                    inv[r * d + j] -= f * inv[c * d + j];
                }
            }
        }
        return inv;
    }
}

using MathNet.Numerics.LinearAlgebra;

namespace PosteriorGpu.Models.Priors;

/// <summary>
/// The exact posterior of x ~ N(mu, Sigma) given y = A x + sigma z, z ~ N(0, I): Gaussian with
/// K = Sigma A^T (A Sigma A^T + sigma^2 I)^{-1}, mean mu + K (y - A mu), covariance (I - K A) Sigma
/// (the Kalman update, stable for small sigma), sampled exactly through a Cholesky factor.
/// Host-side (MathNet), the ground truth of the posterior tests.
/// </summary>
public sealed class GaussianPosterior
{
    private readonly Matrix<double> cholesky;

    /// <summary>Computes the posterior; <paramref name="a"/> is row-major m x d.</summary>
    public GaussianPosterior(double[] mu, Matrix<double> sigmaPrior, double[] a, int m, double noise, double[] y)
    {
        int d = mu.Length;
        if (a.Length != m * d || y.Length != m) throw new ArgumentException($"gaussian posterior: A must be {m} x {d} and y of length {m}");
        if (!(noise > 0)) throw new ArgumentOutOfRangeException(nameof(noise), noise, "gaussian posterior: the noise level must be positive");
        var A = Matrix<double>.Build.Dense(m, d, (i, j) => a[i * d + j]);
        var S = sigmaPrior;
        var innovation = A * S * A.Transpose() + Matrix<double>.Build.DenseIdentity(m) * (noise * noise);
        var gain = S * A.Transpose() * innovation.Inverse();
        var muV = Vector<double>.Build.DenseOfArray(mu);
        Mean = (muV + gain * (Vector<double>.Build.DenseOfArray(y) - A * muV)).ToArray();
        var cov = (Matrix<double>.Build.DenseIdentity(d) - gain * A) * S;
        Covariance = (cov + cov.Transpose()) * 0.5;   // symmetric to rounding
        cholesky = (Covariance + Matrix<double>.Build.DenseIdentity(d) * 1e-12).Cholesky().Factor;
    }

    /// <summary>A diagonal prior N(mu, diag(variance)).</summary>
    public static GaussianPosterior ForDiagonalPrior(float[] mu, float[] variance, double[] a, int m, double noise, double[] y) =>
        new(mu.Select(v => (double)v).ToArray(), Matrix<double>.Build.DenseOfDiagonalArray(variance.Select(v => (double)v).ToArray()), a, m, noise, y);

    /// <summary>The posterior mean.</summary>
    public double[] Mean { get; }

    /// <summary>The posterior covariance.</summary>
    public Matrix<double> Covariance { get; }

    /// <summary><paramref name="count"/> exact posterior samples (seeded), one per row.</summary>
    public double[][] Sample(int count, int seed)
    {
        var rng = new System.Random(seed);
        int d = Mean.Length;
        var samples = new double[count][];
        for (int s = 0; s < count; s++)
        {
            var z = Vector<double>.Build.Dense(d, _ => Normal(rng));
            var x = cholesky * z;
            samples[s] = Mean.Select((m, j) => m + x[j]).ToArray();
        }
        return samples;
    }

    private static double Normal(System.Random rng) =>
        Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
}

/// <summary>Distances between distributions used by the posterior tests.</summary>
public static class Wasserstein
{
    /// <summary>W2 between N(m1, C1) and N(m2, C2): sqrt(|m1 - m2|^2 + tr(C1 + C2 - 2 (C2^1/2 C1 C2^1/2)^1/2)).</summary>
    public static double Gaussian(double[] m1, Matrix<double> c1, double[] m2, Matrix<double> c2)
    {
        double mean = m1.Zip(m2, (a, b) => (a - b) * (a - b)).Sum();
        var root2 = Sqrt(c2);
        double cross = Sqrt(root2 * c1 * root2).Trace();
        return Math.Sqrt(Math.Max(0, mean + c1.Trace() + c2.Trace() - 2 * cross));
    }

    /// <summary>The empirical mean and covariance of samples (rows).</summary>
    public static (double[] Mean, Matrix<double> Covariance) Moments(IReadOnlyList<double[]> samples)
    {
        int n = samples.Count, d = samples[0].Length;
        var mean = new double[d];
        foreach (var s in samples) for (int j = 0; j < d; j++) mean[j] += s[j] / n;
        var cov = Matrix<double>.Build.Dense(d, d);
        foreach (var s in samples)
            for (int i = 0; i < d; i++)
                for (int j = 0; j <= i; j++) cov[i, j] += (s[i] - mean[i]) * (s[j] - mean[j]) / (n - 1);
        for (int i = 0; i < d; i++) for (int j = i + 1; j < d; j++) cov[i, j] = cov[j, i];
        return (mean, cov);
    }

    private static Matrix<double> Sqrt(Matrix<double> c)
    {
        var evd = ((c + c.Transpose()) * 0.5).Evd(Symmetricity.Symmetric);
        var root = evd.EigenValues.Select(v => Math.Sqrt(Math.Max(0, v.Real))).ToArray();
        return evd.EigenVectors * Matrix<double>.Build.DenseOfDiagonalArray(root) * evd.EigenVectors.Transpose();
    }
}

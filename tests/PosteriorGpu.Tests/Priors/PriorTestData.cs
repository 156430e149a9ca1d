using MathNet.Numerics.LinearAlgebra;
using PosteriorGpu.Models.Priors;
using PosteriorGpu.Models.Schedules;

namespace PosteriorGpu.Tests.Priors;

/// <summary>Seeded random Gaussians, mixtures and noisy draws for the prior and posterior tests.</summary>
public static class PriorTestData
{
    /// <summary>The tests' noise levels: alpha_bar(t) = 1 - t / 1000, so t = 0.1 is a = 0.9999, t = 500 is 0.5, t = 990 is 0.01.</summary>
    public static double LinearAlphaBar(double t) => 1 - t / 1000;

    /// <summary>The schedule whose alphas_cumprod are <see cref="LinearAlphaBar"/> at t = 0..1000 (1 down to 0), so the priors'
    /// interpolated levels are those values at every t in [0, 1000] up to double rounding.</summary>
    public static readonly NoiseSchedule Linear =
        NoiseSchedule.FromAlphasCumprod(Enumerable.Range(0, 1001).Select(t => LinearAlphaBar(t)).ToArray(), "1 - t/1000");

    /// <summary>Per-item timesteps covering a near 1, 0.5, near 0 and the ends a = 1 and a = 0.</summary>
    public static readonly float[] MixedTimesteps = [0.1f, 500f, 990f, 0f, 1000f, 250f, 37.5f];

    public static double[] Vector(int d, int seed, double scale = 1)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, d).Select(_ => (rng.NextDouble() * 2 - 1) * scale).ToArray();
    }

    /// <summary>A random symmetric positive definite matrix with eigenvalues spread over [lo, hi].</summary>
    public static Matrix<double> Spd(int d, int seed, double lo = 0.05, double hi = 2)
    {
        var rng = new Random(seed);
        var g = Matrix<double>.Build.Dense(d, d, (_, _) => rng.NextDouble() * 2 - 1);
        var q = g.QR().Q;
        var l = Enumerable.Range(0, d).Select(i => d == 1 ? hi : lo * Math.Pow(hi / lo, (double)i / (d - 1))).ToArray();
        var s = q * Matrix<double>.Build.DenseOfDiagonalArray(l) * q.Transpose();
        return (s + s.Transpose()) * 0.5;
    }

    public static Matrix<double> RandomMatrix(int rows, int cols, int seed, double scale = 1)
    {
        var rng = new Random(seed);
        return Matrix<double>.Build.Dense(rows, cols, (_, _) => (rng.NextDouble() * 2 - 1) * scale);
    }

    public static GaussianDistribution Full(int d, int seed) => GaussianDistribution.Full(Vector(d, seed, 1.5), Spd(d, seed + 1));

    public static GaussianDistribution Diagonal(int d, int seed) =>
        GaussianDistribution.Diagonal(Vector(d, seed, 1.5), Vector(d, seed + 1).Select(v => 0.05 + Math.Abs(v)).ToArray());

    public static GaussianDistribution LowRank(int d, int rank, int seed) =>
        GaussianDistribution.LowRankPlusDiagonal(Vector(d, seed, 1.5), Vector(d, seed + 1).Select(v => 0.02 + 0.1 * Math.Abs(v)).ToArray(),
            RandomMatrix(d, rank, seed + 2, 0.8));

    /// <summary>K components cycling through diagonal, low-rank + diagonal and full covariances, means spread by <paramref name="spread"/>.</summary>
    public static GaussianMixtureDistribution Mixture(int k, int d, int seed, double spread = 2)
    {
        var rng = new Random(seed);
        var comps = new GaussianDistribution[k];
        for (int c = 0; c < k; c++)
        {
            var mean = Vector(d, seed + 10 * c, spread);
            comps[c] = (c % 3) switch
            {
                0 => GaussianDistribution.Diagonal(mean, Vector(d, seed + 10 * c + 1).Select(v => 0.05 + 0.5 * Math.Abs(v)).ToArray()),
                1 => GaussianDistribution.LowRankPlusDiagonal(mean, Vector(d, seed + 10 * c + 2).Select(v => 0.02 + 0.1 * Math.Abs(v)).ToArray(),
                    RandomMatrix(d, 2, seed + 10 * c + 3, 0.5)),
                _ => GaussianDistribution.Full(mean, Spd(d, seed + 10 * c + 4, 0.05, 1)),
            };
        }
        var w = Enumerable.Range(0, k).Select(_ => 0.2 + rng.NextDouble()).ToArray();
        return new GaussianMixtureDistribution(w, comps);
    }

    /// <summary>x_n = sqrt(a_n) x0_n + sqrt(1 - a_n) eps_n with x0_n from <paramref name="clean"/> ([N, d]): a draw
    /// from the marginal at each item's level, where the score model is meant to be evaluated.</summary>
    public static float[] Noised(float[] clean, int d, IReadOnlyList<float> timesteps, NoiseSchedule schedule, int seed)
    {
        var alphaBar = AlphaBar.Interpolated(schedule.AlphasCumprodDouble);
        var rng = new Random(seed);
        int n = clean.Length / d;
        var x = new float[clean.Length];
        for (int item = 0; item < n; item++)
        {
            double a = alphaBar(timesteps.Count == 1 ? timesteps[0] : timesteps[item]);
            for (int i = 0; i < d; i++)
                x[item * d + i] = (float)(Math.Sqrt(a) * clean[item * d + i] + Math.Sqrt(1 - a) * MathNet.Numerics.Distributions.Normal.Sample(rng, 0, 1));
        }
        return x;
    }

    public static float[] ToFloat(double[] v) => v.Select(e => (float)e).ToArray();

    public static double[] Row(ReadOnlySpan<float> x, int item, int d)
    {
        var r = new double[d];
        for (int i = 0; i < d; i++) r[i] = x[item * d + i];
        return r;
    }
}

using MathNet.Numerics.LinearAlgebra;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.Priors;
using PosteriorGpu.Models.Schedules;
using PosteriorGpu.Samplers.Operators;

namespace PosteriorGpu.Tests.Posterior;

/// <summary>
/// The exact checks every posterior method's DEFAULT options must pass (issue 18): a Gaussian prior, a linear A,
/// sigma_y = 0.1, and the closed-form posterior. Three cases: prior N(0, 1) with A = I at d = 1 and d = 64 (exact
/// posterior N(y / 1.01, 0.01 / 1.01 I)), and a correlated prior in d = 32 (eigenvalues 0.2 .. 2 in a random basis)
/// with a random 8 x 32 Gaussian A. The criteria: total-variance ratio in [0.8, 1.25], every coordinate's mean within
/// 5 standard errors, and W2 below twice the W2 of as many exact samples plus 0.1.
/// </summary>
internal sealed class ExactGaussianCase : IDisposable
{
    public const float SigmaY = 0.1f;

    private ExactGaussianCase(GpuDevice dev, string name, int channels, int height, int width, GaussianDistribution prior, float[] matrix, int m, int seed)
    {
        Name = name;
        Schedule = NoiseSchedule.Linear(1000, 1e-4, 0.02);
        Shape = [channels, height, width];
        int d = channels * height * width;
        Prior = new GaussianPrior(dev, channels, height, width, prior, Schedule);
        Operator = new CompressedSensingOperator(dev, Shape, m, matrix);
        // A ground truth from the prior and its noisy measurement.
        var truth = prior.Sample(1, seed);
        var draw = new RandomDraw((ulong)seed, 7, 0);
        var y = new double[m];
        for (int i = 0; i < m; i++)
        {
            double s = 0;
            for (int j = 0; j < d; j++) s += matrix[i * d + j] * (double)truth[j];
            y[i] = (float)(s + SigmaY * draw.Normal(i));
        }
        Exact = GaussianPosterior.Compute(prior, matrix, m, y, SigmaY);
        Y = Tensor.FromHost(dev, y.Select(v => (float)v).ToArray(), 1, m);
    }

    public string Name { get; }
    public int[] Shape { get; }
    public NoiseSchedule Schedule { get; }
    public GaussianPrior Prior { get; }
    public CompressedSensingOperator Operator { get; }
    public GaussianDistribution Exact { get; }
    public Tensor Y { get; }
    public int Dimension => Exact.Dimension;

    public static IEnumerable<string> Names => ["identity-1", "identity-64", "correlated-32"];

    public static ExactGaussianCase Create(GpuDevice dev, string name) => name switch
    {
        "identity-1" => Identity(dev, name, 1, 1),
        "identity-64" => Identity(dev, name, 8, 8),
        "correlated-32" => Correlated(dev, name),
        _ => throw new ArgumentException(name),
    };

    private static ExactGaussianCase Identity(GpuDevice dev, string name, int h, int w)
    {
        int d = h * w;
        var eye = new float[d * d];
        for (int i = 0; i < d; i++) eye[i * d + i] = 1;
        return new ExactGaussianCase(dev, name, 1, h, w, GaussianDistribution.Isotropic(new double[d], 1.0), eye, d, 11);
    }

    private static ExactGaussianCase Correlated(GpuDevice dev, string name)
    {
        const int d = 32, m = 8;
        var rng = new System.Random(5);
        var q = Matrix<double>.Build.Dense(d, d, (_, _) => rng.NextDouble() - 0.5).QR().Q;
        var lambda = Enumerable.Range(0, d).Select(i => 0.2 * Math.Pow(10, (double)i / (d - 1))).ToArray();   // 0.2 .. 2
        var cov = q * Matrix<double>.Build.DenseOfDiagonalArray(lambda) * q.Transpose();
        cov = (cov + cov.Transpose()) / 2;
        var mean = Enumerable.Range(0, d).Select(_ => 0.5 * (rng.NextDouble() - 0.5)).ToArray();
        return new ExactGaussianCase(dev, name, 1, 4, 8, GaussianDistribution.Full(mean, cov), GaussianMatrix.Create(m, d, 21), m, 13);
    }

    /// <summary>The three criteria for <paramref name="samples"/> ([chains, d] row-major).</summary>
    public Verdict Judge(float[] samples, int chains)
    {
        int d = Dimension;
        var mean = DistributionDistances.SampleMean(samples, d);
        var cov = DistributionDistances.SampleCovariance(samples, d);
        double ratio = cov.Trace() / Exact.Covariance.Trace();
        double worstZ = 0;
        for (int j = 0; j < d; j++)
            worstZ = Math.Max(worstZ, Math.Abs(mean[j] - Exact.Mean[j]) / Math.Sqrt(Exact.Covariance[j, j] / chains));
        double w2 = DistributionDistances.GaussianW2(samples, Exact);
        double floor = DistributionDistances.GaussianW2(Exact.Sample(chains, 4), Exact);
        return new Verdict(Name, ratio, worstZ, w2, 2 * floor + 0.1);
    }

    public void Dispose()
    {
        Prior.Dispose();
        Operator.Dispose();
        Y.Dispose();
    }

    /// <summary>The measured criteria and whether they hold.</summary>
    public sealed record Verdict(string Case, double VarianceRatio, double WorstMeanZ, double W2, double W2Tolerance)
    {
        public bool Passes => VarianceRatio is >= 0.8 and <= 1.25 && WorstMeanZ < 5 && W2 < W2Tolerance;

        public override string ToString() =>
            $"{Case}: variance ratio {VarianceRatio:F3} (0.8..1.25), worst mean error {WorstMeanZ:F2} SE (< 5), W2 {W2:F4} (< {W2Tolerance:F4})";
    }
}

using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.Priors;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Models.Schedules;

namespace PosteriorGpu.Tests.Posterior;

/// <summary>
/// The exact test problem of the posterior samplers (as in AnnealedLangevinGaussianTests): a diagonal
/// Gaussian prior in d = 64 (8 x 8 images), a random 16 x 64 Gaussian A, sigma_y = 0.1, a ground truth
/// drawn from the prior and its noisy measurement, and the exact posterior.
/// </summary>
internal sealed class GaussianInverseProblem : IDisposable
{
    public const int Side = 8, D = Side * Side, M = 16;
    public const float SigmaY = 0.1f;

    public GaussianInverseProblem(GpuDevice dev)
    {
        Schedule = NoiseSchedule.Linear(1000, 1e-4, 0.02);
        var rng = new System.Random(3);
        var mean = Enumerable.Range(0, D).Select(_ => (double)(float)(rng.NextDouble() - 0.5)).ToArray();
        var variance = Enumerable.Range(0, D).Select(_ => (double)(float)(0.3 + rng.NextDouble())).ToArray();
        Prior = GaussianPrior.Diagonal(dev, 1, Side, Side, mean, variance, Schedule);
        Operator = new CompressedSensingOperator(dev, [1, Side, Side], M, seed: 5);
        var draw = new RandomDraw(9, 1, 0);
        var truth = Enumerable.Range(0, D).Select(j => mean[j] + Math.Sqrt(variance[j]) * draw.Normal(j)).ToArray();
        Truth = truth.Select(v => (float)v).ToArray();
        var a = Operator.Matrix;
        var y = Enumerable.Range(0, M).Select(i => Enumerable.Range(0, D).Sum(j => (double)a[i * D + j] * truth[j]) + SigmaY * draw.Normal(1000 + i)).ToArray();
        Exact = GaussianPosterior.Compute(Prior.Distribution, a, M, y, SigmaY);
        Y = Tensor.FromHost(dev, y.Select(v => (float)v).ToArray(), 1, M);
    }

    public NoiseSchedule Schedule { get; }
    public GaussianPrior Prior { get; }
    public CompressedSensingOperator Operator { get; }
    public float[] Truth { get; }
    public GaussianDistribution Exact { get; }
    public Tensor Y { get; }

    /// <summary>W2 of 4096 exact posterior samples (the finite-sample floor) and the tolerance 2 floor + 0.1.</summary>
    public (double Floor, double Tolerance) Tolerance(int chains)
    {
        double floor = DistributionDistances.GaussianW2(Exact.Sample(chains, 4), Exact);
        return (floor, 2 * floor + 0.1);
    }

    public void Dispose()
    {
        Prior.Dispose();
        Operator.Dispose();
        Y.Dispose();
    }
}

using NUnit.Framework;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.Priors;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Samplers.Posterior;
using PosteriorGpu.Models.Schedules;

namespace PosteriorGpu.Tests.Posterior;

/// <summary>
/// Annealed Langevin against the exact posterior: Gaussian prior in d = 64, a random 16 x 64 Gaussian
/// A, sigma_y = 0.1, 4096 chains. The metric is W2 between the Gaussian fitted to the samples and the
/// exact posterior; the tolerance is set from the W2 of 4096 exact posterior samples (the
/// finite-sample floor) and is checked to reject prior samples and the posterior mean.
/// </summary>
public class AnnealedLangevinGaussianTests
{
    [Test]
    public void MatchesTheExactPosterior() => Check(TestDevices.Cpu);

    [Test, Category("Gpu")]
    public void MatchesTheExactPosterior_OnGpu() => Check(TestDevices.Gpu);

    private static void Check(PosteriorGpu.Kernels.Device.GpuDevice dev)
    {
        const int side = 8, d = side * side, m = 16, chains = 4096;
        const float sigmaY = 0.1f;
        var schedule = NoiseSchedule.Linear(1000, 1e-4, 0.02);
        var rng = new System.Random(3);
        var mean = Enumerable.Range(0, d).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var variance = Enumerable.Range(0, d).Select(_ => (float)(0.3 + rng.NextDouble())).ToArray();
        using var prior = GaussianPrior.Diagonal(dev, 1, side, side, mean.Select(v => (double)v).ToArray(),
            variance.Select(v => (double)v).ToArray(), schedule);
        using var op = new CompressedSensingOperator(dev, [1, side, side], m, seed: 5);

        // A ground truth drawn from the prior and its noisy measurement.
        var draw = new RandomDraw(9, 1, 0);
        var truth = Enumerable.Range(0, d).Select(j => mean[j] + MathF.Sqrt(variance[j]) * draw.Normal(j)).ToArray();
        var matrix = op.Matrix;
        var y = Enumerable.Range(0, m).Select(i => Enumerable.Range(0, d).Sum(j => (double)matrix[i * d + j] * truth[j]) + sigmaY * draw.Normal(1000 + i)).ToArray();
        var priorDistribution = GaussianDistribution.Diagonal(mean.Select(v => (double)v).ToArray(), variance.Select(v => (double)v).ToArray());
        var exact = GaussianPosterior.Compute(priorDistribution, matrix, m, y, sigmaY);

        using var ty = Tensor.FromHost(dev, y.Select(v => (float)v).ToArray(), 1, m);
        using var x = Tensor.Empty(dev, chains, 1, side, side);
        // A short schedule keeps the test at a few seconds on 2 cores (the defaults are 20 x 50 steps).
        var options = new AnnealedLangevinOptions { Levels = 12, StepsPerLevel = 25, StepScale = 0.3, PriorSteps = 25 };
        new AnnealedLangevinSampler(prior, schedule, options).Sample(x, ty, op, sigmaY, seed: 17);
        double w2 = DistributionDistances.GaussianW2(x.ToHost(), exact);
        double floor = DistributionDistances.GaussianW2(exact.Sample(chains, 4), exact);
        double priorW2 = DistributionDistances.GaussianW2(priorDistribution, exact);
        double meanW2 = Math.Sqrt(exact.Covariance.Trace());
        double tolerance = 2 * floor + 0.1;
        TestContext.Out.WriteLine($"{dev.Description}: W2(annealed Langevin, exact posterior) = {w2:F4}; 4096 exact samples: {floor:F4}; " +
                                  $"tolerance {tolerance:F4}; prior: {priorW2:F4}; posterior mean: {meanW2:F4}");
        Assert.That(priorW2, Is.GreaterThan(tolerance), "the tolerance must reject prior samples");
        Assert.That(meanW2, Is.GreaterThan(tolerance), "the tolerance must reject the posterior mean");
        Assert.That(w2, Is.LessThan(tolerance));
    }

    [Test]
    public void LocalVariant_MatchesTheExactPosteriorGivenTheGaussianMeasurement()
    {
        // p(x | y, x~) with x~ = x0 + sigma w is the posterior under the stacked measurement
        // [A / sigma_y; I / sigma] x = [y / sigma_y; x~ / sigma] with unit noise.
        var dev = TestDevices.Cpu;
        const int side = 8, d = side * side, m = 16, chains = 4096;
        const float sigmaY = 0.1f, sigma = 0.3f;
        var schedule = NoiseSchedule.Linear(1000, 1e-4, 0.02);
        var rng = new System.Random(3);
        var mean = Enumerable.Range(0, d).Select(_ => rng.NextDouble() - 0.5).ToArray();
        var variance = Enumerable.Range(0, d).Select(_ => 0.3 + rng.NextDouble()).ToArray();
        using var prior = GaussianPrior.Diagonal(dev, 1, side, side, mean, variance, schedule);
        using var op = new CompressedSensingOperator(dev, [1, side, side], m, seed: 5);
        var draw = new RandomDraw(9, 1, 0);
        var truth = Enumerable.Range(0, d).Select(j => mean[j] + Math.Sqrt(variance[j]) * draw.Normal(j)).ToArray();
        var matrix = op.Matrix;
        var y = Enumerable.Range(0, m).Select(i => Enumerable.Range(0, d).Sum(j => matrix[i * d + j] * truth[j]) + sigmaY * draw.Normal(1000 + i)).ToArray();
        // The warm start is the truth plus an error; x~ is its Gaussian measurement.
        var warm = truth.Select((v, j) => (float)(v + 0.2 * draw.Normal(2000 + j))).ToArray();
        using var tWarm = Tensor.FromHost(dev, warm, 1, 1, side, side);
        using var xTilde = Tensor.Empty(dev, 1, 1, side, side);
        AnnealedLangevinSampler.GaussianMeasurement(tWarm, sigma, new RandomDraw(10, 2, 0), xTilde);
        var tilde = xTilde.ToHost();

        var stacked = MathNet.Numerics.LinearAlgebra.Matrix<double>.Build.Dense(m + d, d, (i, j) =>
            i < m ? matrix[i * d + j] / sigmaY : (i - m == j ? 1 / sigma : 0));
        var yStacked = y.Select(v => v / sigmaY).Concat(tilde.Select(v => (double)v / sigma)).ToArray();
        var exact = GaussianPosterior.Compute(prior.Distribution, stacked, yStacked, 1.0);

        using var ty = Tensor.FromHost(dev, y.Select(v => (float)v).ToArray(), 1, m);
        using var x = Tensor.Empty(dev, chains, 1, side, side);
        var options = new AnnealedLangevinOptions { Levels = 12, StepsPerLevel = 25, StepScale = 0.3, PriorSteps = 25 };
        new AnnealedLangevinSampler(prior, schedule, options).SampleLocal(x, ty, op, sigmaY, xTilde, sigma, seed: 19);
        double w2 = DistributionDistances.GaussianW2(x.ToHost(), exact);
        double floor = DistributionDistances.GaussianW2(exact.Sample(chains, 6), exact);
        var withoutTilde = GaussianPosterior.Compute(prior.Distribution, matrix, m, y, sigmaY);
        double ignoreTildeW2 = DistributionDistances.GaussianW2(withoutTilde, exact);
        double tolerance = 2 * floor + 0.1;
        TestContext.Out.WriteLine($"local variant: W2 = {w2:F4}; exact samples {floor:F4}; tolerance {tolerance:F4}; " +
                                  $"p(x | y) ignoring x~: {ignoreTildeW2:F4}");
        Assert.That(ignoreTildeW2, Is.GreaterThan(tolerance), "the tolerance must tell p(x | y, x~) from p(x | y)");
        Assert.That(w2, Is.LessThan(tolerance));
    }
}

using NUnit.Framework;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;
using PosteriorGpu.Models.Priors;
using PosteriorGpu.Samplers.Posterior;

namespace PosteriorGpu.Tests.Posterior;

/// <summary>DPS (Chung et al. 2023) against the exact Gaussian posterior: a biased baseline, much closer than the prior.</summary>
public class DpsTests
{
    // Step sizes from a scan on 1024 chains (W2 by zeta, residual rule: 0.1: 1.59, 0.3: 0.91, 0.5: 1.21, 1: 1.84,
    // 2: 3.09; likelihood rule: 0.003: 2.85, 0.01: 1.69, 0.03: 1.42, 0.1: 1.51, 1: diverges at step 67).
    [TestCase(DpsStepRule.ResidualNorm, 0.3, 4096)]
    [TestCase(DpsStepRule.Likelihood, 0.03, 1024)]
    public void IsMuchCloserThanThePrior(DpsStepRule rule, double zeta, int chains)
    {
        var dev = TestDevices.Cpu;
        using var problem = new GaussianInverseProblem(dev);
        using var x = Tensor.Empty(dev, chains, 1, 8, 8);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        new DpsSampler(problem.Prior, problem.Schedule, new DpsOptions { Steps = 100, StepSize = zeta, Rule = rule })
            .Sample(x, problem.Y, problem.Operator, GaussianInverseProblem.SigmaY, seed: 17);
        double w2 = DistributionDistances.GaussianW2(x.ToHost(), problem.Exact);
        double priorW2 = DistributionDistances.GaussianW2(problem.Prior.Distribution, problem.Exact);
        var (floor, tolerance) = problem.Tolerance(chains);
        TestContext.Out.WriteLine($"DPS ({rule}, zeta {zeta}, 100 steps, {chains} chains): W2 = {w2:F4}; prior {priorW2:F4}; exact-sample floor {floor:F4}; " +
                                  $"annealed Langevin's tolerance {tolerance:F4} ({sw.Elapsed.TotalSeconds:F1} s)");
        Assert.That(w2, Is.LessThan(priorW2 / 3));
        Assert.That(w2, Is.GreaterThan(floor), "a sampler cannot beat exact samples (a check that the metric sees the samples)");
    }

    internal sealed class NotDifferentiable(GpuDevice device) : IScoreModel
    {
        public GpuDevice Device => device;
        public int Channels => 1;
        public int Height => 8;
        public int Width => 8;
        public void PredictEpsilon(Tensor x, ReadOnlySpan<float> timesteps, Tensor epsilon)
        {
            ScoreModelTimesteps.Require(timesteps, x.N, "not differentiable");
            epsilon.Clear();
        }
    }

    [Test]
    public void NonDifferentiableModel_IsAClearError()
    {
        using var problem = new GaussianInverseProblem(TestDevices.Cpu);
        var ex = Assert.Throws<ArgumentException>(() => new DpsSampler(new NotDifferentiable(TestDevices.Cpu), problem.Schedule));
        Assert.That(ex!.Message, Does.Contain("NotDifferentiable").And.Contain("IDifferentiableScoreModel"));
    }
}

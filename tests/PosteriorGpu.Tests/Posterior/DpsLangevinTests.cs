using NUnit.Framework;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Samplers.Posterior;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Tests.Posterior;

/// <summary>The paper's image pipeline (DPS warm start, re-noise, reverse diffusion, local annealed Langevin) on the
/// exact Gaussian problems: it composes exactly, and its local half keeps an exact posterior draw exact.</summary>
public class DpsLangevinTests
{
    private static readonly DpsLangevinOptions Short = new()
    {
        Dps = new DpsOptions { Steps = 6 }, Timestep = 100,
        Langevin = new AnnealedLangevinOptions { Levels = 3, StepsPerLevel = 4, PriorSteps = 5 },
    };

    [Test]
    public void Sample_IsDpsThenTheLocalRefinement_Bitwise()
    {
        var dev = TestDevices.Cpu;
        using var p = new GaussianInverseProblem(dev);
        var sampler = new DpsLangevinSampler(p.Prior, p.Schedule, Short);
        using var whole = Tensor.Empty(dev, 3, 1, 8, 8);
        var seen = new List<SamplerProgress>();
        var run = sampler.Sample(whole, p.Y, p.Operator, GaussianInverseProblem.SigmaY, seed: 4, firstSample: 1, progress: new Recorder(seen));
        Assert.That(run.NetworkEvaluations, Is.EqualTo(6 + 5 + 3 * 4));
        Assert.That(seen.Select(s => s.Step), Is.Ordered.Ascending);
        Assert.That(seen[^1], Is.EqualTo(new SamplerProgress(run.NetworkEvaluations, run.NetworkEvaluations)));

        using var parts = Tensor.Empty(dev, 3, 1, 8, 8);
        new DpsSampler(p.Prior, p.Schedule, Short.Dps).Sample(parts, p.Y, p.Operator, GaussianInverseProblem.SigmaY, seed: 4, firstSample: 1);
        sampler.Refine(parts, p.Y, p.Operator, GaussianInverseProblem.SigmaY, seed: 4, firstSample: 1);
        Assert.That(parts.ToHost(), Is.EqualTo(whole.ToHost()));
        Assert.That(sampler.Sigma, Is.EqualTo(p.Schedule.Sigma(100)));
    }

    [TestCase("identity-64")]
    [TestCase("correlated-32")]
    public void LocalHalf_KeepsExactPosteriorDrawsExact(string name)
    {
        // x0 ~ p(x | y) exactly; x~ = x0 + sigma w; x ~ p(x | y, x~) is then again a draw of p(x | y).
        var dev = TestDevices.Cpu;
        using var c = ExactGaussianCase.Create(dev, name);
        const int chains = 4096;
        var start = c.Exact.Sample(chains, 21);
        using var x = Tensor.FromHost(dev, start, [chains, .. c.Shape]);
        var sampler = new DpsLangevinSampler(c.Prior, c.Schedule, new DpsLangevinOptions());
        sampler.Refine(x, c.Y, c.Operator, ExactGaussianCase.SigmaY, seed: 5);
        var output = x.ToHost();
        var verdict = c.Judge(output, chains);
        // A refinement that did nothing would also pass: the chains must have moved by a good part of the posterior's spread.
        double moved = Math.Sqrt(output.Select((v, i) => Math.Pow(v - start[i], 2)).Average());
        double spread = Math.Sqrt(c.Exact.Covariance.Trace() / c.Dimension);
        TestContext.Out.WriteLine($"RMS move {moved:F4} against a posterior spread of {spread:F4}");
        Assert.That(moved, Is.GreaterThan(0.3 * spread), "the local half must move the chains");
        TestContext.Out.WriteLine($"local half from exact draws: {verdict}");
        Assert.That(verdict.VarianceRatio, Is.InRange(0.8, 1.25), verdict.ToString());
        Assert.That(verdict.WorstMeanZ, Is.LessThan(5), verdict.ToString());
        Assert.That(verdict.W2, Is.LessThan(verdict.W2Tolerance), verdict.ToString());
    }

    [Test]
    public void Mistakes_AreNamed()
    {
        var dev = TestDevices.Cpu;
        using var p = new GaussianInverseProblem(dev);
        Assert.That(Assert.Throws<InvalidOptionException>(() => new DpsLangevinSampler(p.Prior, p.Schedule, Short with { Timestep = 0 }))!.Option,
            Is.EqualTo("Timestep"));
        Assert.That(Assert.Throws<InvalidOptionException>(() => new DpsLangevinSampler(p.Prior, p.Schedule, Short with { Dps = new DpsOptions { Steps = 0 } }))!.Record,
            Is.EqualTo("DpsOptions"));
        using var onebit = new PosteriorGpu.Samplers.Operators.OneBitOperator(dev, [1, 8, 8], 8, 0.5f, seed: 1);
        using var x = Tensor.Empty(dev, 2, 1, 8, 8);
        using var y = Tensor.Zeros(dev, 1, 8);
        Assert.That(() => new DpsLangevinSampler(p.Prior, p.Schedule, Short).Sample(x, y, onebit, 0.1f, 1),
            Throws.ArgumentException.With.Message.Contains("linear"));
    }

    private sealed class Recorder(List<SamplerProgress> seen) : IProgress<SamplerProgress>
    {
        public void Report(SamplerProgress value) => seen.Add(value);
    }
}

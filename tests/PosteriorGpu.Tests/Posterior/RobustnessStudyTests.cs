using NUnit.Framework;
using PosteriorGpu.Cli.Studies;
using PosteriorGpu.Samplers.Posterior;

namespace PosteriorGpu.Tests.Posterior;

public class RobustnessStudyTests
{
    [Test]
    public void SmallRun_PlainLangevinDipsAndIsTrapped_AnnealedLangevinIsNot()
    {
        var options = new AnnealedLangevinOptions { Levels = 20, StepsPerLevel = 10, PriorSteps = 20, StepScale = 0.1 };
        var s = RobustnessStudy.Measure(TestDevices.Cpu, 64, 256, options);
        TestContext.Out.WriteLine(RobustnessStudy.ToMarkdown([s], options));
        var plain = s.Runs.Single(r => r.Sampler == "plain Langevin" && !r.Perturbed);
        var plainBad = s.Runs.Single(r => r.Sampler == "plain Langevin" && r.Perturbed);
        var annealed = s.Runs.Single(r => r.Sampler == "annealed Langevin" && !r.Perturbed);
        var annealedBad = s.Runs.Single(r => r.Sampler == "annealed Langevin" && r.Perturbed);
        Assert.That(s.PriorMassOnShell, Is.LessThan(0.01), "the error lives where the prior rarely goes");
        Assert.That(plain.MeanSquaredRadius.Min(), Is.LessThan(0.7), "Figure 3: plain Langevin's variance dips");
        Assert.That(new[] { plain.NormalisedError, annealed.NormalisedError }, Is.All.InRange(0.7, 1.5), "both are right with the exact score");
        Assert.That(plainBad.OnShell, Is.GreaterThan(0.5), "plain Langevin is trapped on the shell");
        Assert.That(plainBad.NormalisedError, Is.GreaterThan(10 * plain.NormalisedError));
        Assert.That(annealedBad.OnShell, Is.LessThan(0.05));
        Assert.That(annealedBad.NormalisedError, Is.LessThan(1.5 * annealed.NormalisedError));
    }
}

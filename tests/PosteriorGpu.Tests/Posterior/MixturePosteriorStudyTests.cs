using NUnit.Framework;
using PosteriorGpu.Cli.Studies;
using PosteriorGpu.Samplers.Posterior;

namespace PosteriorGpu.Tests.Posterior;

public class MixturePosteriorStudyTests
{
    [Test]
    public void SmallStudy_RunsAndItsReferenceRowsAreOrdered()
    {
        var rows = MixturePosteriorStudy.Run(TestDevices.Cpu, [4], [1], chains: 256,
            new AnnealedLangevinOptions { Levels = 4, StepsPerLevel = 10, PriorSteps = 10, StepScale = 0.1 }, 1,
            new DpnpOptions { Iterations = 4, PriorSteps = 10 }, MixturePosteriorStudy.DefaultDps with { Steps = 10 });
        var r = rows.Single();
        TestContext.Out.WriteLine(MixturePosteriorStudy.ToMarkdown(rows));
        Assert.That(new[] { r.ExactFloor, r.Prior, r.AnnealedLangevin, r.Dpnp, r.Dps }, Is.All.GreaterThanOrEqualTo(0).And.All.Not.NaN);
        Assert.That(r.ExactFloor, Is.LessThan(r.Prior), "two exact posterior draws are closer than prior samples");
    }
}

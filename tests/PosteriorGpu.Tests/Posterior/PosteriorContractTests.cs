using System.Reflection;
using NUnit.Framework;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.Schedules;
using PosteriorGpu.Samplers.Posterior;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Tests.Posterior;

/// <summary>The posterior-sampler contract: "prior draw, then refine" composes, options are validated once and named,
/// the ladders and the stream registry hold what they promise, and schedule keys a method cannot honour are refused.</summary>
public class PosteriorContractTests
{
    [TestCase("annealed-langevin")]
    [TestCase("dpnp")]
    public void Sample_IsThePriorDrawThenRefine(string method)
    {
        var dev = TestDevices.Cpu;
        using var p = new GaussianInverseProblem(dev);
        PosteriorMethodOptions options = method == "dpnp"
            ? new DpnpOptions { Iterations = 3, PriorSteps = 4, Denoiser = new DenoisingDiffusionOptions { Steps = 2 } }
            : new AnnealedLangevinOptions { Levels = 3, StepsPerLevel = 4, PriorSteps = 4 };
        var sampler = (RefiningPosteriorSampler)options.CreateSampler(p.Prior, p.Schedule);
        using var whole = Tensor.Empty(dev, 3, 1, 8, 8);
        var run = sampler.Sample(whole, p.Y, p.Operator, GaussianInverseProblem.SigmaY, seed: 9, firstSample: 2);
        Assert.That(run.NetworkEvaluations, Is.EqualTo(sampler.NetworkEvaluations));
        Assert.That(sampler.NetworkEvaluations, Is.EqualTo(4 + sampler.RefinementEvaluations));

        using var parts = Tensor.Empty(dev, 3, 1, 8, 8);
        sampler.Start.Draw(parts, p.Prior, p.Schedule, seed: 9, firstSample: 2, null, CancellationToken.None);
        sampler.Refine(parts, p.Y, p.Operator, GaussianInverseProblem.SigmaY, seed: 9, firstSample: 2);
        Assert.That(parts.ToHost(), Is.EqualTo(whole.ToHost()), "Sample = PriorDraw.Draw then Refine, bitwise");

        // The prior draw is the `sample` command's: seeded N(0, I) on the Start stream through the unconditional sampler.
        using var draw = Tensor.Zeros(dev, 3, 1, 8, 8);
        AddNoiseForTest(draw, 9, 2);
        SamplerFactory.Create(sampler.Start.Sampler, p.Prior, p.Schedule).Sample(draw, sampler.Start.Steps, 9, 2);
        using var viaStart = Tensor.Empty(dev, 3, 1, 8, 8);
        sampler.Start.Draw(viaStart, p.Prior, p.Schedule, 9, 2, null, CancellationToken.None);
        Assert.That(viaStart.ToHost(), Is.EqualTo(draw.ToHost()));
    }

    private static void AddNoiseForTest(Tensor x, ulong seed, long firstSample) =>
        PosteriorGpu.Kernels.Elementwise.AddNoise.Run(x, 1f, new RandomDraw(seed, RandomStreams.Start, 0).ForBatch(firstSample, x.ItemLength));

    [Test]
    public void Options_AreValidatedWhenTheSamplerIsBuilt_AndNamed()
    {
        var dev = TestDevices.Cpu;
        using var p = new GaussianInverseProblem(dev);
        var e = Assert.Throws<InvalidOptionException>(() => new AnnealedLangevinSampler(p.Prior, p.Schedule, new AnnealedLangevinOptions { StepScale = -1 }))!;
        Assert.That((e.Record, e.Option, e.Value), Is.EqualTo(("AnnealedLangevinOptions", "StepScale", (object)(-1.0))));
        Assert.That(e.Rule, Does.Contain("positive"));
        Assert.That(Assert.Throws<InvalidOptionException>(() => new DpnpSampler(p.Prior, p.Schedule, new DpnpOptions { EtaMin = 2 }))!.Option, Is.EqualTo("EtaMax"));
        Assert.That(Assert.Throws<InvalidOptionException>(() => new DpsSampler(p.Prior, p.Schedule, new DpsOptions { Steps = 1001 }))!.Message,
            Does.Contain("DpsOptions.Steps = 1001").And.Contain("1..1000"));
        Assert.That(Assert.Throws<InvalidOptionException>(() => new AnnealedLangevinSampler(p.Prior, p.Schedule, new AnnealedLangevinOptions { PriorSteps = 0 }))!.Option,
            Is.EqualTo("PriorSteps"));
    }

    [Test]
    public void Presets_AreTheCommandLinesBudgets()
    {
        Assert.That(AnnealedLangevinOptions.Image32.Start.Steps + AnnealedLangevinOptions.Image32.Levels * AnnealedLangevinOptions.Image32.StepsPerLevel, Is.EqualTo(24));
        Assert.That(DpnpOptions.Image32.PriorSteps + DpnpOptions.Image32.Iterations * (DpnpOptions.Image32.Denoiser.Steps + 1), Is.EqualTo(24));
        Assert.That(DpsOptions.Image32.Steps, Is.EqualTo(24));
        var schedule = NoiseSchedule.Linear(1000, 1e-4, 0.02);
        foreach (PosteriorMethodOptions o in new PosteriorMethodOptions[] { AnnealedLangevinOptions.Image32, DpnpOptions.Image32, DpsOptions.Image32,
                     new AnnealedLangevinOptions(), new DpnpOptions(), new DpsOptions() })
            Assert.DoesNotThrow(() => o.Validate(schedule), o.GetType().Name);
    }

    [Test]
    public void Geometric_RunsFromFirstToLast()
    {
        Assert.That(Ladders.Geometric(1, 0.01, 3), Is.EqualTo(new[] { 1, 0.1, 0.01 }).Within(1e-15));
        Assert.That(Ladders.Geometric(5, 0.1, 1), Is.EqualTo(new[] { 0.1 }));
        Assert.That(Ladders.Geometric(2, 2, 4), Is.All.EqualTo(2.0));
        Assert.Throws<ArgumentOutOfRangeException>(() => Ladders.Geometric(1, 0.1, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => Ladders.Geometric(0, 0.1, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => Ladders.Geometric(1, double.PositiveInfinity, 3));
    }

    [Test]
    public void RandomStreams_AreDistinct()
    {
        var ids = typeof(RandomStreams).GetFields(BindingFlags.Public | BindingFlags.Static)
            .Where(f => f.IsLiteral).Select(f => (f.Name, Id: (uint)f.GetRawConstantValue()!)).ToArray();
        Assert.That(ids, Has.Length.GreaterThan(10));
        Assert.That(ids.Select(i => i.Id).Distinct().Count(), Is.EqualTo(ids.Length),
            string.Join(", ", ids.GroupBy(i => i.Id).Where(g => g.Count() > 1).Select(g => string.Join("=", g.Select(i => i.Name)))));
    }

    [Test]
    public void ClippingSchedules_AreRefusedByTheMethodsThatCannotHonourThem()
    {
        var dev = TestDevices.Cpu;
        using var p = new GaussianInverseProblem(dev);
        var clipping = NoiseSchedule.FromConfig(new SchedulerConfig { ClipSample = true });
        Assert.That(() => new DpsSampler(p.Prior, clipping), Throws.InstanceOf<NotSupportedException>().With.Message.Contains("clip_sample").And.Message.Contains("dps"));
        Assert.That(() => new DpnpSampler(p.Prior, clipping), Throws.InstanceOf<NotSupportedException>().With.Message.Contains("clip_sample").And.Message.Contains("dpnp"));
        // Annealed Langevin's Langevin steps use the score, not an x0; its DDPM prior draw clips as diffusers does.
        Assert.DoesNotThrow(() => new AnnealedLangevinSampler(p.Prior, clipping));
    }
}

using System.Diagnostics;
using NUnit.Framework;
using PosteriorGpu.Tests.Posterior;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Samplers.Posterior;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Tests.Reliability;

/// <summary>
/// Numerical faults end in a clear error, never a hang or a silent NaN: a score model that returns NaN,
/// infinity or exploding values mid-run, a Langevin step size that diverges, sigma_y = 0, a non-finite
/// measurement. The error names the sampler, the step, the items (chains) and the cause; where the
/// sampler can, the output holds the last finite state.
/// </summary>
public class NumericalFaultTests
{
    private static readonly string[] Unconditional = [.. SamplerFactory.Names, "ddpm-large"];
    private const int Side = 4, D = Side * Side;

    private static GpuDevice Dev => TestDevices.Cpu;

    [TestCaseSource(nameof(Unconditional))]
    public void Unconditional_ModelNaNInOneItem_NamesTheStepTheItemAndTheModel(string sampler)
    {
        using var prior = CheapPriors.Gaussian(Dev);
        var model = new FaultyModel(prior, 4, Fault.NaN, items: [1]);
        using var x = Tensor.FromHost(Dev, TestData.Random(3 * D, 3), 3, 1, Side, Side);
        var s = SamplerFactory.Create(sampler, model, CheapPriors.Schedule);
        s.DivergenceCheckInterval = 1;   // read back after every step: x stops at the failing one
        var ex = Assert.Throws<SamplerDivergedException>(() => s.Sample(x, 10, 1));
        Assert.That(ex!.Step, Is.EqualTo(4));
        Assert.That(ex.Cause, Is.EqualTo(DivergenceCause.ModelOutput));
        Assert.That(ex.Items, Is.EqualTo(new[] { 1 }));
        Assert.That(ex.Message, Does.Contain("step 4 of 10").And.Contain("timestep").And.Contain("item 1").And.Contain("score model"));
        // The other items are finite at the failing step.
        var host = x.ToHost();
        Assert.That(host[..D].Concat(host[(2 * D)..]).All(float.IsFinite));
        Assert.That(model.Calls, Is.EqualTo(4), "stopped at the failing step");
    }

    [TestCaseSource(nameof(Unconditional))]
    public void Unconditional_ChecksEverySixteenSteps_NameTheSameStepItemsAndCause(string sampler)
    {
        // The default interval: every step's norms are recorded on the device and read back once per 16 steps, so the
        // diagnosis is the one a check after every step gives; x holds the step at which the run noticed.
        using var prior = CheapPriors.Gaussian(Dev);
        var model = new FaultyModel(prior, 4, Fault.NaN, items: [1]);
        using var x = Tensor.FromHost(Dev, TestData.Random(3 * D, 3), 3, 1, Side, Side);
        var s = SamplerFactory.Create(sampler, model, CheapPriors.Schedule);
        Assert.That(s.DivergenceCheckInterval, Is.EqualTo(DiffusionSampler.DefaultDivergenceCheckInterval));
        var ex = Assert.Throws<SamplerDivergedException>(() => s.Sample(x, 20, 1));
        Assert.That((ex!.Step, ex.Cause, ex.Items), Is.EqualTo((4, DivergenceCause.ModelOutput, (IReadOnlyList<int>)[1])));
        Assert.That(ex.Message, Does.Contain("step 4 of 20").And.Contain("after step 16"));
        Assert.That(model.Calls, Is.EqualTo(16), "noticed at the first read-back");
        Assert.Throws<ArgumentOutOfRangeException>(() => s.DivergenceCheckInterval = 0);
    }

    [TestCase(Fault.Infinity)]
    [TestCase(Fault.Explode)]
    public void Unconditional_ModelInfinityOrExplosion_IsTheModelsFault(Fault fault)
    {
        using var prior = CheapPriors.Gaussian(Dev);
        using var x = Tensor.FromHost(Dev, TestData.Random(2 * D, 4), 2, 1, Side, Side);
        var ex = Assert.Throws<SamplerDivergedException>(() =>
            new DdimSampler(new FaultyModel(prior, 6, fault), CheapPriors.Schedule).Sample(x, 20, 1));
        Assert.That((ex!.Step, ex.Cause, ex.Items), Is.EqualTo((6, DivergenceCause.ModelOutput, (IReadOnlyList<int>)[0, 1])));
    }

    [Test]
    public void Unconditional_NonFiniteStart_IsRejectedBeforeTheFirstCall()
    {
        using var prior = CheapPriors.Gaussian(Dev);
        var start = TestData.Random(2 * D, 5);
        start[D + 3] = float.NaN;
        using var x = Tensor.FromHost(Dev, start, 2, 1, Side, Side);
        var model = new FaultyModel(prior, int.MaxValue, Fault.NaN);
        var ex = Assert.Throws<ArgumentException>(() => new DdpmSampler(model, CheapPriors.Schedule).Sample(x, 5, 1));
        Assert.That(ex!.Message, Does.Contain("starting x").And.Contain("item(s) 1"));
        Assert.That(model.Calls, Is.Zero);
    }

    // ---- annealed Langevin ----

    private static readonly AnnealedLangevinOptions Short = new() { Levels = 4, StepsPerLevel = 10, StepScale = 0.3, PriorSteps = 10 };

    private sealed record Problem(CompressedSensingOperator Op, Tensor Y, Tensor Warm) : IDisposable
    {
        public void Dispose()
        {
            Op.Dispose();
            Y.Dispose();
            Warm.Dispose();
        }
    }

    private static Problem MakeProblem(int chains, float[]? matrix = null, float[]? y = null)
    {
        const int m = 6;
        var op = matrix is null ? new CompressedSensingOperator(Dev, [1, Side, Side], m, seed: 3) : new CompressedSensingOperator(Dev, [1, Side, Side], m, matrix);
        return new Problem(op, Tensor.FromHost(Dev, y ?? TestData.Random(m, 8), 1, m),
            Tensor.FromHost(Dev, TestData.Random(chains * D, 9), chains, 1, Side, Side));
    }

    [Test]
    public void Langevin_ModelNaNMidRun_NamesTheStepAndLevel_AndKeepsTheLastFiniteState()
    {
        using var prior = CheapPriors.Gaussian(Dev);
        using var p = MakeProblem(3);
        using var x = Tensor.Empty(Dev, 3, 1, Side, Side);
        // Poisoned at the 17th Langevin step (level 2 of 4, 10 steps per level), in chain 2 only.
        var model = new FaultyModel(prior, 17, Fault.NaN, items: [2]) { PoisonInput = true };
        var clock = Stopwatch.StartNew();
        var ex = Assert.Throws<SamplerDivergedException>(() =>
            new AnnealedLangevinSampler(model, CheapPriors.Schedule, Short).RefineFrom(x, p.Y, p.Op, 0.1f, seed: 4, warmStart: p.Warm));
        TestContext.Out.WriteLine(ex!.Message);
        Assert.That((ex.Step, ex.Steps, ex.Cause, ex.LastFiniteStep), Is.EqualTo((17, 40, DivergenceCause.ModelOutput, 16)));
        Assert.That(ex.Items, Is.EqualTo(new[] { 2 }));
        Assert.That(ex.Message, Does.Contain("annealed-langevin").And.Contain("step 17 of 40").And.Contain("noise level 2 of 4").And.Contain("score model"));
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(30)), "no hang");

        // x holds exactly the state after 16 steps: the same run cancelled before step 17.
        using var reference = Tensor.Empty(Dev, 3, 1, Side, Side);
        using var cts = new CancellationTokenSource();
        var counting = new FaultyModel(prior, int.MaxValue, Fault.NaN) { OnCall = call => { if (call == 16) cts.Cancel(); } };
        Assert.Throws<OperationCanceledException>(() => new AnnealedLangevinSampler(counting, CheapPriors.Schedule, Short)
            .RefineFrom(reference, p.Y, p.Op, 0.1f, seed: 4, warmStart: p.Warm, cancellationToken: cts.Token));
        Assert.That(x.ToHost(), Is.EqualTo(reference.ToHost()));
    }

    [Test]
    public void Langevin_FailureNoticedLevelsLater_IsStillDiagnosedExactly()
    {
        // 4 steps a level: the divergence ring is read once per 4 levels (16 steps), so a NaN at step 6 (level 2) is
        // noticed after level 4; the replay of level 2 (from its own start and y_2) still names step 6 and leaves x there.
        var options = Short with { StepsPerLevel = 4 };
        Assert.That(AnnealedLangevinSampler.LevelsPerCheck(options.StepsPerLevel), Is.EqualTo(4));
        using var prior = CheapPriors.Gaussian(Dev);
        using var p = MakeProblem(3);
        using var x = Tensor.Empty(Dev, 3, 1, Side, Side);
        var model = new FaultyModel(prior, 6, Fault.NaN, items: [1]) { PoisonInput = true };
        var ex = Assert.Throws<SamplerDivergedException>(() =>
            new AnnealedLangevinSampler(model, CheapPriors.Schedule, options).RefineFrom(x, p.Y, p.Op, 0.1f, seed: 4, warmStart: p.Warm));
        TestContext.Out.WriteLine(ex!.Message);
        Assert.That((ex.Step, ex.Steps, ex.Cause, ex.LastFiniteStep), Is.EqualTo((6, 16, DivergenceCause.ModelOutput, 5)));
        Assert.That(ex.Items, Is.EqualTo(new[] { 1 }));
        Assert.That(ex.Message, Does.Contain("noise level 2 of 4"));
        Assert.That(model.Calls, Is.EqualTo(16 + 2), "the whole window ran, then the replay of level 2 up to its step 2");

        using var reference = Tensor.Empty(Dev, 3, 1, Side, Side);
        using var cts = new CancellationTokenSource();
        var counting = new FaultyModel(prior, int.MaxValue, Fault.NaN) { OnCall = call => { if (call == 5) cts.Cancel(); } };
        Assert.Throws<OperationCanceledException>(() => new AnnealedLangevinSampler(counting, CheapPriors.Schedule, options)
            .RefineFrom(reference, p.Y, p.Op, 0.1f, seed: 4, warmStart: p.Warm, cancellationToken: cts.Token));
        Assert.That(x.ToHost(), Is.EqualTo(reference.ToHost()), "x holds the state after step 5");
    }

    [Test]
    public void Langevin_ExplodingModel_IsTheModelsFault()
    {
        using var prior = CheapPriors.Gaussian(Dev);
        using var p = MakeProblem(2);
        using var x = Tensor.Empty(Dev, 2, 1, Side, Side);
        var model = new FaultyModel(prior, 25, Fault.Explode) { PoisonInput = true };
        var ex = Assert.Throws<SamplerDivergedException>(() =>
            new AnnealedLangevinSampler(model, CheapPriors.Schedule, Short).RefineFrom(x, p.Y, p.Op, 0.1f, seed: 4, warmStart: p.Warm));
        Assert.That((ex!.Step, ex.Cause, ex.LastFiniteStep), Is.EqualTo((25, DivergenceCause.ModelOutput, 24)));
        Assert.That(x.ToHost().All(float.IsFinite));
    }

    [Test]
    public void Langevin_StepSizeTooLarge_ExplodesWithAClearError()
    {
        using var prior = CheapPriors.Gaussian(Dev);
        using var p = MakeProblem(2);
        using var x = Tensor.Empty(Dev, 2, 1, Side, Side);
        // h L >> 2: each step multiplies the distance to the mode by about |1 - h L|.
        var options = Short with { StepScale = 40, StepsPerLevel = 200 };
        var clock = Stopwatch.StartNew();
        var ex = Assert.Throws<SamplerDivergedException>(() =>
            new AnnealedLangevinSampler(prior, CheapPriors.Schedule, options).RefineFrom(x, p.Y, p.Op, 0.1f, seed: 4, warmStart: p.Warm));
        TestContext.Out.WriteLine(ex!.Message);
        Assert.That(ex.Cause, Is.EqualTo(DivergenceCause.Exploded));
        Assert.That(ex.Message, Does.Contain("step size h =").And.Contain("unstable"));
        Assert.That(ex.LastFiniteStep, Is.EqualTo(ex.Step - 1));
        Assert.That(x.ToHost().All(float.IsFinite), "x holds the last finite state");
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(30)), "no hang");
    }

    [TestCase(0f)]
    [TestCase(-0.1f)]
    [TestCase(float.NaN)]
    [TestCase(float.PositiveInfinity)]
    public void Langevin_SigmaYNotPositive_IsRejectedBeforeAnyWork(float sigmaY)
    {
        using var prior = CheapPriors.Gaussian(Dev);
        using var p = MakeProblem(2);
        using var x = Tensor.Empty(Dev, 2, 1, Side, Side);
        var model = new FaultyModel(prior, int.MaxValue, Fault.NaN);
        var sampler = new AnnealedLangevinSampler(model, CheapPriors.Schedule, Short);
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => sampler.Sample(x, p.Y, p.Op, sigmaY, seed: 1));
        Assert.That(ex!.Message, Does.Contain("sigma_y must be positive"));
        Assert.That(ex.ParamName, Is.EqualTo("sigmaY"));
        Assert.Throws<ArgumentOutOfRangeException>(() => sampler.SampleLocal(x, p.Y, p.Op, sigmaY, p.Warm, 0.2f, seed: 1));
        Assert.That(model.Calls, Is.Zero, "no prior draw before the check");
    }

    [Test]
    public void Langevin_NonFiniteMeasurement_IsRejectedByName()
    {
        using var prior = CheapPriors.Gaussian(Dev);
        var y = TestData.Random(6, 8);
        y[2] = float.PositiveInfinity;
        using var p = MakeProblem(2, y: y);
        using var x = Tensor.Empty(Dev, 2, 1, Side, Side);
        var model = new FaultyModel(prior, int.MaxValue, Fault.NaN);
        var ex = Assert.Throws<ArgumentException>(() =>
            new AnnealedLangevinSampler(model, CheapPriors.Schedule, Short).RefineFrom(x, p.Y, p.Op, 0.1f, seed: 1, warmStart: p.Warm));
        Assert.That(ex!.Message, Does.Contain("annealed langevin").And.Contain("measurement y holds NaN or infinity"));
        Assert.That(model.Calls, Is.Zero);
    }

    [Test]
    public void Langevin_OperatorWithAZeroRow_IgnoresThatMeasurementExactly()
    {
        // A zero row carries no information: whatever its measurement says, the chains are bitwise the same.
        const int m = 6;
        var matrix = PosteriorGpu.Samplers.Operators.GaussianMatrix.Create(m, D, seed: 3);
        Array.Clear(matrix, 2 * D, D);
        float[] Run(float y2)
        {
            using var prior = CheapPriors.Gaussian(Dev);
            var y = TestData.Random(m, 8);
            y[2] = y2;
            using var p = MakeProblem(4, matrix, y);
            using var x = Tensor.Empty(Dev, 4, 1, Side, Side);
            new AnnealedLangevinSampler(prior, CheapPriors.Schedule, Short).RefineFrom(x, p.Y, p.Op, 0.1f, seed: 6, warmStart: p.Warm);
            return x.ToHost();
        }
        var a = Run(0f);
        Assert.That(a.All(float.IsFinite));
        Assert.That(Run(1e6f), Is.EqualTo(a));
        Assert.That(Run(-3f), Is.EqualTo(a));
    }

    [Test]
    public void Langevin_AllZeroOperator_SamplesThePrior()
    {
        // ||A|| = 0 (the power iteration stops at a zero vector): the step size falls back to StepScale.
        using var prior = CheapPriors.Gaussian(Dev);
        using var p = MakeProblem(512, new float[6 * D]);
        using var x = Tensor.Empty(Dev, 512, 1, Side, Side);
        new AnnealedLangevinSampler(prior, CheapPriors.Schedule, Short with { StepsPerLevel = 25 })
            .RefineFrom(x, p.Y, p.Op, 0.1f, seed: 7, warmStart: p.Warm);
        var s = x.ToHost();
        Assert.That(s.All(float.IsFinite));
        // The sample mean is the prior mean to within sampling error (chi-square over 16 coordinates), with
        // the stationary variance of unadjusted Langevin at step h for a Gaussian: v / (1 - h / (2 v)).
        const double h = 0.3;
        double chi = 0;
        for (int j = 0; j < D; j++)
        {
            double mean = 0;
            for (int c = 0; c < 512; c++) mean += s[c * D + j];
            mean /= 512;
            double mu = prior.Distribution.Mean[j], v = prior.Distribution.Covariance[j, j];
            chi += (mean - mu) * (mean - mu) / (v / (1 - h / (2 * v)) / 512);
        }
        TestContext.Out.WriteLine($"chi-square of the means against the prior: {chi:F1} (16 dof)");
        Assert.That(chi, Is.LessThan(45), "16 degrees of freedom: 99.99% quantile about 45");
    }
}

using NUnit.Framework;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.Schedules;
using PosteriorGpu.Models.UNet;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Samplers.Posterior;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Tests.Posterior;

/// <summary>
/// A posterior sampler step stalls nothing (issue 21): with the U-Net fixture (whose forward pass and vector-Jacobian
/// product make no sync or copy) and a GEMM operator (or one-bit sensing, whose log-likelihood is summed on the device), the device counters between two progress reports show no host
/// copy at all and a host read-back only where the sampler's divergence check is due: DPS and LGD-MC once per
/// <see cref="PosteriorCommon.DivergenceCheckInterval"/> steps and after the last, DPnP once per that many sweeps and after
/// the last, annealed Langevin once per <see cref="AnnealedLangevinSampler.LevelsPerCheck"/> levels and after the last.
/// </summary>
public class PosteriorHostSyncTests
{
    private const int Interval = PosteriorCommon.DivergenceCheckInterval;

    // Loose enough that the fixture's (untrained) network keeps every chain finite.
    private const float SigmaY = 1f;

    private sealed class Snapshots(GpuDevice device) : IProgress<SamplerProgress>
    {
        public List<(SamplerProgress Progress, DeviceCounters Counters)> Seen { get; } = [];

        public void Report(SamplerProgress value) => Seen.Add((value, device.Counters));

        /// <summary>The counters spent between report k - 1 and report k, for k = 1 .. count - 1.</summary>
        public IEnumerable<(int Report, DeviceCounters Used)> Deltas() =>
            Enumerable.Range(1, Seen.Count - 1).Select(k => (k, Seen[k].Counters - Seen[k - 1].Counters));
    }

    /// <summary>The U-Net fixture, a schedule, an operator (a GEMM one, or one-bit sensing, whose probit log-likelihood the
    /// Metropolis-adjusted DPnP and LGD-MC evaluate), chains and a measurement.</summary>
    private sealed record Fixture(UNet2DModel Model, NoiseSchedule Schedule, ForwardOperator Op, Tensor X, Tensor Y) : IDisposable
    {
        public void Dispose()
        {
            Model.Dispose();
            Op.Dispose();
            X.Dispose();
            Y.Dispose();
        }
    }

    private static Fixture Setup(GpuDevice dev, bool oneBit = false, int chains = 2)
    {
        var model = UNet2DModel.Load(dev, Fixtures.Path("diffusers-unet-tiny"), withGradients: true);
        var schedule = NoiseSchedule.Linear(1000, 1e-4, 0.02);
        int s = model.Config.SampleSize!.Value;
        ForwardOperator op = oneBit
            ? new OneBitOperator(dev, [model.Channels, s, s], 24, 0.5f, seed: 5)
            : new CompressedSensingOperator(dev, [model.Channels, s, s], 24, seed: 5);
        var x = Tensor.FromHost(dev, TestData.Random(chains * model.Channels * s * s, 2), chains, model.Channels, s, s);
        var measured = TestData.Random(24, 3);
        if (oneBit) measured = [.. measured.Select(v => v >= 0 ? 1f : -1f)];
        var y = Tensor.FromHost(dev, measured, 1, 24);
        return new Fixture(model, schedule, op, x, y);
    }

    /// <summary>Exactly one read-back (a sync and a device-to-host copy) where <paramref name="due"/> says, none elsewhere, and
    /// never a host-to-device copy.</summary>
    private static void AssertAmortised(string what, IEnumerable<(int Report, DeviceCounters Used)> deltas, Func<int, bool> due)
    {
        foreach (var (k, used) in deltas)
        {
            TestContext.Out.WriteLine($"{what}, report {k}: {used}");
            long reads = due(k) ? 1 : 0;
            Assert.That((used.HostSyncs, used.DeviceToHostCopies, used.HostToDeviceCopies), Is.EqualTo((reads, reads, 0L)),
                $"{what}, between progress reports {k - 1} and {k}: {used}");
        }
    }

    [TestCase("dps", DpsStepRule.ResidualNorm, false)]
    [TestCase("dps", DpsStepRule.Likelihood, false)]
    [TestCase("lgd-mc", DpsStepRule.ResidualNorm, false)]
    [TestCase("lgd-mc", DpsStepRule.ResidualNorm, true)]   // particle weights from the probit log-likelihood
    public void GuidedStep_ReadsBackOncePerCheckInterval(string sampler, DpsStepRule rule, bool oneBit)
    {
        var dev = TestDevices.Cpu;
        using var f = Setup(dev, oneBit);
        var (model, schedule, op, x, y) = f;
        const int steps = Interval + 1;
        IPosteriorSampler Create(int n) => sampler == "dps"
            ? new DpsSampler(model, schedule, new DpsOptions { Steps = n, StepSize = 0.01, Rule = rule })
            : new LgdMcSampler(model, schedule, new LgdMcOptions { Steps = n, StepSize = 0.01, Rule = rule, Particles = 3 });
        Create(2).Sample(x, y, op, SigmaY, seed: 1);   // warm-up: kernels load
        var run = Create(steps);
        var seen = new Snapshots(dev);
        run.Sample(x, y, op, SigmaY, seed: 1, progress: seen);
        Assert.That(seen.Seen, Has.Count.EqualTo(steps));
        // Report k follows step k (0-based): the ring is read after step Interval - 1 and after the last.
        AssertAmortised($"{sampler} (one-bit {oneBit})", seen.Deltas(), k => k % Interval == Interval - 1 || k == steps - 1);
    }

    [TestCase(false, false)]
    [TestCase(true, false)]
    [TestCase(true, true)]   // the Metropolis ratio from the probit log-likelihood
    public void DpnpSweep_ReadsBackOncePerCheckInterval(bool metropolis, bool oneBit)
    {
        var dev = TestDevices.Cpu;
        using var f = Setup(dev, oneBit);
        var (model, schedule, op, x, y) = f;
        const int sweeps = Interval + 1;
        DpnpSampler Create(int n) => new(model, schedule, new DpnpOptions
        {
            Iterations = n, EtaMax = 0.1, ConsistencySteps = 2, Metropolis = metropolis, OperatorNormSquared = 1,
            Denoiser = new DenoisingDiffusionOptions { Steps = 1 },
        });
        Create(2).Refine(x, y, op, SigmaY, seed: 1);   // warm-up
        var run = Create(sweeps);
        var seen = new Snapshots(dev);
        run.Refine(x, y, op, SigmaY, seed: 1, progress: seen);
        Assert.That(seen.Seen, Has.Count.EqualTo(sweeps));
        AssertAmortised($"dpnp (metropolis {metropolis}, one-bit {oneBit})", seen.Deltas(), k => k % Interval == Interval - 1 || k == sweeps - 1);
    }

    [TestCase(3)]    // 4 levels per read: at least 16 steps apart
    [TestCase(16)]   // one level per read
    public void AnnealedLangevinLevels_ReadBackOncePerCheck(int stepsPerLevel)
    {
        var dev = TestDevices.Cpu;
        using var f = Setup(dev);
        var (model, schedule, op, x, y) = f;
        int levels = stepsPerLevel == 3 ? 6 : 3, window = AnnealedLangevinSampler.LevelsPerCheck(stepsPerLevel);
        Assert.That(window, Is.EqualTo(stepsPerLevel == 3 ? 4 : 1));
        AnnealedLangevinSampler Create(int n) => new(model, schedule, new AnnealedLangevinOptions { Levels = n, StepsPerLevel = stepsPerLevel, PriorTimestep = 50 });
        Create(1).Refine(x, y, op, SigmaY, seed: 1);   // warm-up
        var seen = new Snapshots(dev);
        Create(levels).Refine(x, y, op, SigmaY, seed: 1, progress: seen);
        Assert.That(seen.Seen, Has.Count.EqualTo(levels));
        AssertAmortised("annealed-langevin", seen.Deltas(), k => k % window == window - 1 || k == levels - 1);
    }

    [Test]
    public void DpsLangevin_StepsReadBackOnlyWhenDue()
    {
        var dev = TestDevices.Cpu;
        using var f = Setup(dev);
        var (model, schedule, op, x, y) = f;
        const int dpsSteps = 3;   // DPS's own steps are checked above
        var run = new DpsLangevinSampler(model, schedule, new DpsLangevinOptions
        {
            Dps = new DpsOptions { Steps = dpsSteps, StepSize = 0.01 }, Timestep = 20,
            Langevin = new AnnealedLangevinOptions { Levels = 3, StepsPerLevel = 2, PriorSteps = 2, PriorTimestep = 50 },
        });
        run.Sample(x, y, op, SigmaY, seed: 1);   // warm-up
        var seen = new Snapshots(dev);
        run.Sample(x, y, op, SigmaY, seed: 1, progress: seen);
        Assert.That(seen.Seen, Has.Count.EqualTo(dpsSteps + 3));
        // The DPS steps as DPS's; then the local refinement's levels after its first (whose report also holds the
        // re-noising, the reverse diffusion and the power iteration of ||A||).
        AssertAmortised("dps-langevin (dps)", seen.Deltas().Where(d => d.Report < dpsSteps), k => k == dpsSteps - 1);
        // 3 levels of 2 steps: one read, after the last level.
        AssertAmortised("dps-langevin (langevin)", seen.Deltas().Where(d => d.Report > dpsSteps), k => k == dpsSteps + 2);
    }
}

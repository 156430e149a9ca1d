using NUnit.Framework;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;
using PosteriorGpu.Models.Schedules;
using PosteriorGpu.Models.UNet;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Samplers.Posterior;
using PosteriorGpu.Samplers.Unconditional;
using PosteriorGpu.Tests.Samplers;

namespace PosteriorGpu.Tests.Posterior;

/// <summary>
/// DPS with graph replay (issue 21): the kernels that take a step's scalars from a table row are bitwise the kernels that
/// take them as arguments, the U-Net's vector-Jacobian product with device timesteps is bitwise the host one, and a DPS run
/// whose steps read the table (one by one, or window by window through a stand-in capture that re-runs the captured
/// host code at every replay, as a graph replays its launches) is bitwise the plain run.
/// </summary>
public class DpsGraphReplayTests
{
    [TestCase(0.7f, -1.3f)]
    [TestCase(2f, 0f)]   // b = 0 does not read y
    public void AxpbyFromRow_IsBitwiseAxpbyWithArguments(float a, float b)
    {
        var dev = TestDevices.Cpu;
        var x0 = TestData.Random(1001, 1);
        var y0 = TestData.Random(1001, 2);
        if (b == 0) y0[5] = float.NaN;
        using var x = Tensor.FromHost(dev, x0, 1001);
        using var y = Tensor.FromHost(dev, y0, 1001);
        using var expected = Tensor.FromHost(dev, y0, 1001);
        using var row = Tensor.FromHost(dev, [9f, b, 3f, a], 4);
        Axpby.RunFromRow(row, 3, 1, x, y);
        Axpby.Run(a, x, b, expected);
        Assert.That(y.ToHost(), Is.EqualTo(expected.ToHost()));
        var reference = (float[])y0.Clone();
        Axpby.Reference(a, x0, b, reference);
        Assert.That(y.ToHost(), Is.EqualTo(reference));
        Assert.That(() => Axpby.RunFromRow(row, 4, 1, x, y), Throws.ArgumentException.With.Message.Contains("outside"));
    }

    [TestCase(true)]
    [TestCase(false)]
    public void GuidanceScalesFromRow_IsBitwiseGuidanceScalesWithArguments(bool residualRule)
    {
        var dev = TestDevices.Cpu;
        float[] squared = [4f, 0f, 0.3f, 17f, -1f];
        const float w = 0.37f;
        using var residual = Tensor.FromHost(dev, squared, 5);
        using var got = Tensor.Zeros(dev, 5);
        using var expected = Tensor.Zeros(dev, 5);
        using var row = Tensor.FromHost(dev, [1f, 2f, w], 3);
        GuidanceScales.RunFromRow(residualRule ? residual : null, row, 2, got);
        GuidanceScales.Run(residualRule ? residual : null, w, expected);
        Assert.That(got.ToHost(), Is.EqualTo(expected.ToHost()));
        var reference = new float[5];
        GuidanceScales.Reference(residualRule ? squared : [], w, reference);
        Assert.That(got.ToHost(), Is.EqualTo(reference));
    }

    [Test]
    public void UNetVjpWithDeviceTimesteps_IsBitwiseTheVjpWithHostTimesteps()
    {
        var dev = TestDevices.Cpu;
        using var model = UNet2DModel.Load(dev, Fixtures.Path("diffusers-unet-tiny"), withGradients: true);
        int s = model.Height, c = model.Channels;
        using var x = Tensor.FromHost(dev, TestData.Random(2 * c * s * s, 6), 2, c, s, s);
        using var cotangent = Tensor.FromHost(dev, TestData.Random(2 * c * s * s, 7), 2, c, s, s);
        Tensor Empty() => Tensor.Empty(dev, 2, c, s, s);
        using Tensor eps = Empty(), grad = Empty(), epsDevice = Empty(), gradDevice = Empty();
        model.EpsilonVjp(x, [417f], cotangent, eps, grad);
        using var t = Tensor.FromHost(dev, [417f, 417f], 2);
        model.EpsilonVjp(x, t, cotangent, epsDevice, gradDevice);
        Assert.That(epsDevice.ToHost(), Is.EqualTo(eps.ToHost()));
        Assert.That(gradDevice.ToHost(), Is.EqualTo(grad.ToHost()));
        using var wrong = Tensor.Zeros(dev, 3);
        Assert.That(() => model.EpsilonVjp(x, wrong, cotangent, eps, grad), Throws.ArgumentException.With.Message.Contains("timesteps"));
    }

    /// <summary>The DPS sample of a fixed problem (the tiny U-Net, 12 compressed-sensing measurements, two chains), plainly and
    /// with graph replay.</summary>
    private static (float[] Plain, float[] Replay, StepLaunchReport? Report) BothWays(int steps, DpsStepRule rule,
        Func<GpuDevice, Action, ILaunchReplay>? capture = null, Func<UNet2DModel, IScoreModel>? wrap = null, GpuDevice? device = null)
    {
        var dev = device ?? TestDevices.Cpu;
        using var unet = UNet2DModel.Load(dev, Fixtures.Path("diffusers-unet-tiny"), withGradients: true);
        var model = wrap?.Invoke(unet) ?? unet;
        var schedule = NoiseSchedule.Linear(1000, 1e-4, 0.02);
        int s = unet.Height, c = unet.Channels;
        using var op = new CompressedSensingOperator(dev, [c, s, s], 12, seed: 5);
        using var y = Tensor.FromHost(dev, TestData.Random(12, 3), 1, 12);
        float[] Sample(bool replay, out StepLaunchReport? report)
        {
            var sampler = new DpsSampler(model, schedule, new DpsOptions { Steps = steps, StepSize = 0.01, Rule = rule, GraphReplay = replay })
            {
                CaptureForTests = capture,
            };
            using var x = Tensor.Zeros(dev, 2, c, s, s);
            sampler.Sample(x, y, op, 1f, seed: 4, firstSample: 3);
            report = sampler.LastStepLaunches;
            return x.ToHost();
        }
        var plain = Sample(false, out var none);
        Assert.That(none, Is.Null, "a run that does not ask for graph replay reports nothing");
        var replay = Sample(true, out var report);
        Assert.That(plain.All(float.IsFinite), Is.True);
        return (plain, replay, report);
    }

    [TestCase(DpsStepRule.ResidualNorm, 9)]
    [TestCase(DpsStepRule.Likelihood, 9)]
    public void TableRun_IsBitwiseThePlainRun(DpsStepRule rule, int steps)
    {
        var (plain, replay, report) = BothWays(steps, rule);
        Assert.That(replay, Is.EqualTo(plain));
        HostReplay.AssertTableStepsRanUnreplayed(report);
    }

    // 48 steps: window 0 plain (warm-up), windows 1 and 2 replayed from the capture at step 16 (the second replay runs
    // steps 32-47 with the launches captured for steps 16-31: bitwise only if none takes a per-step value from the host).
    [Test]
    public void ReplayedWindows_RepeatTheCapturedLaunches_AndAreBitwiseThePlainRun()
    {
        int captures = 0;
        var (plain, replay, report) = BothWays(48, DpsStepRule.ResidualNorm, (_, window) => { captures++; return new HostReplay(window); });
        Assert.That(replay, Is.EqualTo(plain), "a replayed window reads every per-step value on the device");
        Assert.That(report!.StepsReplayed, Is.EqualTo(32));
        Assert.That(report.GraphLaunches, Is.EqualTo(2));
        Assert.That(captures, Is.EqualTo(1), "one capture a run");
        Assert.That(report.Fallback, Is.Null);
    }

    [Test]
    public void AModelWithoutDeviceTimesteps_TakesThePlainPath_AndSaysWhy()
    {
        var (plain, replay, report) = BothWays(6, DpsStepRule.ResidualNorm, wrap: unet => new HostTimestepsOnly(unet));
        Assert.That(replay, Is.EqualTo(plain));
        Assert.That(report!.DeviceTable, Is.False);
        Assert.That(report.Fallback, Does.Contain(nameof(HostTimestepsOnly)));
    }

    [Test, Category("Gpu")]
    public void DpsGraphReplay_OnCuda_ReplaysItsWindows_AndIsBitwiseThePlainRun()
    {
        var dev = TestDevices.Gpu;
        if (dev.Accelerator is not ILGPU.Runtime.Cuda.CudaAccelerator) Assert.Ignore("graph replay is CUDA's; this GPU is not a CUDA device");
        var (plain, replay, report) = BothWays(48, DpsStepRule.ResidualNorm, device: dev);
        TestContext.Out.WriteLine(report);
        Assert.That(report!.Fallback, Is.Null);
        Assert.That(report.StepsReplayed, Is.EqualTo(32), "windows 2 and 3 of 16 steps replayed; the first warms up");
        Assert.That(report.GraphLaunches, Is.EqualTo(2));
        Assert.That(replay, Is.EqualTo(plain));
    }

    /// <summary>The U-Net behind the host-timestep interfaces only.</summary>
    private sealed class HostTimestepsOnly(UNet2DModel inner) : IDifferentiableScoreModel
    {
        public GpuDevice Device => inner.Device;
        public int Channels => inner.Channels;
        public int Height => inner.Height;
        public int Width => inner.Width;
        public void PredictEpsilon(Tensor x, ReadOnlySpan<float> timesteps, Tensor epsilon) => inner.PredictEpsilon(x, timesteps, epsilon);
        public void EpsilonVjp(Tensor x, ReadOnlySpan<float> timesteps, Tensor cotangent, Tensor epsilon, Tensor gradient) =>
            inner.EpsilonVjp(x, timesteps, cotangent, epsilon, gradient);
    }
}

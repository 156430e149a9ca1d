using ILGPU.Runtime.Cuda;
using NUnit.Framework;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;
using PosteriorGpu.Models.Schedules;
using PosteriorGpu.Models.UNet;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Tests.Samplers;

/// <summary>
/// Graph replay (issue 21): a step whose scalars come from a per-run device table (<see cref="StepTable"/>,
/// <see cref="DiffusionStep.RunFromTable"/>, the U-Net's device timesteps) is bitwise the plain step; the sampler's
/// table loop is bitwise the plain loop wherever it runs, and on CUDA replays its windows as one graph each.
/// </summary>
public class GraphReplayTests
{
    private static readonly string Tiny = Fixtures.Path("diffusers-unet-tiny");

    [Test]
    public void StepTableSelect_MatchesItsReference_AndAdvancesTheCounter()
    {
        var dev = TestDevices.Cpu;
        const int steps = 3, width = 5, n = 7;
        var host = TestData.Random(steps * width, 1);
        using var table = Tensor.FromHost(dev, host, steps, width);
        using var counter = Tensor.Zeros(dev, 1);
        using var current = Tensor.Zeros(dev, width);
        using var timesteps = Tensor.Zeros(dev, n);
        var expectCounter = new float[1];
        var expectCurrent = new float[width];
        var expectTimesteps = new float[n];
        for (int i = 0; i < steps; i++)
        {
            StepTable.Select(table, counter, current, timesteps);
            StepTable.Reference(host, width, expectCounter, expectCurrent, expectTimesteps);
            Assert.That(current.ToHost(), Is.EqualTo(expectCurrent), $"row {i}");
            Assert.That(timesteps.ToHost(), Is.EqualTo(expectTimesteps), $"timesteps of row {i}");
            Assert.That(counter.ToHost()[0], Is.EqualTo((float)(i + 1)));
        }
    }

    [Test]
    public void StepTableSelect_RejectsShapesThatDoNotFit()
    {
        var dev = TestDevices.Cpu;
        using var table = Tensor.Zeros(dev, 3, 5);
        using var counter = Tensor.Zeros(dev, 1);
        using var current = Tensor.Zeros(dev, 4);
        using var timesteps = Tensor.Zeros(dev, 2);
        Assert.That(() => StepTable.Select(table, counter, current, timesteps), Throws.ArgumentException.With.Message.Contains("current"));
    }

    // Lengths with partial quads, draws whose offset is not a multiple of 4, a zero sigma (the quiet loop), and a step
    // word that carries into its high half when the device adds k.
    [TestCase(1024, 0L, 5UL, 3, 0.3f)]
    [TestCase(1021, 6L, 5UL, 3, 0.3f)]
    [TestCase(333, 3L, 0xFFFF_FFFEUL, 5, 0.7f)]
    [TestCase(64, 0L, 9UL, 2, 0f)]
    public void DiffusionStepFromTable_IsBitwiseTheStepWithArguments(int length, long offset, ulong step, int k, float sigma)
    {
        var dev = TestDevices.Cpu;
        var c = new DiffusionStep.Coefficients(0.97f, -0.21f, sigma);
        var x0 = TestData.Random(length, 2);
        var eps0 = TestData.Random(length, 3);
        using var x = Tensor.FromHost(dev, x0, length);
        using var eps = Tensor.FromHost(dev, eps0, length);
        using var row = Tensor.FromHost(dev, [123f, c.X, c.Eps, c.Sigma, k], DiffusionStep.TableWidth);
        var draw = new RandomDraw(77, RandomStreams.DiffusionNoise, step, offset);
        DiffusionStep.RunFromTable(x, eps, row, draw);
        var expected = (float[])x0.Clone();
        DiffusionStep.Reference(expected, eps0, c, draw with { Step = step + (ulong)k });
        Assert.That(x.ToHost(), Is.EqualTo(expected));
    }

    [Test]
    public void DiffusionStepFromTable_AtAnUnalignedView_IsBitwiseTheStepWithArguments()
    {
        var dev = TestDevices.Cpu;
        var c = new DiffusionStep.Coefficients(1.01f, 0.5f, 0.25f);
        var x0 = TestData.Random(203, 4);
        var eps0 = TestData.Random(203, 5);
        using var xBuffer = Tensor.FromHost(dev, x0, 203);
        using var epsBuffer = Tensor.FromHost(dev, eps0, 203);
        using var x = xBuffer.SliceBatch(1, 200);
        using var eps = epsBuffer.SliceBatch(1, 200);
        using var row = Tensor.FromHost(dev, [0f, c.X, c.Eps, c.Sigma, 2f], DiffusionStep.TableWidth);
        var draw = new RandomDraw(5, 1, 40, 1);
        using (var y = Tensor.FromHost(dev, x0.AsSpan(1, 200).ToArray(), 200))
        {
            using var e = Tensor.FromHost(dev, eps0.AsSpan(1, 200).ToArray(), 200);
            DiffusionStep.Run(y, e, c, draw with { Step = 42 });
            DiffusionStep.RunFromTable(x, eps, row, draw);
            Assert.That(x.ToHost(), Is.EqualTo(y.ToHost()));
        }
    }

    // Lengths with partial quads; C2 = 0 (prev not read: the first step) and not.
    [TestCase(1024, 0.4f)]
    [TestCase(1021, 0.4f)]
    [TestCase(333, 0f)]
    public void MultistepUpdateFromTable_IsBitwiseTheUpdateWithArguments(int length, float c2)
    {
        var dev = TestDevices.Cpu;
        var c = new MultistepUpdate.Coefficients(0.9f, -0.3f, 1.02f, 0.21f, c2);
        var x0 = TestData.Random(length, 2);
        var eps0 = TestData.Random(length, 3);
        var prev0 = TestData.Random(length, 4);
        using var x = Tensor.FromHost(dev, x0, length);
        using var eps = Tensor.FromHost(dev, eps0, length);
        using var prev = Tensor.FromHost(dev, prev0, length);
        using var row = Tensor.FromHost(dev, [123f, c.Px, c.Pe, c.Cx, c.C1, c.C2], MultistepUpdate.TableWidth);
        MultistepUpdate.RunFromTable(x, eps, prev, row);
        var (expectX, expectPrev) = ((float[])x0.Clone(), (float[])prev0.Clone());
        MultistepUpdate.Reference(expectX, eps0, expectPrev, c);
        Assert.That(x.ToHost(), Is.EqualTo(expectX));
        Assert.That(prev.ToHost(), Is.EqualTo(expectPrev));
    }

    [Test]
    public void MultistepUpdateFromTable_AtAnUnalignedView_IsBitwiseTheUpdateWithArguments()
    {
        var dev = TestDevices.Cpu;
        var c = new MultistepUpdate.Coefficients(1.1f, 0.5f, 0.97f, -0.2f, 0.05f);
        float[] x0 = TestData.Random(203, 4), eps0 = TestData.Random(203, 5), prev0 = TestData.Random(203, 6);
        Tensor Slice(Tensor t) => t.SliceBatch(1, 200);
        Tensor Copy(float[] v) => Tensor.FromHost(dev, v.AsSpan(1, 200).ToArray(), 200);
        using Tensor xBuffer = Tensor.FromHost(dev, x0, 203), epsBuffer = Tensor.FromHost(dev, eps0, 203), prevBuffer = Tensor.FromHost(dev, prev0, 203);
        using Tensor x = Slice(xBuffer), eps = Slice(epsBuffer), prev = Slice(prevBuffer);
        using Tensor y = Copy(x0), e = Copy(eps0), p = Copy(prev0);
        using var row = Tensor.FromHost(dev, [0f, c.Px, c.Pe, c.Cx, c.C1, c.C2], MultistepUpdate.TableWidth);
        MultistepUpdate.Run(y, e, p, c);
        MultistepUpdate.RunFromTable(x, eps, prev, row);
        Assert.That(x.ToHost(), Is.EqualTo(y.ToHost()));
        Assert.That(prev.ToHost(), Is.EqualTo(p.ToHost()));
        using var narrow = Tensor.Zeros(dev, DiffusionStep.TableWidth);
        Assert.That(() => MultistepUpdate.RunFromTable(x, eps, prev, narrow), Throws.ArgumentException.With.Message.Contains("row"));
    }

    // On the GPU's code paths (the fused time path, TimestepMlp, reads the device timesteps there) a pass of the tiny
    // U-Net takes about 10 s on the CPU, so that device checks the sampler's case alone: one timestep for the batch.
    private static IEnumerable<TestCaseData> TimestepCases()
    {
        yield return new TestCaseData(TestDevices.Cpu, new[] { 417f, 417f }).SetArgDisplayNames("cpu", "one timestep");
        yield return new TestCaseData(TestDevices.Cpu, new[] { 3f, 950f }).SetArgDisplayNames("cpu", "one per item");
        yield return new TestCaseData(TestDevices.CpuOnGpuPaths, new[] { 417f, 417f }).SetArgDisplayNames("cpu-on-gpu-paths", "one timestep");
    }

    [TestCaseSource(nameof(TimestepCases))]
    public void UNetWithDeviceTimesteps_IsBitwiseTheUNetWithHostTimesteps(GpuDevice dev, float[] t)
    {
        using var model = UNet2DModel.Load(dev, Tiny);
        int s = model.Config.SampleSize!.Value, c = model.Channels;
        using var x = Tensor.FromHost(dev, TestData.Random(2 * c * s * s, 6), 2, c, s, s);
        using var expected = Tensor.Empty(dev, 2, c, s, s);
        using var got = Tensor.Empty(dev, 2, c, s, s);
        model.PredictEpsilon(x, t, expected);
        using var deviceT = Tensor.FromHost(dev, t, 2);
        model.PredictEpsilon(x, deviceT, got);
        Assert.That(got.ToHost(), Is.EqualTo(expected.ToHost()));
        using var wrong = Tensor.Zeros(dev, 3);
        Assert.That(() => model.PredictEpsilon(x, wrong, got), Throws.ArgumentException.With.Message.Contains("timesteps"));
    }

    private static IEnumerable<TestCaseData> Runs()
    {
        var dev = TestDevices.Cpu;
        yield return new TestCaseData(dev, "ddpm", 37).SetArgDisplayNames("ddpm", "37");
        yield return new TestCaseData(dev, "ddim", 37).SetArgDisplayNames("ddim", "37");
        yield return new TestCaseData(dev, "ddim-eta1", 40).SetArgDisplayNames("ddim-eta1", "40");
        yield return new TestCaseData(dev, "ddpm", 5).SetArgDisplayNames("ddpm", "5");
        yield return new TestCaseData(dev, "pf-ode", 37).SetArgDisplayNames("pf-ode", "37");
        yield return new TestCaseData(dev, "li-accelerated", 37).SetArgDisplayNames("li-accelerated", "37");
        yield return new TestCaseData(dev, "dpmsolver++2m", 40).SetArgDisplayNames("dpmsolver++2m", "40");
    }

    private static DiffusionSampler Create(string name, IScoreModel model, NoiseSchedule schedule, SamplerOptions? options = null) => name switch
    {
        "ddim-eta1" => new DdimSampler(model, schedule, eta: 1, options),
        "no-table" => new NoTableForm(model, schedule),
        _ => SamplerFactory.Create(name, model, schedule, options),
    };

    /// <summary>The sample of a run from a fixed start, with and without <see cref="DiffusionSampler.GraphReplay"/>.</summary>
    private static (float[] Plain, float[] Replay, StepLaunchReport? Report) BothWays(GpuDevice dev, IScoreModel model, string name,
        int steps, SamplerOptions? options = null, Action<DiffusionSampler, Tensor>? run = null, Action<DiffusionSampler>? configure = null,
        NoiseSchedule? schedule = null)
    {
        schedule ??= NoiseSchedule.Linear(1000, 1e-4, 0.02);
        int s = model.Height, c = model.Channels;
        var start = TestData.Random(2 * c * s * s, 8);
        run ??= (sampler, x) => sampler.Sample(x, steps, seed: 3, firstSample: 5);
        float[] Sample(bool replay, out StepLaunchReport? report)
        {
            var sampler = Create(name, model, schedule, options);
            sampler.GraphReplay = replay;
            if (replay) configure?.Invoke(sampler);
            using var x = Tensor.FromHost(dev, start, 2, c, s, s);
            run(sampler, x);
            report = sampler.LastStepLaunches;
            return x.ToHost();
        }
        var plain = Sample(false, out var none);
        Assert.That(none, Is.Null, "a run that does not ask for graph replay reports nothing");
        var replay = Sample(true, out var report);
        return (plain, replay, report);
    }

    [TestCaseSource(nameof(Runs))]
    public void GraphReplayRun_IsBitwiseThePlainRun(GpuDevice dev, string name, int steps)
    {
        using var model = UNet2DModel.Load(dev, Tiny);
        var (plain, replay, report) = BothWays(dev, model, name, steps);
        Assert.That(plain.All(float.IsFinite), Is.True);
        Assert.That(replay, Is.EqualTo(plain));
        HostReplay.AssertTableStepsRanUnreplayed(report);
    }

    // 50 steps: window 0 plain (warm-up), windows 1 and 2 replayed from the capture at step 16, steps 48-49 plain.
    [TestCase("ddpm", 50, 32)]
    [TestCase("ddim-eta1", 40, 16)]
    [TestCase("ddim", 31, 0)]
    [TestCase("li-accelerated", 50, 32)]   // the previous step's prediction carried across windows in the pooled history
    [TestCase("dpmsolver++2m", 40, 16)]
    public void ReplayedWindows_RepeatTheCapturedLaunches_AndAreBitwiseThePlainRun(string name, int steps, int replayed)
    {
        var dev = TestDevices.Cpu;
        using var model = UNet2DModel.Load(dev, Tiny);
        int captures = 0;
        var (plain, replay, report) = BothWays(dev, model, name, steps, configure: sampler =>
            sampler.CaptureForTests = (_, window) => { captures++; return new HostReplay(window); });
        Assert.That(replay, Is.EqualTo(plain), "a replayed window reads every per-step value on the device");
        Assert.That(report!.StepsReplayed, Is.EqualTo(replayed));
        Assert.That(report.GraphLaunches, Is.EqualTo(replayed / DiffusionSampler.DefaultDivergenceCheckInterval));
        Assert.That(captures, Is.EqualTo(replayed > 0 ? 1 : 0), "one capture a run");
        Assert.That(report.Fallback, replayed > 0 ? Is.Null : Does.Contain("no full window"));
    }

    [Test]
    public void ReplayedWindows_ReportProgressAndDivergenceAsThePlainRunDoes()
    {
        var dev = TestDevices.Cpu;
        using var unet = UNet2DModel.Load(dev, Tiny);
        int s = unet.Height, c = unet.Channels;
        var start = TestData.Random(c * s * s, 8);
        (List<int> Progress, string Message, float[] X) Run(bool replay)
        {
            // The 41st network call, step 41 (in the third window), returns NaN.
            var sampler = SamplerFactory.Create("ddpm", new NaNAfter(unet, calls: 40), NoiseSchedule.Linear(1000, 1e-4, 0.02));
            sampler.GraphReplay = replay;
            sampler.CaptureForTests = (_, window) => new HostReplay(window);
            using var x = Tensor.FromHost(dev, start, 1, c, s, s);
            var seen = new List<int>();
            var e = Assert.Throws<SamplerDivergedException>(() => sampler.Sample(x, 60, seed: 3, progress: new Collect(seen)))!;
            if (replay) Assert.That(sampler.LastStepLaunches!.StepsReplayed, Is.EqualTo(32), "windows 2 and 3 replayed");
            return (seen, e.Message, x.ToHost());
        }
        var plain = Run(false);
        var replay = Run(true);
        TestContext.Out.WriteLine(replay.Message);
        Assert.That(replay.Message, Does.Contain("step 41"));
        Assert.That(replay.Message, Is.EqualTo(plain.Message));
        Assert.That(replay.Progress, Is.EqualTo(plain.Progress), "steps reported one by one up to the check that failed");
        Assert.That(replay.X, Is.EqualTo(plain.X), "x holds the same later step");
    }

    [Test]
    public void GraphReplayFrom_AnIntermediateLevel_WithADrawOffset_IsBitwiseThePlainRun()
    {
        var dev = TestDevices.Cpu;
        using var model = UNet2DModel.Load(dev, Tiny);
        int[] timesteps = [600, 420, 300, 200, 90, 10];
        var (plain, replay, report) = BothWays(dev, model, "ddpm", 0,
            run: (sampler, x) => sampler.SampleFrom(x, timesteps, seed: 9, firstSample: 1, drawOffset: 1000));
        Assert.That(replay, Is.EqualTo(plain));
        Assert.That(report!.DeviceTable, Is.True);
    }

    // Runs without the table form take the plain path and say why: a model that reads its timesteps on the host only, a
    // v-predicting model (the table's step does not convert), a config that clips or thresholds x0 (the table's steps do
    // neither), a sampler with no table form of its step.
    [TestCase("host-timesteps", "ddpm", nameof(HostTimestepsOnly))]
    [TestCase("v-prediction", "ddim", "predicts")]
    [TestCase("clip-sample", "ddpm", "clips or thresholds")]
    [TestCase("thresholding", "dpmsolver++2m", "clips or thresholds")]
    [TestCase("no-table", "no-table", "no table form")]
    public void GraphReplayWithoutATableForm_FallsBackToThePlainPath(string why, string sampler, string reason)
    {
        var dev = TestDevices.Cpu;
        using var unet = UNet2DModel.Load(dev, Tiny);
        IScoreModel model = why == "host-timesteps" ? new HostTimestepsOnly(unet) : unet;
        var options = why == "v-prediction" ? new SamplerOptions { Prediction = PredictionType.VPrediction } : null;
        var schedule = why switch
        {
            "clip-sample" => NoiseSchedule.FromConfig(new SchedulerConfig { ClipSample = true }),
            "thresholding" => NoiseSchedule.FromConfig(new SchedulerConfig { Thresholding = true }),
            _ => null,
        };
        var (plain, replay, report) = BothWays(dev, model, sampler, 6, options, schedule: schedule);
        Assert.That(replay, Is.EqualTo(plain));
        Assert.That(report!.DeviceTable, Is.False);
        Assert.That(report.Fallback, Does.Contain(reason));
    }

    [Test]
    public void TableRun_CopiesItsTableOnce_AndReadsBackOncePerCheckInterval()
    {
        var dev = TestDevices.Cpu;
        using var model = UNet2DModel.Load(dev, Tiny);
        var sampler = SamplerFactory.Create("ddpm", model, NoiseSchedule.Linear(1000, 1e-4, 0.02));
        sampler.GraphReplay = true;
        var used = SamplerHostSyncTests.CountedRun(dev, model, sampler);
        long reads = SamplerHostSyncTests.Reads(SamplerHostSyncTests.Steps);
        Assert.That((used.HostSyncs, used.DeviceToHostCopies, used.HostToDeviceCopies), Is.EqualTo((reads, reads, 1L)), used.ToString());

        // Its launches: the plain run's, and per step the selection of the table's row (plus the counter's one memset).
        sampler.GraphReplay = false;
        var plain = SamplerHostSyncTests.CountedRun(dev, model, sampler);
        TestContext.Out.WriteLine($"table run: {used}; plain run: {plain}");
        Assert.That(used.Launches, Is.EqualTo(plain.Launches + SamplerHostSyncTests.Steps + 1));
    }

    [Test]
    public void CudaGraph_OffCuda_SaysWhyAndRefusesToCapture()
    {
        var dev = TestDevices.Cpu;
        Assert.That(CudaGraph.Unavailable(dev), Does.Contain("CUDA"));
        bool ran = false;
        Assert.That(() => CudaGraph.Capture(dev, () => ran = true), Throws.TypeOf<CudaGraphException>());
        Assert.That(ran, Is.False);
    }

    [Test, Category("Gpu")]
    public void GraphReplayRun_OnCuda_ReplaysItsWindows_AndIsBitwiseThePlainRun()
    {
        var dev = TestDevices.Gpu;
        if (dev.Accelerator is not CudaAccelerator) Assert.Ignore("graph replay is CUDA's; this GPU is not a CUDA device");
        using var model = UNet2DModel.Load(dev, Tiny);
        const int steps = 50, window = DiffusionSampler.DefaultDivergenceCheckInterval;
        var (plain, replay, report) = BothWays(dev, model, "ddpm", steps);
        TestContext.Out.WriteLine(report);
        Assert.That(report!.Fallback, Is.Null);
        Assert.That(report.StepsReplayed, Is.EqualTo(2 * window), "windows 2 and 3 of 16 steps replayed; the first warms up, the last 2 steps are short");
        Assert.That(report.GraphLaunches, Is.EqualTo(2));
        Assert.That(report.NodesPerGraph, Is.GreaterThan(window * 3));
        Assert.That(replay, Is.EqualTo(plain));
    }

    [Test, Category("Gpu")]
    public void CudaGraph_OnCuda_ReplaysWhatItCaptured()
    {
        var dev = TestDevices.Gpu;
        if (dev.Accelerator is not CudaAccelerator) Assert.Ignore("graph replay is CUDA's; this GPU is not a CUDA device");
        using var x = Tensor.Zeros(dev, 1000);
        using var graph = CudaGraph.Capture(dev, () => Affine.Run(x, 2f, 1f, x));
        Assert.That(x.ToHost().Max(), Is.Zero, "capturing runs nothing");
        for (int i = 0; i < 3; i++) graph.Launch();
        Assert.That(x.ToHost(), Is.All.EqualTo(7f), "x -> 2x + 1 three times from 0");
        Assert.That(graph.Nodes, Is.EqualTo(1));
    }

    private sealed class Collect(List<int> steps) : IProgress<SamplerProgress>
    {
        public void Report(SamplerProgress value) => steps.Add(value.Step);
    }

    /// <summary>The U-Net (with device timesteps) whose output is NaN from call <paramref name="calls"/> + 1 on.</summary>
    private sealed class NaNAfter(UNet2DModel inner, int calls) : IDeviceTimestepScoreModel
    {
        private int made;
        public GpuDevice Device => inner.Device;
        public int Channels => inner.Channels;
        public int Height => inner.Height;
        public int Width => inner.Width;
        public void PredictEpsilon(Tensor x, ReadOnlySpan<float> timesteps, Tensor epsilon)
        {
            inner.PredictEpsilon(x, timesteps, epsilon);
            Poison(epsilon);
        }
        public void PredictEpsilon(Tensor x, Tensor timesteps, Tensor epsilon)
        {
            inner.PredictEpsilon(x, timesteps, epsilon);
            Poison(epsilon);
        }
        private void Poison(Tensor epsilon)
        {
            if (++made > calls) Affine.Run(epsilon, float.NaN, 0f, epsilon);
        }
    }

    /// <summary>A sampler with no table form of its step (DDIM's update, launched with host scalars).</summary>
    private sealed class NoTableForm(IScoreModel model, NoiseSchedule schedule) : DiffusionSampler(model, schedule, null)
    {
        public override string Name => "no-table";
        protected override void Step(Tensor x, Tensor eps, StepInfo info, RandomDraw draw) =>
            DiffusionStep.Run(x, eps, DiffusionStep.Ddim(info.AlphaT, info.AlphaPrev, 0), draw);
    }

    /// <summary>The U-Net behind the plain interface only (its timesteps from the host).</summary>
    private sealed class HostTimestepsOnly(IScoreModel inner) : IScoreModel
    {
        public GpuDevice Device => inner.Device;
        public int Channels => inner.Channels;
        public int Height => inner.Height;
        public int Width => inner.Width;
        public void PredictEpsilon(Tensor x, ReadOnlySpan<float> timesteps, Tensor epsilon) => inner.PredictEpsilon(x, timesteps, epsilon);
    }
}

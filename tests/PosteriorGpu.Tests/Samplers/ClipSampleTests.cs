using NUnit.Framework;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;
using PosteriorGpu.Models.Priors;
using PosteriorGpu.Models.Schedules;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Tests.Samplers;

/// <summary>clip_sample and thresholding in DDPM and DDIM against a plain float32 re-implementation of diffusers'
/// DDPMScheduler.step and DDIMScheduler.step, and the refusal of keys a sampler does not implement.</summary>
public class ClipSampleTests
{
    private const int Batch = 3, C = 3, H = 4, W = 5, D = C * H * W, Steps = 6;
    private const ulong Seed = 17;
    private const long FirstSample = 2;

    private static NoiseSchedule Schedule(SchedulerConfig c) => NoiseSchedule.FromConfig(c, "test/scheduler_config.json");

    // Means of about +-2.5 with unit variance: the predicted x0 leaves [-1, 1] at every step, so clipping bites.
    private static GaussianPrior Prior(NoiseSchedule schedule)
    {
        var mean = TestData.Random(D, 31).Select(v => 2.5 * Math.Sign(v) + v).ToArray();
        var variance = TestData.Random(D, 32).Select(v => 0.5 + Math.Abs(v)).ToArray();
        return GaussianPrior.Diagonal(TestDevices.Cpu, C, H, W, mean, variance, schedule);
    }

    private static float[] Start() => TestData.Random(Batch * D, 33, 1.7f);

    private static float[] RunSampler(string sampler, SchedulerConfig config, double eta = 0, bool useClipped = false)
    {
        var schedule = Schedule(config);
        using var prior = Prior(schedule);
        using var x = Tensor.FromHost(TestDevices.Cpu, Start(), Batch, C, H, W);
        var options = SamplerOptions.FromConfig(config) with { UseClippedModelOutput = useClipped };
        IScoreModel model = config.PredictionType == "v_prediction" ? new VPrediction(prior, schedule) : prior;
        SamplerFactory.Create(sampler, model, schedule, options, eta).Sample(x, Steps, Seed, FirstSample);
        return x.ToHost();
    }

    // v = sqrt(a) eps - sqrt(1 - a) x0 with x0 = (x - sqrt(1 - a) eps) / sqrt(a) (Salimans and Ho 2022), in float32.
    private static void ToV(float[] x, float[] eps, float a)
    {
        for (int j = 0; j < x.Length; j++)
        {
            float x0 = (x[j] - MathF.Sqrt(1 - a) * eps[j]) / MathF.Sqrt(a);
            eps[j] = MathF.Sqrt(a) * eps[j] - MathF.Sqrt(1 - a) * x0;
        }
    }

    /// <summary>The prior as a v-prediction network (host conversion; one timestep for the batch, as the samplers call it).</summary>
    private sealed class VPrediction(GaussianPrior prior, NoiseSchedule schedule) : IScoreModel
    {
        public GpuDevice Device => prior.Device;
        public int Channels => prior.Channels;
        public int Height => prior.Height;
        public int Width => prior.Width;

        public void PredictEpsilon(Tensor x, ReadOnlySpan<float> timesteps, Tensor epsilon)
        {
            ScoreModelTimesteps.Require(timesteps, x.N, "v prediction");
            if (timesteps.Length != 1) throw new NotSupportedException("the test's v model takes one timestep");
            prior.PredictEpsilon(x, timesteps, epsilon);
            var e = epsilon.ToHost();
            ToV(x.ToHost(), e, schedule.AlphasCumprod[(int)timesteps[0]]);
            epsilon.CopyFrom(e);
        }
    }

    // diffusers' step in float32, tensor by tensor (alphas_cumprod entries are float32, as are the scalars derived from them).
    private static float[] RunDiffusers(string sampler, SchedulerConfig config, double eta = 0, bool useClipped = false)
    {
        var schedule = Schedule(config);
        using var prior = Prior(schedule);
        var acp = schedule.AlphasCumprod;
        int T = schedule.NumTrainTimesteps;
        var timesteps = schedule.Timesteps(Steps, config.TimestepSpacing, config.StepsOffset);
        var x = Start();
        var eps = new float[x.Length];
        using var tx = Tensor.FromHost(TestDevices.Cpu, x, Batch, C, H, W);
        using var te = Tensor.Zeros(TestDevices.Cpu, Batch, C, H, W);
        for (int i = 0; i < timesteps.Length; i++)
        {
            int t = timesteps[i], prev = t - T / Steps;
            tx.CopyFrom(x);
            prior.PredictEpsilon(tx, [t], te);
            te.CopyTo(eps);
            float aT = acp[t], aP = prev >= 0 ? acp[prev] : 1f;
            float betaT = 1f - aT, betaP = 1f - aP;
            var x0 = new float[x.Length];
            if (config.PredictionType == "v_prediction")
            {
                ToV(x, eps, aT);   // the model's output is v: diffusers' v branches of stage 3
                for (int j = 0; j < x.Length; j++)
                {
                    float v = eps[j];
                    x0[j] = MathF.Sqrt(aT) * x[j] - MathF.Sqrt(betaT) * v;
                    eps[j] = MathF.Sqrt(aT) * v + MathF.Sqrt(betaT) * x[j];
                }
            }
            else
                for (int j = 0; j < x.Length; j++) x0[j] = (x[j] - MathF.Sqrt(betaT) * eps[j]) / MathF.Sqrt(aT);
            if (config.Thresholding) ThresholdSample(x0, (float)config.DynamicThresholdingRatio, (float)config.SampleMaxValue);
            else if (config.ClipSample)
                for (int j = 0; j < x0.Length; j++) x0[j] = Math.Clamp(x0[j], -(float)config.ClipSampleRange, (float)config.ClipSampleRange);
            var z = new RandomDraw(Seed, DiffusionSampler.NoiseStream, (ulong)i).ForBatch(FirstSample, D);
            if (sampler == "ddpm")
            {
                float alphaT = aT / aP, beta = 1f - alphaT;
                float c0 = MathF.Sqrt(aP) * beta / betaT, ct = MathF.Sqrt(alphaT) * betaP / betaT;
                float variance = config.VarianceType == "fixed_large" ? beta : Math.Max(betaP / betaT * beta, 1e-20f);
                for (int j = 0; j < x.Length; j++)
                    x[j] = c0 * x0[j] + ct * x[j] + (t > 0 ? MathF.Sqrt(variance) * z.Normal(j) : 0f);
            }
            else
            {
                float variance = betaP / betaT * (1f - aT / aP);
                float std = (float)eta * MathF.Sqrt(variance);
                float dir = MathF.Sqrt(1f - aP - std * std);
                for (int j = 0; j < x.Length; j++)
                {
                    float e = useClipped ? (x[j] - MathF.Sqrt(aT) * x0[j]) / MathF.Sqrt(betaT) : eps[j];
                    x[j] = MathF.Sqrt(aP) * x0[j] + dir * e + (eta > 0 ? std * z.Normal(j) : 0f);
                }
            }
        }
        return x;
    }

    // _threshold_sample: s = quantile(|x0|, ratio) over each item (torch's linear interpolation), clamp(s, 1, max),
    // x0 = clamp(x0, -s, s) / s.
    private static void ThresholdSample(float[] x0, float ratio, float max)
    {
        for (int n = 0; n < Batch; n++)
        {
            var row = x0.AsSpan(n * D, D);
            var sorted = row.ToArray().Select(MathF.Abs).Order().ToArray();
            float rank = ratio * (D - 1);
            int lo = (int)MathF.Floor(rank), hi = (int)MathF.Ceiling(rank);
            float w = rank - lo;
            float q = w < 0.5f ? sorted[lo] + w * (sorted[hi] - sorted[lo]) : sorted[hi] - (sorted[hi] - sorted[lo]) * (1 - w);
            float s = Math.Min(Math.Max(q, 1f), max);
            for (int j = 0; j < D; j++) row[j] = Math.Clamp(row[j], -s, s) / s;
        }
    }

    private static IEnumerable<TestCaseData> Cases()
    {
        var clip = new SchedulerConfig { ClipSample = true };
        var clipHalf = new SchedulerConfig { ClipSample = true, ClipSampleRange = 1.8 };
        var threshold = new SchedulerConfig { ClipSample = true, Thresholding = true, DynamicThresholdingRatio = 0.9, SampleMaxValue = 2.2 };
        var trailing = new SchedulerConfig { ClipSample = true, TimestepSpacing = "trailing", VarianceType = "fixed_large" };
        yield return new TestCaseData("ddpm", clip, 0.0, false).SetArgDisplayNames("ddpm", "clip 1");
        yield return new TestCaseData("ddpm", clipHalf, 0.0, false).SetArgDisplayNames("ddpm", "clip 1.8");
        yield return new TestCaseData("ddpm", threshold, 0.0, false).SetArgDisplayNames("ddpm", "threshold 0.9 max 2.2");
        yield return new TestCaseData("ddpm", trailing, 0.0, false).SetArgDisplayNames("ddpm", "clip, trailing, fixed_large");
        yield return new TestCaseData("ddim", clip, 0.0, false).SetArgDisplayNames("ddim eta 0", "clip 1");
        yield return new TestCaseData("ddim", clipHalf, 1.0, false).SetArgDisplayNames("ddim eta 1", "clip 1.8");
        yield return new TestCaseData("ddim", threshold, 0.5, false).SetArgDisplayNames("ddim eta 0.5", "threshold 0.9 max 2.2");
        yield return new TestCaseData("ddim", clip, 0.0, true).SetArgDisplayNames("ddim eta 0", "clip 1, use_clipped_model_output");
        yield return new TestCaseData("ddim", threshold, 1.0, true).SetArgDisplayNames("ddim eta 1", "threshold, use_clipped_model_output");
        var v = new SchedulerConfig { ClipSample = true, PredictionType = "v_prediction" };
        yield return new TestCaseData("ddpm", v, 0.0, false).SetArgDisplayNames("ddpm", "clip 1, v_prediction");
        yield return new TestCaseData("ddim", v with { Thresholding = true, SampleMaxValue = 1.7 }, 0.0, false).SetArgDisplayNames("ddim eta 0", "threshold, v_prediction");
    }

    [TestCaseSource(nameof(Cases))]
    public void Sampler_MatchesDiffusersStep(string sampler, SchedulerConfig config, double eta, bool useClipped)
    {
        var got = RunSampler(sampler, config, eta, useClipped);
        var want = RunDiffusers(sampler, config, eta, useClipped);
        Assert.That(TestData.MaxAbsError(got, want), Is.LessThan(2e-5), "the sampler against diffusers' formulas");
        // The clipping matters here: without it the result is far away.
        var unclipped = RunDiffusers(sampler, config with { ClipSample = false, Thresholding = false }, eta, useClipped);
        Assert.That(TestData.MaxAbsError(got, unclipped), Is.GreaterThan(0.05), "clipping or thresholding changed nothing");
    }

    // DPM-Solver++(2M) (Lu et al. 2022; diffusers' multistep_dpm_solver_second_order_update, midpoint, with lower_order_final)
    // in double on the host, its data prediction thresholded by the same float32 _threshold_sample.
    private static float[] RunDpmSolverPlusPlus(SchedulerConfig config)
    {
        var schedule = Schedule(config);
        using var prior = Prior(schedule);
        var acp = schedule.AlphasCumprodDouble;
        int T = schedule.NumTrainTimesteps;
        var timesteps = schedule.Timesteps(Steps, config.TimestepSpacing, config.StepsOffset);
        var x = Start();
        var eps = new float[x.Length];
        double[]? previousX0 = null;
        double previousLambda = 0;
        using var tx = Tensor.FromHost(TestDevices.Cpu, x, Batch, C, H, W);
        using var te = Tensor.Zeros(TestDevices.Cpu, Batch, C, H, W);
        static double Lambda(double a) => 0.5 * Math.Log(a / (1 - a));
        for (int i = 0; i < timesteps.Length; i++)
        {
            int t = timesteps[i], prev = t - T / Steps;
            tx.CopyFrom(x);
            prior.PredictEpsilon(tx, [t], te);
            te.CopyTo(eps);
            double aS = acp[t], aT = prev >= 0 ? acp[prev] : 1.0;
            var x0f = new float[x.Length];
            for (int j = 0; j < x.Length; j++) x0f[j] = (float)((x[j] - Math.Sqrt(1 - aS) * eps[j]) / Math.Sqrt(aS));
            if (config.Thresholding) ThresholdSample(x0f, (float)config.DynamicThresholdingRatio, (float)config.SampleMaxValue);
            var x0 = x0f.Select(v => (double)v).ToArray();
            if (aT >= 1)
            {
                x = x0f;
                continue;
            }
            double h = Lambda(aT) - Lambda(aS), alphaT = Math.Sqrt(aT);
            double ratio = Math.Sqrt(1 - aT) / Math.Sqrt(1 - aS), e = Math.Exp(-h) - 1;
            for (int j = 0; j < x.Length; j++)
            {
                double d = x0[j];
                if (previousX0 is not null)
                {
                    double r0 = (Lambda(aS) - previousLambda) / h;
                    d = x0[j] + 0.5 * (x0[j] - previousX0[j]) / r0;
                }
                x[j] = (float)(ratio * x[j] - alphaT * e * d);
            }
            previousX0 = x0;
            previousLambda = Lambda(aS);
        }
        return x;
    }

    [Test]
    public void DpmSolverPlusPlus_ThresholdsItsDataPrediction()
    {
        var config = new SchedulerConfig { ClipSample = false, Thresholding = true, DynamicThresholdingRatio = 0.9, SampleMaxValue = 2.2 };
        var got = RunSampler("dpmsolver++2m", config);
        Assert.That(TestData.MaxAbsError(got, RunDpmSolverPlusPlus(config)), Is.LessThan(1e-4));
        var plain = RunSampler("dpmsolver++2m", config with { Thresholding = false });
        Assert.That(TestData.MaxAbsError(plain, RunDpmSolverPlusPlus(config with { Thresholding = false })), Is.LessThan(1e-4),
            "the host reference is DPM-Solver++(2M) itself");
        Assert.That(TestData.MaxAbsError(got, plain), Is.GreaterThan(0.05), "thresholding changed nothing");
    }

    [Test]
    public void ThresholdingWithCapOne_IsClippingToOne()
    {
        // diffusers: "When clamped to min=1, equivalent to standard clipping to [-1, 1]".
        var a = RunSampler("ddim", new SchedulerConfig { Thresholding = true, SampleMaxValue = 1 });
        var b = RunSampler("ddim", new SchedulerConfig { ClipSample = true });
        Assert.That(TestData.MaxAbsError(a, b), Is.LessThan(1e-6));
    }

    [TestCase("ddpm")]
    [TestCase("ddpm-large")]
    [TestCase("ddim")]
    [TestCase("pf-ode")]
    [TestCase("li-accelerated")]
    [TestCase("dpmsolver++2m")]
    public void ConfigWithoutClipping_GivesTheRecordedDefaultOutput(string sampler)
    {
        // A schedule built from a config with clip_sample false is the plain schedule: the same bits as the pinned runs.
        var plain = UnconditionalPinTests.Run(sampler, 0);
        var mean = TestData.Random(3 * 4 * 5, 1).Select(v => (double)v).ToArray();
        var variance = TestData.Random(3 * 4 * 5, 2).Select(v => 0.3 + Math.Abs(v)).ToArray();
        var schedule = NoiseSchedule.FromConfig(new SchedulerConfig { ClipSample = false, DynamicThresholdingRatio = 0.5 });
        using var prior = GaussianPrior.Diagonal(TestDevices.Cpu, 3, 4, 5, mean, variance, schedule);
        using var x = Tensor.FromHost(TestDevices.Cpu, TestData.Random(2 * 60, 21, 2f), 2, 3, 4, 5);
        SamplerFactory.Create(sampler, prior, schedule).Sample(x, 12, 7, 3);
        Assert.That(x.ToHost(), Is.EqualTo(plain));
    }

    [TestCase("pf-ode", "clip_sample")]
    [TestCase("li-accelerated", "clip_sample")]
    [TestCase("dpmsolver++2m", "clip_sample")]
    [TestCase("pf-ode", "thresholding")]
    [TestCase("li-accelerated", "thresholding")]
    public void SamplerWithoutClipping_RefusesAConfigThatAsksForIt(string sampler, string key)
    {
        var config = key == "clip_sample" ? new SchedulerConfig { ClipSample = true, ClipSampleRange = 1.5 }
            : new SchedulerConfig { ClipSample = false, Thresholding = true };
        var schedule = Schedule(config);
        using var prior = Prior(schedule);
        var e = Assert.Throws<NotSupportedException>(() => SamplerFactory.Create(sampler, prior, schedule))!;
        Assert.That(e.Message, Does.Contain($"{key} is true").And.Contain("test/scheduler_config.json").And.Contain($"'{sampler}'"));
        if (key == "clip_sample") Assert.That(e.Message, Does.Contain("clip_sample_range 1.5"));
    }

    [Test]
    public void RequireSupported_IsTheCheckEveryoneCalls()
    {
        var clip = Schedule(new SchedulerConfig { ClipSample = true });
        Assert.DoesNotThrow(() => clip.RequireSupported("dps", supportsClipSample: true, supportsThresholding: false));
        Assert.That(() => clip.RequireSupported("dps", false, true), Throws.TypeOf<NotSupportedException>().With.Message.Contains("'dps'"));
        // thresholding wins over clip_sample in diffusers, so a sampler that thresholds needs no clipping.
        var both = Schedule(new SchedulerConfig { ClipSample = true, Thresholding = true });
        Assert.DoesNotThrow(() => both.RequireSupported("x", supportsClipSample: false, supportsThresholding: true));
        Assert.That(() => both.RequireSupported("x", true, false), Throws.TypeOf<NotSupportedException>().With.Message.Contains("thresholding is true"));
        // Schedules built from numbers, and configs without either key, ask for nothing.
        Assert.DoesNotThrow(() => NoiseSchedule.Linear(1000, 1e-4, 0.02).RequireSupported("x", false, false));
        Assert.DoesNotThrow(() => NoiseSchedule.FromConfig(new SchedulerConfig { ClipSample = false }).RequireSupported("x", false, false));
        // diffusers' default clip_sample is true: a config that omits it clips.
        Assert.That(NoiseSchedule.FromConfig(SchedulerConfig.Parse("""{"_class_name": "DDPMScheduler", "foo": 1}""", "x.json")).ClipSample, Is.True);
    }

    [TestCase("fixed_large_log")]
    [TestCase("learned")]
    [TestCase("learned_range")]
    public void Ddpm_RefusesVarianceTypesItCannotHonour(string varianceType)
    {
        var schedule = Schedule(new SchedulerConfig { ClipSample = false, VarianceType = varianceType });
        using var prior = Prior(schedule);
        var e = Assert.Throws<NotSupportedException>(() => SamplerFactory.Create("ddpm", prior, schedule))!;
        Assert.That(e.Message, Does.Contain($"variance_type '{varianceType}'").And.Contain("test/scheduler_config.json").And.Contain("'ddpm'"));
        Assert.DoesNotThrow(() => SamplerFactory.Create("ddim", prior, schedule), "DDIM has no variance_type");
    }

    [Test]
    public void Ddpm_TakesFixedLargeFromTheConfig()
    {
        var large = RunSampler("ddpm", new SchedulerConfig { ClipSample = false, VarianceType = "fixed_large" });
        Assert.That(large, Is.EqualTo(RunSampler("ddpm-large", new SchedulerConfig { ClipSample = false })));
        var smallLog = RunSampler("ddpm", new SchedulerConfig { ClipSample = false, VarianceType = "fixed_small_log" });
        Assert.That(smallLog, Is.EqualTo(RunSampler("ddpm", new SchedulerConfig { ClipSample = false })));
        Assert.That(large, Is.Not.EqualTo(smallLog));
    }

    [Test]
    public void SamplerWithoutOptions_TakesThemFromTheSchedulesConfig()
    {
        var config = new SchedulerConfig { ClipSample = false, TimestepSpacing = "trailing", SetAlphaToOne = false };
        var schedule = NoiseSchedule.FromConfig(config);
        using var prior = Prior(schedule);
        var s = SamplerFactory.Create("ddim", prior, schedule);
        Assert.That((s.Options.TimestepSpacing, s.Options.SetAlphaToOne), Is.EqualTo(("trailing", false)));
    }
}

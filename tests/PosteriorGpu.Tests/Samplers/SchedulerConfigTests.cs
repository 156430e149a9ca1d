using NUnit.Framework;
using PosteriorGpu.Models.Schedules;

namespace PosteriorGpu.Tests.Samplers;

public class SchedulerConfigTests
{
    [Test]
    public void Load_ReadsTheDiffusersFixture()
    {
        var c = SchedulerConfig.Load(Path.Combine(ScheduleFixtures.Path("diffusers-unet-tiny"), "scheduler_config.json"));
        Assert.That(c.ClassName, Is.EqualTo("DDIMScheduler"));
        Assert.That(c.NumTrainTimesteps, Is.EqualTo(1000));
        Assert.That(c.BetaStart, Is.EqualTo(0.0001));
        Assert.That(c.BetaEnd, Is.EqualTo(0.02));
        Assert.That(c.BetaSchedule, Is.EqualTo("linear"));
        Assert.That(c.TrainedBetas, Is.Null);
        Assert.That(c.ClipSample, Is.False);
        Assert.That(c.SetAlphaToOne, Is.True);
        Assert.That(c.StepsOffset, Is.EqualTo(0));
        Assert.That(c.Prediction, Is.EqualTo(PredictionType.Epsilon));
        Assert.That(c.TimestepSpacing, Is.EqualTo("leading"));
        Assert.That(c.Thresholding, Is.False);
        Assert.That(c.DynamicThresholdingRatio, Is.EqualTo(0.995));
    }

    [Test]
    public void Parse_MissingKeysTakeDiffusersDefaults_AndUnknownKeysAreIgnored()
    {
        var c = SchedulerConfig.Parse("""{"_class_name": "DDPMScheduler", "use_karras_sigmas": false, "variance_type": "fixed_large"}""", "x.json");
        Assert.That(c, Is.EqualTo(new SchedulerConfig { ClassName = "DDPMScheduler", VarianceType = "fixed_large" }));
        Assert.That(c.ClipSample, Is.True, "DDIMScheduler and DDPMScheduler default clip_sample to True");
    }

    [Test]
    public void Parse_ReadsEveryField()
    {
        var c = SchedulerConfig.Parse("""
            {"num_train_timesteps": 3, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
             "trained_betas": [0.1, 0.2, 0.3], "clip_sample": false, "clip_sample_range": 2.5, "set_alpha_to_one": false,
             "steps_offset": 1, "prediction_type": "v_prediction", "timestep_spacing": "trailing", "variance_type": "learned_range",
             "rescale_betas_zero_snr": true, "thresholding": true, "dynamic_thresholding_ratio": 0.9, "sample_max_value": 3.0}
            """, "x.json");
        Assert.That(c.TrainedBetas, Is.EqualTo(new[] { 0.1, 0.2, 0.3 }));
        Assert.That((c.ClipSample, c.ClipSampleRange, c.SetAlphaToOne, c.StepsOffset), Is.EqualTo((false, 2.5, false, 1)));
        Assert.That((c.Prediction, c.TimestepSpacing, c.VarianceType), Is.EqualTo((PredictionType.VPrediction, "trailing", "learned_range")));
        Assert.That((c.RescaleBetasZeroSnr, c.Thresholding, c.DynamicThresholdingRatio, c.SampleMaxValue), Is.EqualTo((true, true, 0.9, 3.0)));
    }

    [Test]
    public void ToJson_RoundTrips_WithSnakeCaseKeys()
    {
        var c = new SchedulerConfig { BetaSchedule = "squaredcos_cap_v2", PredictionType = "sample", StepsOffset = 1, TrainedBetas = null };
        string json = c.ToJson();
        Assert.That(json, Does.Contain("\"num_train_timesteps\"").And.Contain("\"rescale_betas_zero_snr\"").And.Contain("\"steps_offset\": 1"));
        Assert.That(SchedulerConfig.Parse(json, "roundtrip.json"), Is.EqualTo(c));
    }

    [TestCase("""{"beta_schedule": "cosine"}""", "beta_schedule", "'cosine'", "linear, scaled_linear, squaredcos_cap_v2")]
    [TestCase("""{"timestep_spacing": "uniform"}""", "timestep_spacing", "'uniform'", "leading, trailing, linspace")]
    [TestCase("""{"prediction_type": "noise"}""", "prediction_type", "'noise'", "epsilon, v_prediction, sample")]
    [TestCase("""{"variance_type": "big"}""", "variance_type", "'big'", "fixed_small")]
    [TestCase("""{"num_train_timesteps": 0}""", "num_train_timesteps", "0", "at least 1")]
    [TestCase("""{"num_train_timesteps": 3, "trained_betas": [0.1]}""", "trained_betas", "3", "got 1")]
    [TestCase("""{"num_train_timesteps": "1000"}""", "num_train_timesteps", "x.json", "invalid")]
    [TestCase("""{"num_train_timesteps": 1000.5}""", "num_train_timesteps", "x.json", "invalid")]
    [TestCase("""{"beta_end": 1.5}""", "beta_end", "1.5", "(0, 1)")]
    [TestCase("""{"steps_offset": -1}""", "steps_offset", "-1", "non-negative")]
    public void Parse_BadField_NamesFileFieldAndValue(string json, string field, string value, string expected)
    {
        var e = Assert.Throws<InvalidDataException>(() => SchedulerConfig.Parse(json, "x.json"))!;
        Assert.That(e.Message, Does.StartWith("x.json:").And.Contain(field).And.Contain(value).And.Contain(expected));
    }

    [Test]
    public void Parse_NotJson_NamesFile()
    {
        var e = Assert.Throws<InvalidDataException>(() => SchedulerConfig.Parse("{num_train_timesteps", "broken.json"))!;
        Assert.That(e.Message, Does.StartWith("broken.json:"));
        Assert.Throws<InvalidDataException>(() => SchedulerConfig.Parse("null", "null.json"));
    }

    [Test]
    public void Load_MissingFile_NamesPath()
    {
        var e = Assert.Throws<FileNotFoundException>(() => SchedulerConfig.Load("/nonexistent/scheduler_config.json"))!;
        Assert.That(e.Message, Does.Contain("/nonexistent/scheduler_config.json"));
    }

    [Test]
    public void Validate_IsWhatFromConfigUses()
    {
        var e = Assert.Throws<ArgumentException>(() => new SchedulerConfig { TimestepSpacing = "even" }.Validate())!;
        Assert.That(e.Message, Does.Contain("'even'").And.Contain("leading, trailing, linspace"));
        Assert.Throws<ArgumentException>(() => NoiseSchedule.FromConfig(new SchedulerConfig { TimestepSpacing = "even" }));
    }
}

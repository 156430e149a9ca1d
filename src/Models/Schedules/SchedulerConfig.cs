using System.Text.Json;
using System.Text.Json.Serialization;

namespace PosteriorGpu.Models.Schedules;

/// <summary>The fields of a diffusers scheduler_config.json (DDIM/DDPM/DPM-Solver family), with diffusers' defaults.</summary>
/// <remarks>
/// Property names are diffusers' keys in PascalCase; the JSON keys are snake_case exactly as
/// diffusers' save_pretrained writes them. Keys this record does not hold (other schedulers' keys) are ignored, as
/// are the metadata keys _class_name and _diffusers_version. Defaults are DDIMScheduler.__init__'s (clip_sample defaults to true there and in
/// DDPMScheduler). Every key read is honoured or refused, never ignored: the betas keys by
/// <see cref="NoiseSchedule.FromConfig"/>; timestep_spacing, steps_offset, set_alpha_to_one and prediction_type as the
/// samplers' default options; variance_type by DDPM (the only sampler with a variance choice); clip_sample,
/// clip_sample_range, thresholding, dynamic_thresholding_ratio and sample_max_value by DDPM and DDIM (thresholding
/// also by DPM-Solver++), and refused by every other sampler through <see cref="NoiseSchedule.RequireSupported"/>.
/// </remarks>
public sealed record SchedulerConfig
{
    /// <summary>Largest config file accepted (a real one is well under 100 kB even with trained_betas).</summary>
    public const long MaxFileBytes = 16 << 20;

    /// <summary>The beta_schedule names NoiseSchedule.FromConfig builds.</summary>
    public static readonly IReadOnlyList<string> SupportedBetaSchedules = ["linear", "scaled_linear", "squaredcos_cap_v2"];

    /// <summary>The variance_type names of DDPMScheduler.</summary>
    public static readonly IReadOnlyList<string> SupportedVarianceTypes =
        ["fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log", "learned", "learned_range"];

    /// <summary>_class_name: the diffusers scheduler class that wrote the file, e.g. "DDIMScheduler".</summary>
    [JsonPropertyName("_class_name")] public string? ClassName { get; init; }

    /// <summary>_diffusers_version: the diffusers version that wrote the file.</summary>
    [JsonPropertyName("_diffusers_version")] public string? DiffusersVersion { get; init; }

    /// <summary>num_train_timesteps: T, the number of training noise levels.</summary>
    public int NumTrainTimesteps { get; init; } = 1000;

    /// <summary>beta_start: the first beta of "linear" and "scaled_linear".</summary>
    public double BetaStart { get; init; } = 0.0001;

    /// <summary>beta_end: the last beta of "linear" and "scaled_linear".</summary>
    public double BetaEnd { get; init; } = 0.02;

    /// <summary>beta_schedule: "linear", "scaled_linear" or "squaredcos_cap_v2".</summary>
    public string BetaSchedule { get; init; } = "linear";

    /// <summary>trained_betas: explicit betas (one per training timestep) overriding beta_schedule.</summary>
    public double[]? TrainedBetas { get; init; }

    /// <summary>clip_sample: clamp the predicted x0 to [-ClipSampleRange, ClipSampleRange] (ignored when Thresholding is set, as in diffusers).</summary>
    public bool ClipSample { get; init; } = true;

    /// <summary>clip_sample_range: the clamp bound used when ClipSample is set.</summary>
    public double ClipSampleRange { get; init; } = 1.0;

    /// <summary>set_alpha_to_one: DDIM's alpha_cumprod "before" timestep 0 is 1 (else alphas_cumprod[0]).</summary>
    public bool SetAlphaToOne { get; init; } = true;

    /// <summary>steps_offset: added to "leading" inference timesteps.</summary>
    public int StepsOffset { get; init; }

    /// <summary>prediction_type: "epsilon", "v_prediction" or "sample".</summary>
    public string PredictionType { get; init; } = "epsilon";

    /// <summary>timestep_spacing: "leading", "trailing" or "linspace".</summary>
    public string TimestepSpacing { get; init; } = "leading";

    /// <summary>variance_type: DDPM's choice of reverse-step variance ("fixed_small" is beta-tilde, "fixed_large" beta; the DDPM
    /// sampler refuses fixed_large_log, learned and learned_range).</summary>
    public string VarianceType { get; init; } = "fixed_small";

    /// <summary>rescale_betas_zero_snr: rescale betas to zero terminal SNR (Lin et al. 2023, Algorithm 1).</summary>
    public bool RescaleBetasZeroSnr { get; init; }

    /// <summary>thresholding: dynamic thresholding of x0 (Imagen, Saharia et al. 2022) instead of clipping.</summary>
    public bool Thresholding { get; init; }

    /// <summary>dynamic_thresholding_ratio: the quantile of |x0| used by dynamic thresholding.</summary>
    public double DynamicThresholdingRatio { get; init; } = 0.995;

    /// <summary>sample_max_value: the largest threshold dynamic thresholding may use.</summary>
    public double SampleMaxValue { get; init; } = 1.0;

    /// <summary>The prediction type as an enum.</summary>
    [JsonIgnore] public PredictionType Prediction => ModelOutput.Parse(PredictionType);

    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip,
        NumberHandling = JsonNumberHandling.Strict,
        WriteIndented = true,
    };

    /// <summary>Reads and validates a scheduler_config.json.</summary>
    /// <exception cref="InvalidDataException">The file is too large, not JSON, or a field has a wrong type or value
    /// (the message names the file and the field).</exception>
    public static SchedulerConfig Load(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists) throw new FileNotFoundException($"scheduler config not found: {path}", path);
        if (info.Length > MaxFileBytes)
            throw new InvalidDataException($"{path}: {info.Length} bytes is too large for a scheduler config (limit {MaxFileBytes})");
        return Parse(File.ReadAllText(path), path);
    }

    /// <summary>Parses and validates scheduler_config.json text; <paramref name="fileName"/> is used in error messages.</summary>
    /// <exception cref="InvalidDataException">Not JSON, or a field has a wrong type or value.</exception>
    public static SchedulerConfig Parse(string json, string fileName)
    {
        SchedulerConfig? c;
        try
        {
            c = JsonSerializer.Deserialize<SchedulerConfig>(json, Json);
        }
        catch (JsonException e)
        {
            string where = string.IsNullOrEmpty(e.Path) || e.Path == "$" ? "" : $" at field '{e.Path.TrimStart('$', '.')}'";
            throw new InvalidDataException($"{fileName}: invalid scheduler config{where}: {e.Message}", e);
        }
        if (c is null) throw new InvalidDataException($"{fileName}: expected a JSON object, got null");
        try
        {
            c.Validate();
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"{fileName}: {e.Message}", e);
        }
        return c;
    }

    /// <summary>Serialises to diffusers' snake_case JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>Checks every field against the values diffusers accepts.</summary>
    /// <exception cref="ArgumentException">A field is out of range or names an unsupported option; the message names the field.</exception>
    public void Validate()
    {
        if (NumTrainTimesteps < 1)
            throw new ArgumentException($"num_train_timesteps must be at least 1, got {NumTrainTimesteps}", nameof(NumTrainTimesteps));
        if (TrainedBetas is null && !SupportedBetaSchedules.Contains(BetaSchedule))
            throw new ArgumentException(
                $"beta_schedule '{BetaSchedule}' is not supported; expected one of: {string.Join(", ", SupportedBetaSchedules)}", nameof(BetaSchedule));
        if (TrainedBetas is not null && TrainedBetas.Length != NumTrainTimesteps)
            throw new ArgumentException(
                $"trained_betas: expected {NumTrainTimesteps} values (num_train_timesteps) but got {TrainedBetas.Length}", nameof(TrainedBetas));
        if (TrainedBetas is null && BetaSchedule != "squaredcos_cap_v2")
        {
            if (!(BetaStart > 0 && BetaStart < 1)) throw new ArgumentException($"beta_start must be in (0, 1), got {BetaStart}", nameof(BetaStart));
            if (!(BetaEnd > 0 && BetaEnd < 1)) throw new ArgumentException($"beta_end must be in (0, 1), got {BetaEnd}", nameof(BetaEnd));
        }
        Schedules.TimestepSpacing.Require(TimestepSpacing, nameof(TimestepSpacing));
        ModelOutput.Parse(PredictionType);
        if (!SupportedVarianceTypes.Contains(VarianceType))
            throw new ArgumentException(
                $"variance_type '{VarianceType}' is not supported; expected one of: {string.Join(", ", SupportedVarianceTypes)}", nameof(VarianceType));
        if (StepsOffset < 0) throw new ArgumentException($"steps_offset must be non-negative, got {StepsOffset}", nameof(StepsOffset));
        if (!(ClipSampleRange > 0)) throw new ArgumentException($"clip_sample_range must be positive, got {ClipSampleRange}", nameof(ClipSampleRange));
        if (!(DynamicThresholdingRatio > 0 && DynamicThresholdingRatio <= 1))
            throw new ArgumentException($"dynamic_thresholding_ratio must be in (0, 1], got {DynamicThresholdingRatio}", nameof(DynamicThresholdingRatio));
        if (!(SampleMaxValue > 0)) throw new ArgumentException($"sample_max_value must be positive, got {SampleMaxValue}", nameof(SampleMaxValue));
    }
}

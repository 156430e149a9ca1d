using PosteriorGpu.Models.Schedules;

namespace PosteriorGpu.Samplers.Unconditional;

/// <summary>How a sampler walks the schedule; the defaults are diffusers' DDIMScheduler defaults.</summary>
public sealed record SamplerOptions
{
    /// <summary>diffusers' timestep_spacing: "leading", "trailing" or "linspace".</summary>
    public string TimestepSpacing { get; init; } = "leading";

    /// <summary>diffusers' steps_offset.</summary>
    public int StepsOffset { get; init; }

    /// <summary>diffusers' set_alpha_to_one: the last step lands on alpha_bar = 1 (else alphas_cumprod[0]).</summary>
    public bool SetAlphaToOne { get; init; } = true;

    /// <summary>What the network predicts; converted to epsilon in one place (<see cref="ModelOutput"/>).</summary>
    public PredictionType Prediction { get; init; } = PredictionType.Epsilon;

    /// <summary>DDIM with clip_sample or thresholding: re-derive epsilon from the clipped x0 before the step (diffusers'
    /// DDIMScheduler.step argument use_clipped_model_output, off there by default); other samplers ignore it.</summary>
    public bool UseClippedModelOutput { get; init; }

    /// <summary>The options of a diffusers scheduler config (what a sampler uses when given none and its schedule has a config).</summary>
    public static SamplerOptions FromConfig(SchedulerConfig c) => new()
    {
        TimestepSpacing = c.TimestepSpacing,
        StepsOffset = c.StepsOffset,
        SetAlphaToOne = c.SetAlphaToOne,
        Prediction = c.Prediction,
    };
}

using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;
using PosteriorGpu.Models.Schedules;

namespace PosteriorGpu.Samplers.Unconditional;

/// <summary>DDIM (Song, Meng, Ermon 2021, eq. 12) as diffusers' DDIMScheduler.step, including its clip_sample and
/// thresholding of the predicted x0 when the schedule's config sets them (and use_clipped_model_output from the options):
/// eta = 0 is the deterministic sampler (first-order in the ODE sense), eta = 1 matches DDPM's variance. Holds no device memory between calls. Thread-safe: concurrent calls on one device take turns (GpuDevice.Exclusive).</summary>
public sealed class DdimSampler(IScoreModel model, NoiseSchedule schedule, double eta = 0, SamplerOptions? options = null)
    : DiffusionSampler(model, schedule, options)
{
    /// <inheritdoc/>
    public override string Name => "ddim";

    /// <summary>The stochasticity eta (0 deterministic).</summary>
    public double Eta { get; } = eta >= 0 ? eta : throw new ArgumentOutOfRangeException(nameof(eta), eta, "ddim: eta must be >= 0");

    /// <inheritdoc/>
    protected override bool SupportsClipSample => true;

    /// <inheritdoc/>
    protected override bool SupportsThresholding => true;

    /// <inheritdoc/>
    protected override void Step(Tensor x, Tensor eps, StepInfo info, RandomDraw draw)
    {
        if (ClipsX0) ClippedStep(x, eps, ClippedDiffusionStep.Ddim(info.AlphaT, info.AlphaPrev, Eta, Options.UseClippedModelOutput), draw);
        else DiffusionStep.Run(x, eps, DiffusionStep.Ddim(info.AlphaT, info.AlphaPrev, Eta), draw);
    }

    /// <inheritdoc/>
    protected override bool TryTableRow(StepInfo info, Span<float> row) =>
        DiffusionRow(DiffusionStep.Ddim(info.AlphaT, info.AlphaPrev, Eta), info, row);
}

/// <summary>DDPM ancestral sampling (Ho et al. 2020, Algorithm 2) on the chosen timesteps, as diffusers'
/// DDPMScheduler.step, including its clip_sample and thresholding of the predicted x0 when the schedule's config sets
/// them; variance "fixed_small" or "fixed_large" (the config's variance_type, or fixed_large when asked for).
/// Holds no device memory between calls. Thread-safe: concurrent calls on one device take turns (GpuDevice.Exclusive).</summary>
/// <param name="model">The noise-prediction network.</param>
/// <param name="schedule">The training schedule (its config's variance_type, clip_sample and thresholding are honoured).</param>
/// <param name="fixedLarge">Use "fixed_large" (beta_t) whatever the config says; otherwise the config's variance_type
/// ("fixed_small" without a config).</param>
/// <param name="options">How to walk the schedule (by default the schedule's config's).</param>
public sealed class DdpmSampler(IScoreModel model, NoiseSchedule schedule, bool fixedLarge = false, SamplerOptions? options = null)
    : DiffusionSampler(model, schedule, options)
{
    /// <inheritdoc/>
    public override string Name => "ddpm";

    /// <summary>Whether the reverse-step variance is beta_t ("fixed_large") rather than beta-tilde ("fixed_small").</summary>
    public bool FixedLarge { get; } = fixedLarge || LargeVariance(schedule);

    /// <inheritdoc/>
    protected override bool SupportsClipSample => true;

    /// <inheritdoc/>
    protected override bool SupportsThresholding => true;

    // diffusers' fixed_small_log is exp(0.5 log(variance)) = the fixed_small standard deviation; fixed_large_log takes the
    // square root of log(beta_t) (NaN there), and the learned types need a model that also outputs a variance.
    private static bool LargeVariance(NoiseSchedule schedule) => schedule?.Config?.VarianceType switch
    {
        null or "fixed_small" or "fixed_small_log" => false,
        "fixed_large" => true,
        var v => throw new NotSupportedException(
            $"{schedule.ConfigFile ?? "scheduler config"}: variance_type '{v}' is not supported by the sampler 'ddpm'; " +
            "expected fixed_small, fixed_small_log or fixed_large (learned variances need a model that outputs them)"),
    };

    /// <inheritdoc/>
    protected override void Step(Tensor x, Tensor eps, StepInfo info, RandomDraw draw)
    {
        if (ClipsX0)
        {
            var k = ClippedDiffusionStep.Ddpm(info.AlphaT, info.AlphaPrev, FixedLarge);
            ClippedStep(x, eps, NoNoise(info) ? k with { Sigma = 0 } : k, draw);
            return;
        }
        DiffusionStep.Run(x, eps, Coefficients(info), draw);
    }

    private DiffusionStep.Coefficients Coefficients(StepInfo info)
    {
        var c = DiffusionStep.Ddpm(info.AlphaT, info.AlphaPrev, FixedLarge);
        return NoNoise(info) ? c with { Sigma = 0 } : c;
    }

    // diffusers adds noise when t > 0. A step that lands before timestep 0 adds none either: its fixed_small
    // variance is 0 (diffusers' 1e-20 floor gives 1e-10), and a walk that ends there ends on the clean sample.
    private static bool NoNoise(StepInfo info) => info.Timestep == 0 || info.Previous < 0;

    /// <inheritdoc/>
    protected override bool TryTableRow(StepInfo info, Span<float> row) => DiffusionRow(Coefficients(info), info, row);
}

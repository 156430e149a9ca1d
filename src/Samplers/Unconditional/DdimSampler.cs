using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;
using PosteriorGpu.Models.Schedules;

namespace PosteriorGpu.Samplers.Unconditional;

/// <summary>DDIM (Song, Meng, Ermon 2021, eq. 12) as diffusers' DDIMScheduler without clipping:
/// eta = 0 is the deterministic sampler (first-order in the ODE sense), eta = 1 matches DDPM's variance. Holds no device memory between calls. Thread-safe: concurrent calls on one device take turns (GpuDevice.Exclusive).</summary>
public sealed class DdimSampler(IScoreModel model, NoiseSchedule schedule, double eta = 0, SamplerOptions? options = null)
    : DiffusionSampler(model, schedule, options)
{
    /// <inheritdoc/>
    public override string Name => "ddim";

    /// <summary>The stochasticity eta (0 deterministic).</summary>
    public double Eta { get; } = eta >= 0 ? eta : throw new ArgumentOutOfRangeException(nameof(eta), eta, "ddim: eta must be >= 0");

    /// <inheritdoc/>
    protected override void Step(Tensor x, Tensor eps, StepInfo info, RandomDraw draw) =>
        DiffusionStep.Run(x, eps, DiffusionStep.Ddim(info.AlphaT, info.AlphaPrev, Eta), draw);
}

/// <summary>DDPM ancestral sampling (Ho et al. 2020, Algorithm 2) on the chosen timesteps, as
/// diffusers' DDPMScheduler without clipping; variance "fixed_small" or "fixed_large". Holds no device memory between calls. Thread-safe: concurrent calls on one device take turns (GpuDevice.Exclusive).</summary>
public sealed class DdpmSampler(IScoreModel model, NoiseSchedule schedule, bool fixedLarge = false, SamplerOptions? options = null)
    : DiffusionSampler(model, schedule, options)
{
    /// <inheritdoc/>
    public override string Name => "ddpm";

    /// <inheritdoc/>
    protected override void Step(Tensor x, Tensor eps, StepInfo info, RandomDraw draw)
    {
        var c = DiffusionStep.Ddpm(info.AlphaT, info.AlphaPrev, fixedLarge);
        // The last step (to alpha_bar = 1) adds no noise, as diffusers' variance is 0 there.
        if (info.Index == info.Steps - 1) c = c with { Sigma = 0 };
        DiffusionStep.Run(x, eps, c, draw);
    }
}

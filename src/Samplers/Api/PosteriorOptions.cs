namespace PosteriorGpu;

/// <summary>
/// What <see cref="PosteriorSampler"/> runs and how long. The defaults suit 32 x 32 image models such as the
/// shipped MNIST U-Net: 8 DDIM steps for the starting prior draw, then 16 network evaluations in 4 levels,
/// 24 network evaluations per sample in all (the `posteriorgpu posterior` command's defaults). More steps give
/// samples closer to the posterior at proportional cost. A null knob takes the method's default, given on it.
/// </summary>
public sealed record PosteriorOptions
{
    /// <summary>The sampler (default <see cref="PosteriorMethod.AnnealedLangevin"/>).</summary>
    public PosteriorMethod Method { get; init; } = PosteriorMethod.AnnealedLangevin;

    /// <summary>Network evaluations of the main loop per sample (default 16): annealed Langevin: Langevin steps over all
    /// levels; DPnP: the denoising draws' network calls over all sweeps; DPS: reverse-diffusion steps after the
    /// first <see cref="PriorSteps"/>.</summary>
    public int Steps { get; init; } = 16;

    /// <summary>Annealing levels (annealed Langevin) or Gibbs sweeps (DPnP), default 4; <see cref="Steps"/> is split
    /// evenly over them. Not used by DPS.</summary>
    public int Levels { get; init; } = 4;

    /// <summary>DDIM steps of the prior draw that starts the chains (default 8); DPS runs <see cref="Steps"/> +
    /// PriorSteps reverse-diffusion steps from noise instead.</summary>
    public int PriorSteps { get; init; } = 8;

    /// <summary>Annealed Langevin: step h_k = StepScale / (1 + ||A||^2 / eta_k^2) (default 0.5); DPS: the step size
    /// zeta of the measurement gradient (default 1.0). Not used by DPnP.</summary>
    public double? StepScale { get; init; }

    /// <summary>Annealed Langevin: the diffusion timestep whose score is the prior score (default 50: an image model's
    /// score at timestep 0 is about 100 eps and too stiff for a few large steps).</summary>
    public int? PriorTimestep { get; init; }

    /// <summary>Annealed Langevin and DPnP: the first measurement level eta_1 (default 1.0, for data in [-1, 1]).</summary>
    public double? EtaMax { get; init; }
}

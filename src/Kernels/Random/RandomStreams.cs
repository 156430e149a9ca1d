namespace PosteriorGpu.Kernels.Random;

/// <summary>
/// Every random stream id of the project in one place. A draw is a pure function of (seed, stream, step, index)
/// (<see cref="RandomDraw"/>), so two consumers that share a stream id and a step would see the same numbers:
/// a new consumer takes a new id here, never an id written inline. The values are part of the reproducibility
/// contract (a seed gives the same samples in every release); change one only on purpose.
/// </summary>
public static class RandomStreams
{
    // Samplers.

    /// <summary>The seeded N(0, I) that starts a reverse diffusion from pure noise: unconditional sampling (the
    /// `sample` command), the prior draw that starts annealed Langevin and DPnP, and DPS.</summary>
    public const uint Start = 0x78545354;

    /// <summary>Per-step noise of the unconditional reverse-diffusion samplers (DDPM, stochastic steps) and DPS.</summary>
    public const uint DiffusionNoise = 0x5A4D504C;

    /// <summary>Per-step noise of annealed Langevin's Langevin steps.</summary>
    public const uint Langevin = 0x414C4E47;

    /// <summary>Annealed Langevin's nested measurement noise (y_k = y_{k+1} + sqrt(eta_k^2 - eta_{k+1}^2) z_k).</summary>
    public const uint NestedMeasurements = 0x414C4D53;

    /// <summary>DPnP's proximal consistency sampler (start, Langevin steps, Metropolis-Hastings uniforms).</summary>
    public const uint ProximalConsistency = 0x50435321;

    /// <summary>DPnP's denoising diffusion sampler.</summary>
    public const uint DenoisingDiffusion = 0x44445321;

    /// <summary>The re-noising of a warm start, x~ = x0 + sigma w, in the DPS + local annealed Langevin pipeline.</summary>
    public const uint WarmStartNoise = 0x574E5345;

    /// <summary>LGD-MC's Monte Carlo particles x0^ + r_t z_i (step = the reverse-diffusion step; index = the particle's
    /// element, chain-major, so particle i of chain c is global sample (firstSample + c) n + i).</summary>
    public const uint LossGuidanceParticles = 0x4C47444D;

    /// <summary>The fixed start vector of the power iteration for ||A||^2.</summary>
    public const uint PowerIteration = 0x504F5745;

    /// <summary>Simulated measurement noise (per input index).</summary>
    public const uint Measurement = 0x4D4E4F49;

    // Operators' own randomness (drawn once, when the operator is built, from the operator seed).

    /// <summary>The random inpainting mask.</summary>
    public const uint InpaintingMask = 0x0F0001;

    /// <summary>The compressed-sensing matrix.</summary>
    public const uint SensingMatrix = 0x0F0002;

    /// <summary>The sampled lines of Fourier subsampling.</summary>
    public const uint FourierLines = 0x0F0003;

    /// <summary>The random phase mask of phase retrieval.</summary>
    public const uint PhaseMask = 0x0F0004;

    /// <summary>The one-bit sensing matrix.</summary>
    public const uint OneBitMatrix = 0x0F0005;

    /// <summary>The one-bit dither.</summary>
    public const uint OneBitDither = 0x0F0006;

    /// <summary>The random vectors of the adjointness check.</summary>
    public const uint AdjointCheck = 0x41444A54;

    // Training and studies.

    /// <summary>Denoising score matching's noise (per training step).</summary>
    public const uint TrainingNoise = 0x7a1;

    /// <summary>The robustness study's draws.</summary>
    public const uint RobustnessStudy = 0x524F4253;
}

namespace PosteriorGpu;

/// <summary>The posterior samplers <see cref="PosteriorSampler"/> runs.</summary>
public enum PosteriorMethod
{
    /// <summary>Diffusion prior + annealed Langevin dynamics (Xun, Gupta, Price 2025): a prior draw, then Langevin on
    /// grad log p(x) + A^T (y_k - A x) / eta_k^2 over measurement levels eta_1 &gt; ... &gt; eta_K = sigma_y.
    /// Linear operators only.</summary>
    AnnealedLangevin,

    /// <summary>Diffusion plug-and-play (Xu and Chi 2024): a Gibbs chain alternating a proximal consistency sampler
    /// (the likelihood) and a denoising diffusion sampler (the prior) over annealed levels. Any operator.</summary>
    Dpnp,

    /// <summary>Diffusion posterior sampling (Chung et al. 2023): reverse diffusion with the gradient of
    /// ||y - A(x0_hat(x_t))|| through the network at each step; biased, the baseline. Any operator; the model
    /// must have gradients (<see cref="DiffusionModel.Load"/> with withGradients).</summary>
    Dps,
}

using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Samplers.Operators;

namespace PosteriorGpu.Samplers.Posterior;

/// <summary>
/// DPnP's proximal consistency sampler (Xu and Chi 2024): draws x^ from q(x^) ∝ p(y | x^) N(x^; x, eta^2 I)
/// using only the likelihood. It starts from x + eta w (exact where the likelihood is flat) and runs
/// Langevin steps with the Gaussian term integrated exactly (<see cref="ProximalLangevinStep"/>); the
/// likelihood part of a step moves by at most C2 = min(eta^2, StepScale / L), L the Lipschitz constant of
/// the log-likelihood gradient, so the steps stay stable for stiff likelihoods.
/// </summary>
internal sealed class ProximalConsistencySampler(int steps, double stepScale)
{
    /// <summary>Random stream of the sampler's noise.</summary>
    public const uint NoiseStream = 0x50435321;

    /// <summary>The step coefficients (C1, C2, C3) at level eta for likelihood curvature L.</summary>
    public static (float C1, float C2, float C3) Coefficients(double eta, double lipschitz, double stepScale)
    {
        double e2 = eta * eta;
        double c2 = lipschitz > 0 ? Math.Min(e2, stepScale / lipschitz) : e2;
        double c1 = 1 - c2 / e2;
        return ((float)c1, (float)c2, (float)(eta * Math.Sqrt(1 - c1 * c1)));
    }

    /// <summary>x^ ~ q given the anchor x; y is per chain; draws use steps drawOffset .. drawOffset + steps.</summary>
    public void Sample(Tensor xHat, Tensor x, Tensor y, IForwardOperator op, float sigmaY, float eta, double lipschitz,
        ulong seed, long firstSample, ulong drawOffset, TensorPool pool, CancellationToken cancellationToken)
    {
        xHat.CopyFrom(x);
        AddNoise.Run(xHat, eta, Draw(seed, drawOffset, firstSample, x.ItemLength));
        var (c1, c2, c3) = Coefficients(eta, lipschitz, stepScale);
        using var grad = pool.Rent(x.Shape);
        for (int s = 0; s < steps; s++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            op.LogLikelihoodGradient(xHat, y, sigmaY, grad);
            ProximalLangevinStep.Run(xHat, x, grad, c1, c2, c3, Draw(seed, drawOffset + 1 + (ulong)s, firstSample, x.ItemLength));
        }
    }

    /// <summary>Draws per call: the start and one per step.</summary>
    public int DrawsPerCall => steps + 1;

    private static RandomDraw Draw(ulong seed, ulong step, long firstSample, int itemLength) =>
        new RandomDraw(seed, NoiseStream, step).ForBatch(firstSample, itemLength);
}

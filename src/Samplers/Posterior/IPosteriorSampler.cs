using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Samplers.Posterior;

/// <summary>
/// The one contract of the posterior samplers: draw x.N samples of p(x | y) for y = A(x) + sigma_y z. Every method
/// (annealed Langevin, DPnP, DPS, ...) implements it with its own options record (<see cref="PosteriorMethodOptions"/>),
/// so a caller can switch methods without touching the call. Samples are a pure function of (seed, firstSample + chain
/// index): the same on every device, alone or in any batching.
/// </summary>
public interface IPosteriorSampler
{
    /// <summary>The method's name in the field's words, e.g. "annealed-langevin".</summary>
    string Name { get; }

    /// <summary>What runs, with its parameters, in one sentence (for logs and reports).</summary>
    string Description { get; }

    /// <summary>Network evaluations per chain, prior draw included: the cost of one sample and the unit of progress.</summary>
    int NetworkEvaluations { get; }

    /// <summary>
    /// Draws x.N samples of p(x | y) into <paramref name="x"/> ([N, C, H, W] on the model's device). y is one measurement
    /// [1, ...MeasurementShape] shared by all chains or one per chain [N, ...]. Chain n is sample
    /// <paramref name="firstSample"/> + n of the seed's sequence. Progress counts network evaluations per chain up to
    /// <see cref="NetworkEvaluations"/>.
    /// </summary>
    /// <returns>What the run measured about itself (e.g. a Metropolis acceptance rate).</returns>
    /// <exception cref="ArgumentException">A shape does not fit, the method cannot use this operator, or y holds NaN.</exception>
    /// <exception cref="SamplerDivergedException">A chain stopped being finite (names the step).</exception>
    /// <exception cref="OperationCanceledException">The token was cancelled (x holds a partial result).</exception>
    PosteriorRun Sample(Tensor x, Tensor y, IForwardOperator op, float sigmaY, ulong seed, long firstSample = 0,
        IProgress<SamplerProgress>? progress = null, CancellationToken cancellationToken = default);
}

/// <summary>What a posterior run reports about itself.</summary>
/// <param name="NetworkEvaluations">Network evaluations per chain that the run made.</param>
/// <param name="AcceptanceRate">The Metropolis-Hastings acceptance rate over all chains and proposals, for methods
/// with a Metropolis-adjusted step (null otherwise).</param>
public sealed record PosteriorRun(int NetworkEvaluations, double? AcceptanceRate = null)
{
    /// <summary>For annealed methods, the schedule the run walked: levels, step sizes, Langevin time per level and the
    /// admissibility warning (null for other methods).</summary>
    public AnnealingReport? Annealing { get; init; }
}

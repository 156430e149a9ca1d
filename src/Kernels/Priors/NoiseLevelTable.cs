namespace PosteriorGpu.Kernels.Priors;

/// <summary>
/// The layout of the per-item noise levels the prior kernels read (<see cref="SpectralScale"/>,
/// <see cref="MixtureComponentTerms"/>): [N, <see cref="Stride"/>] floats, a, 1 - a, sqrt(a) and sqrt(1 - a) per item,
/// each computed in double and rounded once by the caller, so that 1 - a keeps its precision when a is close to 1.
/// </summary>
public static class NoiseLevelTable
{
    /// <summary>Floats per item.</summary>
    public const int Stride = 4;
}

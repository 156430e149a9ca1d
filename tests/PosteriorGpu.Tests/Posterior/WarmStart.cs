using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Samplers.Posterior;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Tests.Posterior;

/// <summary>Tests' shorthand for "copy a start into x, then refine": the refine half of a refining sampler from a given state.</summary>
internal static class WarmStart
{
    public static PosteriorRun RefineFrom(this RefiningPosteriorSampler sampler, Tensor x, Tensor y, IForwardOperator op, float sigmaY, ulong seed,
        long firstSample = 0, Tensor? warmStart = null, IProgress<SamplerProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        if (warmStart is not null) x.CopyFrom(warmStart);
        return sampler.Refine(x, y, op, sigmaY, seed, firstSample, progress, cancellationToken);
    }
}

using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;
using PosteriorGpu.Models.Schedules;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Samplers.Posterior;

/// <summary>
/// "Draw from the prior": the first half of "draw from the prior, then refine", shared by every method that refines a
/// starting state (<see cref="RefiningPosteriorSampler"/>). Seeded N(0, I) from <see cref="RandomStreams.Start"/>, run
/// through an unconditional sampler; the same draw as the `sample` command's for the same seed, sampler and steps.
/// </summary>
/// <param name="Sampler">The unconditional sampler (<see cref="SamplerFactory.Names"/>).</param>
/// <param name="Steps">Its steps (network evaluations).</param>
public sealed record PriorDraw(string Sampler, int Steps)
{
    /// <summary>x = one prior sample per chain (chain n is sample firstSample + n of the seed's sequence).</summary>
    public void Draw(Tensor x, IScoreModel model, NoiseSchedule schedule, ulong seed, long firstSample,
        IProgress<SamplerProgress>? progress, CancellationToken cancellationToken)
    {
        x.Clear();
        AddNoise.Run(x, 1f, new RandomDraw(seed, RandomStreams.Start, 0).ForBatch(firstSample, x.ItemLength));
        SamplerFactory.Create(Sampler, model, schedule).Sample(x, Steps, seed, firstSample, progress, cancellationToken);
    }

    /// <summary>The checks of <see cref="PosteriorMethodOptions.Validate"/> for a prior draw held in <paramref name="record"/>'s
    /// PriorSampler / PriorSteps options.</summary>
    internal void Validate(string record, NoiseSchedule schedule)
    {
        if (!SamplerFactory.Names.Contains(Sampler.ToLowerInvariant()) && Sampler.ToLowerInvariant() != "ddpm-large")
            throw new InvalidOptionException(record, "PriorSampler", Sampler, $"must be one of {string.Join(", ", SamplerFactory.Names)}");
        if (Steps < 1 || Steps > schedule.NumTrainTimesteps)
            throw new InvalidOptionException(record, "PriorSteps", Steps, $"must lie in 1..{schedule.NumTrainTimesteps} (the schedule's timesteps)");
    }

    /// <inheritdoc/>
    public override string ToString() => $"a prior draw by {Sampler} in {Steps} steps";
}

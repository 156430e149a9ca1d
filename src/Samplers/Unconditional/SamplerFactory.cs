using PosteriorGpu.Models;
using PosteriorGpu.Models.Schedules;

namespace PosteriorGpu.Samplers.Unconditional;

/// <summary>Creates unconditional samplers by the names the command line uses.</summary>
public static class SamplerFactory
{
    /// <summary>The sampler names, in the order the docs list them.</summary>
    public static readonly IReadOnlyList<string> Names = ["ddpm", "ddim", "pf-ode", "li-accelerated", "dpmsolver++2m"];

    /// <summary>A sampler by name; <paramref name="eta"/> applies to DDIM only.</summary>
    /// <exception cref="ArgumentException">Unknown name (the message lists the known ones).</exception>
    public static DiffusionSampler Create(string name, IScoreModel model, NoiseSchedule schedule, SamplerOptions? options = null, double eta = 0) =>
        name.ToLowerInvariant() switch
        {
            "ddpm" => new DdpmSampler(model, schedule, false, options),
            "ddpm-large" => new DdpmSampler(model, schedule, true, options),
            "ddim" => new DdimSampler(model, schedule, eta, options),
            "pf-ode" => new ProbabilityFlowSampler(model, schedule, options),
            "li-accelerated" => new LiAcceleratedSampler(model, schedule, options),
            "dpmsolver++2m" => new DpmSolverPlusPlus2MSampler(model, schedule, options),
            _ => throw new ArgumentException($"unknown sampler '{name}'; expected one of {string.Join(", ", Names)} (or ddpm-large)"),
        };
}

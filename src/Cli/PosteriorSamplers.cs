using PosteriorGpu.Samplers.Operators;

namespace PosteriorGpu.Cli;

/// <summary>The --sampler switch over the library's <see cref="PosteriorSampler"/>: names, and errors in the
/// command line's own words (flags instead of option properties).</summary>
public static class PosteriorSamplers
{
    /// <summary>The names --sampler takes, in <see cref="PosteriorMethod"/> order.</summary>
    public static readonly string[] Names = ["annealed-langevin", "dpnp", "dps"];

    private static readonly Dictionary<string, string> Flags = new()
    {
        [nameof(PosteriorOptions.Steps)] = "--steps",
        [nameof(PosteriorOptions.Levels)] = "--levels",
        [nameof(PosteriorOptions.PriorSteps)] = "--prior-steps",
        [nameof(PosteriorOptions.StepScale)] = "--step-scale",
        [nameof(PosteriorOptions.PriorTimestep)] = "--prior-timestep",
        [nameof(PosteriorOptions.EtaMax)] = "--eta-max",
    };

    /// <summary>The method of a --sampler name.</summary>
    /// <exception cref="UsageException">Unknown name.</exception>
    public static PosteriorMethod Method(string name) => Array.IndexOf(Names, name) switch
    {
        < 0 => throw new UsageException($"unknown sampler '{name}'; --sampler takes {string.Join(", ", Names)}"),
        int i => (PosteriorMethod)i,
    };

    /// <summary>Builds the sampler; option errors come back as usage errors that name the flag.</summary>
    /// <exception cref="UsageException">An option is out of range, or the method needs a linear operator.</exception>
    public static PosteriorSampler Create(DiffusionModel model, IForwardOperator op, float sigmaY, PosteriorOptions options)
    {
        if (options.Method == PosteriorMethod.AnnealedLangevin && !op.IsLinear)
            throw new UsageException($"sampler {Names[0]} needs a linear forward operator but {op.Name} is nonlinear; use --sampler dps or dpnp");
        try
        {
            return new PosteriorSampler(model, op, sigmaY, options);
        }
        catch (InvalidOptionException e)
        {
            string flag = Flags.GetValueOrDefault(e.Option, e.Option);
            throw new UsageException($"{Names[(int)options.Method]}: " + e.Message.Replace($"PosteriorOptions.{e.Option} =", flag));
        }
    }
}

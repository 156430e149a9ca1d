using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Samplers.Posterior;

namespace PosteriorGpu.Cli;

/// <summary>The command line's budget flags, shared by every --sampler (their defaults give 24 network evaluations a sample).</summary>
/// <param name="Steps">--steps: network evaluations of the main loop (annealed Langevin: Langevin steps over all levels;
/// DPnP: the denoising draws' network calls over all sweeps; DPS: reverse-diffusion steps after the first --prior-steps).</param>
/// <param name="Levels">--levels: annealing levels (annealed Langevin, dps-langevin) or Gibbs sweeps (DPnP); --steps is split
/// evenly; null when not given (<see cref="PosteriorBudget.DefaultLevels"/>). DPS has no levels: giving it is an error.</param>
/// <param name="PriorSteps">--prior-steps: DDIM steps of the prior draw (annealed Langevin, DPnP); DPS runs --steps +
/// --prior-steps reverse-diffusion steps from noise instead.</param>
/// <param name="StepScale">--step-scale: annealed Langevin's step scale, DPS's zeta (null: the preset's, or the task's zeta).</param>
/// <param name="PriorTimestep">--prior-timestep: annealed Langevin's prior-score timestep (null: the preset's).</param>
/// <param name="EtaMax">--eta-max: annealed Langevin's and DPnP's first level (null: the preset's).</param>
/// <param name="StepSize">--step-size: a constant Langevin step size h at every level for annealed Langevin and
/// dps-langevin (null: the step-scale rule).</param>
internal sealed record PosteriorBudget(int Steps = 16, int? Levels = null, int PriorSteps = 8, double? StepScale = null,
    int? PriorTimestep = null, double? EtaMax = null, double? StepSize = null)
{
    /// <summary>--levels when not given.</summary>
    public const int DefaultLevels = 4;

    /// <summary>--levels, or its default.</summary>
    public int LevelCount => Levels ?? DefaultLevels;
}

/// <summary>The --sampler switch: maps the command line's budget flags onto each method's own options (its 32 x 32 image
/// preset), and the methods' option errors back onto the flags, in the command line's own words.</summary>
internal static class PosteriorSamplers
{
    /// <summary>The names --sampler takes.</summary>
    public static readonly string[] Names = ["annealed-langevin", "dpnp", "dps", "dps-langevin", "lgd-mc"];

    /// <summary>Checks a --sampler name.</summary>
    /// <exception cref="UsageException">Unknown name.</exception>
    public static string Require(string name) => Names.Contains(name) ? name
        : throw new UsageException($"unknown sampler '{name}'; --sampler takes {string.Join(", ", Names)}");

    /// <summary>True for the samplers that differentiate through the network (the model must be loaded with gradients).</summary>
    public static bool NeedsGradients(string name) => name is "dps" or "dps-langevin" or "lgd-mc";

    /// <summary>The method's options for the budget: its Image32 preset with the flags applied.</summary>
    /// <exception cref="UsageException">A flag is out of range for the method (names the flag).</exception>
    public static PosteriorMethodOptions Options(string name, PosteriorBudget b)
    {
        Require(name);
        void Check(bool ok, string flag, object value, string rule)
        {
            if (!ok) throw new UsageException($"{name}: {flag} = {value}: {rule}");
        }
        Check(b.Steps >= 1, "--steps", b.Steps, "must be at least 1");
        Check(b.PriorSteps >= 1, "--prior-steps", b.PriorSteps, "must be at least 1");
        Check(b.StepScale is null || (b.StepScale > 0 && double.IsFinite(b.StepScale.Value)), "--step-scale", b.StepScale!, "must be positive and finite");
        // A flag the method does not read is a mistake worth naming, not a silent no-op.
        if (b.PriorTimestep is not null && name is not ("annealed-langevin" or "dps-langevin"))
            throw new UsageException($"--prior-timestep applies to --sampler annealed-langevin and dps-langevin only, not {name}");
        if (b.EtaMax is not null && name is "dps" or "lgd-mc")
            throw new UsageException($"--eta-max applies to --sampler annealed-langevin, dpnp and dps-langevin only, not {name}");
        if (b.Levels is not null && name is "dps" or "lgd-mc")
            throw new UsageException($"--levels applies to --sampler annealed-langevin, dpnp and dps-langevin only, not {name} " +
                                     $"({name} runs --steps + --prior-steps reverse-diffusion steps and has no levels)");
        if (b.StepSize is not null && name is not ("annealed-langevin" or "dps-langevin"))
            throw new UsageException($"--step-size applies to --sampler annealed-langevin and dps-langevin only, not {name}");
        int levels = b.LevelCount;
        switch (name)
        {
            case "annealed-langevin":
                Check(levels >= 1, "--levels", levels, "must be at least 1");
                Check(b.Steps >= levels, "--steps", b.Steps, $"must be at least --levels ({levels}): each level takes --steps / --levels Langevin steps");
                var al = AnnealedLangevinOptions.Image32;
                return al with
                {
                    Levels = levels, StepsPerLevel = b.Steps / levels, PriorSteps = b.PriorSteps,
                    StepScale = b.StepScale ?? al.StepScale, PriorTimestep = b.PriorTimestep ?? al.PriorTimestep, EtaMax = b.EtaMax ?? al.EtaMax,
                    StepSize = b.StepSize,
                };
            case "dpnp":
                Check(levels >= 1, "--levels", levels, "must be at least 1");
                Check(b.Steps / levels >= 2, "--steps", b.Steps,
                    $"must be at least 2 x --levels = {2 * levels}: each sweep's denoising draw takes --steps / --levels network calls, at least 2");
                var dp = DpnpOptions.Image32;
                return dp with
                {
                    Iterations = levels, PriorSteps = b.PriorSteps, EtaMax = b.EtaMax ?? dp.EtaMax,
                    Denoiser = dp.Denoiser with { Steps = b.Steps / levels - 1 },
                };
            case "dps-langevin":
                // DPS with the --steps + --prior-steps budget and the task's zeta, then the local annealed Langevin with
                // annealed Langevin's preset (a DDIM --prior-steps reverse diffusion from t0, --levels x --steps / --levels).
                Check(levels >= 1, "--levels", levels, "must be at least 1");
                Check(b.Steps >= levels, "--steps", b.Steps, $"must be at least --levels ({levels}): each level takes --steps / --levels Langevin steps");
                var pl = DpsLangevinOptions.Image32;
                return pl with
                {
                    Dps = pl.Dps with { Steps = b.Steps + b.PriorSteps, StepSize = b.StepScale ?? pl.Dps.StepSize },
                    Langevin = pl.Langevin with
                    {
                        Levels = levels, StepsPerLevel = b.Steps / levels, PriorSteps = b.PriorSteps,
                        PriorTimestep = b.PriorTimestep ?? pl.Langevin.PriorTimestep, EtaMax = b.EtaMax ?? pl.Langevin.EtaMax,
                        StepSize = b.StepSize,
                    },
                };
            case "lgd-mc":
                // DPS's budget and zeta; the particles (10) and r_t come from the preset.
                var lg = LgdMcOptions.Image32;
                return lg with { Steps = b.Steps + b.PriorSteps, StepSize = b.StepScale ?? lg.StepSize };
            default:
                // DPS: --steps + --prior-steps reverse-diffusion steps from noise, each a forward and a backward pass.
                var ds = DpsOptions.Image32;
                return ds with { Steps = b.Steps + b.PriorSteps, StepSize = b.StepScale ?? ds.StepSize };
        }
    }

    /// <summary>Builds the sampler; option errors come back as usage errors that name the flag.</summary>
    /// <exception cref="UsageException">A flag is out of range, or the method needs a linear operator.</exception>
    public static PosteriorSampler Create(DiffusionModel model, IForwardOperator op, float sigmaY, string name, PosteriorBudget budget)
    {
        if (name is "annealed-langevin" or "dps-langevin" && !op.IsLinear)
            throw new UsageException($"sampler {name} needs a linear forward operator but {op.Name} is nonlinear; use --sampler dps or dpnp");
        var options = Options(name, budget);
        try
        {
            return new PosteriorSampler(model, op, sigmaY, options);
        }
        catch (InvalidOptionException e)
        {
            // The flag that set the option, and its value as given on the command line.
            (string flag, object? value) = e.Option switch
            {
                "Levels" or "Iterations" => ("--levels", budget.LevelCount),
                "StepsPerLevel" or "Denoiser.Steps" => ("--steps", budget.Steps),
                "Steps" => ("--steps + --prior-steps (DPS's reverse-diffusion steps)", budget.Steps + budget.PriorSteps),
                "PriorSteps" => ("--prior-steps", budget.PriorSteps),
                "StepScale" or "StepSize" => ("--step-scale", e.Value),
                "PriorTimestep" => ("--prior-timestep", e.Value),
                "EtaMax" => ("--eta-max", e.Value),
                _ => ($"{e.Record}.{e.Option}", e.Value),
            };
            throw new UsageException($"{name}: {flag} = {value}: {e.Rule}");
        }
    }
}

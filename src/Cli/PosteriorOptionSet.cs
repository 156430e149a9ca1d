using System.CommandLine;

namespace PosteriorGpu.Cli;

/// <summary>The options that describe one posterior run (the task and its operator, the sampler and its budget, the
/// model, samples, noise, seed, batching), declared once for every command that runs posterior sampling (`posterior`,
/// `batch`), with their defaults and descriptions for --help.</summary>
internal sealed class PosteriorOptionSet
{
    /// <summary>Declares the options with the defaults of <paramref name="d"/>.</summary>
    public PosteriorOptionSet(PosteriorSettings d)
    {
        var budget = new PosteriorBudget();
        Task = CliOptions.Choice("--task", d.Task, "the inverse problem: inpaint (missing pixels), superres (block average), deblur " +
            "(Gaussian blur), cs (compressed sensing), mri (Fourier subsampling), phase (phase retrieval, nonlinear), onebit (signs, nonlinear)", PosteriorTask.Names);
        Sampler = CliOptions.Choice("--sampler", d.Sampler, "the posterior sampler: dps (diffusion posterior sampling; the one that " +
            "works at this budget), annealed-langevin, dpnp, dps-langevin (DPS, then a local annealed Langevin), lgd-mc (loss-guided " +
            "diffusion with Monte Carlo). See the README's table", PosteriorSamplers.Names);
        Model = CliOptions.Text("--model", $"model folder: a diffusers UNet2DModel (config.json, diffusion_pytorch_model.safetensors). Default: the shipped {DefaultPaths.Model}", "dir");
        Invert = CliOptions.Flag("--invert", "invert the input images (for dark digits on a light background; MNIST is white on black)");
        Samples = CliOptions.Int("--samples", d.Samples, "posterior samples per input (the grid shows up to 4; mean and std need 2)", min: 1);
        SigmaY = CliOptions.Double("--sigma-y", d.SigmaY, "measurement noise standard deviation (images in [-1, 1])", positive: true);
        Steps = CliOptions.Int("--steps", budget.Steps, "network evaluations of the main loop. annealed-langevin: Langevin steps over all levels; " +
            "dpnp: denoising calls over all sweeps (at least 2 x --levels); dps and lgd-mc: reverse-diffusion steps after --prior-steps, " +
            "so DPS runs --steps + --prior-steps steps in all (default 16 + 8 = 24; lgd-mc likewise)", min: 1);
        Levels = CliOptions.OptionalInt("--levels", $"annealing levels (annealed-langevin, dps-langevin) or Gibbs sweeps (dpnp); --steps is split " +
            $"evenly. Default {PosteriorBudget.DefaultLevels}. dps and lgd-mc have no levels: giving it is an error", min: 1);
        PriorSteps = CliOptions.Int("--prior-steps", budget.PriorSteps, "DDIM steps of the prior draw (annealed-langevin, dpnp, dps-langevin); " +
            "dps and lgd-mc add them to --steps instead", min: 1);
        Seed = CliOptions.Seed("--seed", "seed of the measurement noise and the samplers' noise");
        Batch = CliOptions.OptionalInt("--batch", "inputs per batch (default: 16 chains on the CPU, 256 on a GPU, divided by --samples)", min: 1);
        Mask = CliOptions.Choice("--mask", TaskSettings.DefaultMask, "inpaint: random (each pixel seen with probability --ratio, default 0.25), " +
            "box (a centred half-size box hidden), half (the bottom half hidden)", ["random", "box", "half"]);
        Factor = CliOptions.Int("--factor", 4, "superres: the downsampling factor (divides the image size)", min: 1);
        BlurSigma = CliOptions.Double("--blur-sigma", 2.0, "deblur: the Gaussian blur's standard deviation in pixels", positive: true);
        Ratio = CliOptions.OptionalDouble("--ratio", "inpaint random: fraction of pixels observed (0.25); cs: measurements / pixels; mri: fraction of frequencies", positive: true);
        OperatorSeed = CliOptions.Seed("--operator-seed", "seed of the random mask or matrix of the operator");
        StepScale = CliOptions.OptionalDouble("--step-scale", "dps, dps-langevin and lgd-mc: zeta (default 3; cs and onebit 1); annealed-langevin: the step scale (0.5)", positive: true);
        PriorTimestep = CliOptions.OptionalInt("--prior-timestep", "annealed-langevin and dps-langevin only: the timestep of the prior score", min: 0);
        EtaMax = CliOptions.OptionalDouble("--eta-max", "annealed-langevin, dpnp and dps-langevin only: the first level's noise", positive: true);
        StepSize = CliOptions.OptionalDouble("--step-size", "annealed-langevin and dps-langevin only: a constant Langevin step size h at every level " +
            "(default: --step-scale / (1 + ||A||^2 / eta^2 + anchor))", positive: true);
    }

    /// <summary>--task.</summary>
    public Option<string> Task { get; }

    /// <summary>--sampler.</summary>
    public Option<string> Sampler { get; }

    /// <summary>--model.</summary>
    public Option<string?> Model { get; }

    /// <summary>--invert.</summary>
    public Option<bool> Invert { get; }

    /// <summary>--samples.</summary>
    public Option<int> Samples { get; }

    /// <summary>--sigma-y.</summary>
    public Option<double> SigmaY { get; }

    /// <summary>--steps.</summary>
    public Option<int> Steps { get; }

    /// <summary>--levels.</summary>
    public Option<int?> Levels { get; }

    /// <summary>--prior-steps.</summary>
    public Option<int> PriorSteps { get; }

    /// <summary>--seed.</summary>
    public Option<ulong> Seed { get; }

    /// <summary>--batch.</summary>
    public Option<int?> Batch { get; }

    /// <summary>--mask.</summary>
    public Option<string> Mask { get; }

    /// <summary>--factor.</summary>
    public Option<int> Factor { get; }

    /// <summary>--blur-sigma.</summary>
    public Option<double> BlurSigma { get; }

    /// <summary>--ratio.</summary>
    public Option<double?> Ratio { get; }

    /// <summary>--operator-seed.</summary>
    public Option<ulong> OperatorSeed { get; }

    /// <summary>--step-scale.</summary>
    public Option<double?> StepScale { get; }

    /// <summary>--prior-timestep.</summary>
    public Option<int?> PriorTimestep { get; }

    /// <summary>--eta-max.</summary>
    public Option<double?> EtaMax { get; }

    /// <summary>--step-size.</summary>
    public Option<double?> StepSize { get; }

    /// <summary>Every option, in the order --help lists them.</summary>
    public IEnumerable<Option> All =>
    [
        Task, Sampler, Model, Invert, Samples, SigmaY, Steps, Levels, PriorSteps, Seed, Batch,
        Mask, Factor, BlurSigma, Ratio, OperatorSeed, StepScale, PriorTimestep, EtaMax, StepSize,
    ];

    /// <summary>Adds every option to <paramref name="command"/>.</summary>
    public void AddTo(Command command)
    {
        foreach (var option in All) command.Options.Add(option);
    }

    /// <summary>The budget flags of a parse.</summary>
    public PosteriorBudget Budget(ParseResult p) => new(p.GetValue(Steps), p.GetValue(Levels), p.GetValue(PriorSteps), p.GetValue(StepScale),
        p.GetValue(PriorTimestep), p.GetValue(EtaMax), p.GetValue(StepSize));

    /// <summary>The operator's settings of a parse.</summary>
    public TaskSettings Operator(ParseResult p) => new()
    {
        Mask = p.GetValue(Mask)!, Factor = p.GetValue(Factor), BlurSigma = p.GetValue(BlurSigma), Ratio = p.GetValue(Ratio),
        OperatorSeed = p.GetValue(OperatorSeed),
    };
}

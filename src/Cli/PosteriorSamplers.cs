using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Samplers.Posterior;
using PosteriorGpu.Samplers.Schedules;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Cli;

/// <summary>The step budget of a posterior run: <see cref="Steps"/> network evaluations of the sampler's
/// main loop per chain, <see cref="Levels"/> annealing levels (annealed Langevin), and
/// <see cref="PriorSteps"/> steps of the unconditional sampler that draws the starting prior samples.
/// The annealed-Langevin knobs (null: <see cref="AnnealedLangevinOptions"/>' defaults): the step scale, the
/// diffusion timestep whose score is the prior score, and the first measurement level eta_1.</summary>
public sealed record PosteriorBudget(int Steps, int Levels, int PriorSteps)
{
    /// <summary>Langevin step scale (--step-scale).</summary>
    public double? StepScale { get; init; }

    /// <summary>Timestep of the prior score (--prior-timestep).</summary>
    public int? PriorTimestep { get; init; }

    /// <summary>First measurement noise level eta_1 (--eta-max).</summary>
    public double? EtaMax { get; init; }
}

/// <summary>A posterior sampler as the `posterior` command drives it: x [N, C, H, W] receives N chains,
/// y holds one measurement per chain, progress is reported in network evaluations per chain.</summary>
public interface IPosteriorSampler
{
    /// <summary>The name, as --sampler takes it.</summary>
    string Name { get; }

    /// <summary>What the sampler runs (levels, steps), for the log and metrics.json.</summary>
    string Description { get; }

    /// <summary>Network evaluations per chain (the progress bar's unit).</summary>
    int Evaluations { get; }

    /// <summary>True when the sampler works with linear forward operators only.</summary>
    bool LinearOnly { get; }

    /// <summary>Draws x.N samples of p(x | y); chain n is sample <paramref name="firstSample"/> + n of the run.</summary>
    void Sample(Tensor x, Tensor y, IForwardOperator op, float sigmaY, ulong seed, long firstSample,
        IProgress<int>? evaluationsDone, CancellationToken cancellationToken);
}

/// <summary>The --sampler switch: one line per sampler. DPnP and DPS plug in here when they exist.</summary>
public static class PosteriorSamplers
{
    /// <summary>The names --sampler takes.</summary>
    public static readonly IReadOnlyList<string> Names = ["annealed-langevin", "dpnp", "dps"];

    /// <summary>Creates the sampler <paramref name="name"/>.</summary>
    /// <exception cref="UsageException">Unknown name, or a budget the sampler cannot use.</exception>
    /// <exception cref="NotSupportedException">The sampler is not implemented yet.</exception>
    public static IPosteriorSampler Create(string name, IScoreModel model, NoiseSchedule schedule, PosteriorBudget budget) => name switch
    {
        "annealed-langevin" => new AnnealedLangevin(model, schedule, budget),
        "dpnp" => new Dpnp(model, schedule, budget),
        "dps" => new Dps(model, schedule, budget),
        _ => throw new UsageException($"unknown sampler '{name}'; --sampler takes {string.Join(", ", Names)}"),
    };

    /// <summary>Annealed Langevin (Xun, Gupta, Price): a prior draw with DDIM, then Levels levels of
    /// Steps / Levels Langevin steps each. Linear operators only.</summary>
    private sealed class AnnealedLangevin : IPosteriorSampler
    {
        private const string PriorSampler = "ddim";

        // An image model's score at timestep 0 is -eps / sqrt(1 - abar_0), about 100 eps, and as stiff as
        // 1 / (1 - abar_0): Langevin steps sized for it barely move. The score at t = 50 (noise level
        // about 0.07 of the [-1, 1] range) is smooth enough for a few large steps; on the MNIST model these
        // two gave the best posterior means of the settings tried (docs: README's main-command numbers).
        private const int ImagePriorTimestep = 50;
        private const double ImageStepScale = 0.5;
        /// <summary>Random stream of the starting noise of the prior draw.</summary>
        private const uint StartStream = 0x50525354;
        private readonly IScoreModel model;
        private readonly NoiseSchedule schedule;
        private readonly AnnealedLangevinSampler sampler;
        private readonly int priorSteps;

        public AnnealedLangevin(IScoreModel model, NoiseSchedule schedule, PosteriorBudget budget)
        {
            CheckBudget(budget);
            this.model = model;
            this.schedule = schedule;
            priorSteps = budget.PriorSteps;
            if (budget.StepScale is <= 0) throw new UsageException($"--step-scale must be positive, got {budget.StepScale}");
            if (budget.PriorTimestep is { } tp && (tp < 0 || tp >= schedule.NumTrainTimesteps))
                throw new UsageException($"--prior-timestep must lie in 0..{schedule.NumTrainTimesteps - 1}, got {tp}");
            if (budget.EtaMax is <= 0) throw new UsageException($"--eta-max must be positive, got {budget.EtaMax}");
            var defaults = new AnnealedLangevinOptions();
            var options = defaults with
            {
                Levels = budget.Levels,
                StepsPerLevel = budget.Steps / budget.Levels,
                PriorSampler = PriorSampler,
                PriorSteps = budget.PriorSteps,
                StepScale = budget.StepScale ?? ImageStepScale,
                PriorTimestep = budget.PriorTimestep ?? ImagePriorTimestep,
                EtaMax = budget.EtaMax ?? defaults.EtaMax,
            };
            sampler = new AnnealedLangevinSampler(model, schedule, options);
        }

        public string Name => "annealed-langevin";

        public string Description =>
            $"annealed Langevin: prior draw by {PriorSampler} in {priorSteps} steps, then {sampler.Options.Levels} levels x " +
            $"{sampler.Options.StepsPerLevel} Langevin steps (eta from {sampler.Options.EtaMax} down to sigma_y, step scale {sampler.Options.StepScale}, " +
            $"prior score at timestep {sampler.Options.PriorTimestep})";

        public int Evaluations => priorSteps + sampler.Options.Levels * sampler.Options.StepsPerLevel;

        public bool LinearOnly => true;

        public void Sample(Tensor x, Tensor y, IForwardOperator op, float sigmaY, ulong seed, long firstSample,
            IProgress<int>? evaluationsDone, CancellationToken cancellationToken)
        {
            if (op is not ILinearOperator linear)
                throw new NotSupportedException(
                    $"sampler annealed-langevin needs a linear forward operator but {op.Name} is nonlinear; use --sampler dps or dpnp");
            using var start = Tensor.Zeros(x.Device, x.Shape);
            DrawPrior(start, model, schedule, priorSteps, seed, firstSample, evaluationsDone, cancellationToken);
            int perLevel = sampler.Options.StepsPerLevel;
            sampler.Sample(x, y, linear, sigmaY, seed, firstSample, warmStart: start,
                progress: evaluationsDone is null ? null : new Relay(p => evaluationsDone.Report(priorSteps + p.Step * perLevel)),
                cancellationToken: cancellationToken);
        }
    }

    /// <summary>Synchronous progress (System.Progress would post to the thread pool, out of order).</summary>
    /// <summary>Checks the budget shared by the samplers: --levels, --steps and --prior-steps.</summary>
    private static void CheckBudget(PosteriorBudget budget)
    {
        if (budget.Levels < 1) throw new UsageException("--levels must be at least 1");
        if (budget.Steps < budget.Levels)
            throw new UsageException($"--steps ({budget.Steps}) must be at least --levels ({budget.Levels})");
        if (budget.PriorSteps < 1) throw new UsageException("--prior-steps must be at least 1");
    }

    /// <summary>The starting prior draw (DDIM from seeded noise), run here so that the progress bar moves during it.</summary>
    private static void DrawPrior(Tensor start, IScoreModel model, NoiseSchedule schedule, int steps, ulong seed, long firstSample,
        IProgress<int>? evaluationsDone, CancellationToken cancellationToken)
    {
        start.Clear();
        AddNoise.Run(start, 1f, new RandomDraw(seed, 0x50525354, 0).ForBatch(firstSample, start.ItemLength));
        SamplerFactory.Create("ddim", model, schedule).Sample(start, steps, seed, firstSample,
            evaluationsDone is null ? null : new Relay(p => evaluationsDone.Report(p.Step)), cancellationToken);
    }

    /// <summary>DPnP (Xu and Chi): --levels Gibbs sweeps, each a proximal consistency draw and a denoising
    /// diffusion draw of steps / levels network calls, from a DDIM prior draw of --prior-steps.</summary>
    private sealed class Dpnp : IPosteriorSampler
    {
        private readonly IScoreModel model;
        private readonly NoiseSchedule schedule;
        private readonly DpnpSampler sampler;
        private readonly int priorSteps;

        public Dpnp(IScoreModel model, NoiseSchedule schedule, PosteriorBudget budget)
        {
            CheckBudget(budget);
            if (budget.Steps / budget.Levels < 2)
                throw new UsageException($"dpnp: --steps / --levels = {budget.Steps / budget.Levels} network calls per sweep; each denoising draw needs at least 2");
            if (budget.EtaMax is <= 0) throw new UsageException($"--eta-max must be positive, got {budget.EtaMax}");
            this.model = model;
            this.schedule = schedule;
            priorSteps = budget.PriorSteps;
            var defaults = new DpnpOptions();
            sampler = new DpnpSampler(model, schedule, defaults with
            {
                Iterations = budget.Levels,
                EtaMax = budget.EtaMax ?? defaults.EtaMax,
                Denoiser = defaults.Denoiser with { Steps = budget.Steps / budget.Levels - 1 },
            });
        }

        public string Name => "dpnp";

        public string Description =>
            $"DPnP: prior draw by ddim in {priorSteps} steps, then {sampler.Options.Iterations} sweeps (eta {sampler.Options.EtaMax} down to " +
            $"{sampler.Options.EtaMin}), each {sampler.Options.ConsistencySteps} consistency Langevin steps and a {sampler.Options.Denoiser.Kind} " +
            $"denoising draw of {sampler.Options.Denoiser.Steps + 1} network calls";

        public int Evaluations => priorSteps + sampler.Options.Iterations * (sampler.Options.Denoiser.Steps + 1);

        public bool LinearOnly => false;

        public void Sample(Tensor x, Tensor y, IForwardOperator op, float sigmaY, ulong seed, long firstSample,
            IProgress<int>? evaluationsDone, CancellationToken cancellationToken)
        {
            using var start = Tensor.Zeros(x.Device, x.Shape);
            DrawPrior(start, model, schedule, priorSteps, seed, firstSample, evaluationsDone, cancellationToken);
            int perSweep = sampler.Options.Denoiser.Steps + 1;
            sampler.Sample(x, y, op, sigmaY, seed, firstSample, warmStart: start,
                progress: evaluationsDone is null ? null : new Relay(p => evaluationsDone.Report(priorSteps + p.Step * perSweep)),
                cancellationToken: cancellationToken);
        }
    }

    /// <summary>DPS (Chung et al. 2023): --prior-steps + --steps reverse-diffusion steps from noise, each
    /// with the measurement gradient at Tweedie's estimate (a forward and a backward pass).</summary>
    private sealed class Dps : IPosteriorSampler
    {
        private readonly DpsSampler sampler;

        public Dps(IScoreModel model, NoiseSchedule schedule, PosteriorBudget budget)
        {
            CheckBudget(budget);
            if (budget.StepScale is <= 0) throw new UsageException($"--step-scale must be positive, got {budget.StepScale}");
            var defaults = new DpsOptions();
            sampler = new DpsSampler(model, schedule, defaults with
            {
                Steps = budget.Steps + budget.PriorSteps,
                StepSize = budget.StepScale ?? defaults.StepSize,
            });
        }

        public string Name => "dps";

        public string Description =>
            $"DPS: {sampler.Options.Steps} reverse-diffusion steps from noise, step size {sampler.Options.StepSize} ({sampler.Options.Rule} rule); " +
            "each step differentiates the measurement residual through the network";

        public int Evaluations => sampler.Options.Steps;

        public bool LinearOnly => false;

        public void Sample(Tensor x, Tensor y, IForwardOperator op, float sigmaY, ulong seed, long firstSample,
            IProgress<int>? evaluationsDone, CancellationToken cancellationToken) =>
            sampler.Sample(x, y, op, sigmaY, seed, firstSample,
                evaluationsDone is null ? null : new Relay(p => evaluationsDone.Report(p.Step)), cancellationToken);
    }

    private sealed class Relay(Action<SamplerProgress> report) : IProgress<SamplerProgress>
    {
        public void Report(SamplerProgress value) => report(value);
    }
}

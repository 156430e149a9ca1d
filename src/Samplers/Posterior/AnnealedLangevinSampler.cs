using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Models.Schedules;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Samplers.Posterior;

/// <summary>The options of <see cref="AnnealedLangevinSampler"/>. The defaults are right on exact posteriors (checked on
/// Gaussian priors, data scaled to about unit variance); <see cref="Image32"/> is the budget the command line uses for
/// 32 x 32 image models.</summary>
public sealed record AnnealedLangevinOptions : PosteriorMethodOptions
{
    /// <summary>Number of measurement noise levels K (eta_1 > ... > eta_K = sigma_y, geometric; <see cref="WithAdmissibleLadder"/>
    /// sets the fewest that make the ladder admissible).</summary>
    public int Levels { get; init; } = 20;

    /// <summary>Langevin steps at each level.</summary>
    public int StepsPerLevel { get; init; } = 50;

    /// <summary>The first level eta_1 (at least sigma_y); measurements at this level barely constrain x. Ignored when
    /// <see cref="FirstLevelAccuracy"/> is set.</summary>
    public double EtaMax { get; init; } = 1.0;

    /// <summary>When set, eta_1 is chosen from ||A||, the dimensions and this accuracy instead of <see cref="EtaMax"/>
    /// (<see cref="AnnealingSchedule.FirstLevel"/>: a prior draw is then within this total variation of p(x | y_1); data
    /// scaled to unit variance). Null: <see cref="EtaMax"/>.</summary>
    public double? FirstLevelAccuracy { get; init; }

    /// <summary>When set, the constant Langevin step size h at every level (the paper's protocol: the schedule fixed, h
    /// swept); it must stay below 2 / (||A||^2 / sigma_y^2 + L) for the last level to be stable. Null: the scaled rule of
    /// <see cref="StepScale"/>.</summary>
    public double? StepSize { get; init; }

    /// <summary>When true, a ladder that is not admissible (<see cref="AnnealingSchedule.IsAdmissible"/>) fails the run
    /// with <see cref="InvalidOptionException"/>; when false (the default) the run reports the warning
    /// (<see cref="PosteriorRun.Annealing"/>).</summary>
    public bool RequireAdmissible { get; init; }

    /// <summary>Step size h_k = StepScale / (1 + ||A||^2 / eta_k^2): a fraction of the inverse curvature
    /// of the level's potential for a prior with unit-scale score Lipschitz constant. The unadjusted step's stationary
    /// variance exceeds the target's by about a factor 1 / (1 - StepScale / 2) in the stiffest directions (1.11 at the
    /// default 0.2), while directions the measurement leaves to the prior move about StepScale times slower than they
    /// could; 0.2 balances the two on the exact Gaussian checks (0.1: variance 1.05x but a correlated prior's means lag
    /// by 4.7 standard errors; 0.2: 1.11x and 3.0).</summary>
    public double StepScale { get; init; } = 0.2;

    /// <summary>The diffusion timestep whose score serves as the prior score (the smallest: 0).</summary>
    public int PriorTimestep { get; init; }

    /// <summary>The unconditional sampler of the prior draw that starts the chains (<see cref="PriorDraw"/>).</summary>
    public string PriorSampler { get; init; } = "ddpm";

    /// <summary>Steps of that sampler.</summary>
    public int PriorSteps { get; init; } = 50;

    /// <summary>The preset for 32 x 32 image models (the command line's): a DDIM-8 prior draw, then 4 levels x 4 steps
    /// (24 network evaluations a sample) with step scale 0.5 and the prior score at timestep 50 (an image model's score
    /// at timestep 0 is about 100 eps and too stiff for a few large steps).</summary>
    public static AnnealedLangevinOptions Image32 { get; } = new()
    {
        Levels = 4, StepsPerLevel = 4, StepScale = 0.5, PriorTimestep = 50, PriorSampler = "ddim", PriorSteps = 8,
    };

    /// <summary>eta_1 for an operator of norm <paramref name="operatorNorm"/> on d = <paramref name="dimension"/> unknowns and m =
    /// <paramref name="measurements"/> measurements: from <see cref="FirstLevelAccuracy"/> when set, else <see cref="EtaMax"/>;
    /// never below sigma_y.</summary>
    public double FirstLevel(double operatorNorm, double sigmaY, int dimension, int measurements) => Math.Max(sigmaY,
        FirstLevelAccuracy is double accuracy ? AnnealingSchedule.FirstLevel(operatorNorm, dimension, measurements, accuracy) : EtaMax);

    /// <summary>These options with eta_1 resolved (<see cref="FirstLevel"/>, stored in <see cref="EtaMax"/>) and
    /// <see cref="Levels"/> the fewest that make the ladder down to sigma_y admissible
    /// (<see cref="AnnealingSchedule.AdmissibleCount"/>).</summary>
    public AnnealedLangevinOptions WithAdmissibleLadder(double operatorNorm, double sigmaY, int dimension, int measurements)
    {
        double first = FirstLevel(operatorNorm, sigmaY, dimension, measurements);
        return this with { EtaMax = first, FirstLevelAccuracy = null, Levels = AnnealingSchedule.AdmissibleCount(first, sigmaY) };
    }

    /// <summary>The prior draw these options describe.</summary>
    public PriorDraw Start => new(PriorSampler, PriorSteps);

    /// <inheritdoc/>
    public override void Validate(NoiseSchedule schedule)
    {
        Require(Levels >= 1, nameof(Levels), Levels, "must be at least 1");
        Require(StepsPerLevel >= 1, nameof(StepsPerLevel), StepsPerLevel, "must be at least 1");
        Require(EtaMax > 0 && double.IsFinite(EtaMax), nameof(EtaMax), EtaMax, "must be positive and finite");
        Require(StepScale > 0 && double.IsFinite(StepScale), nameof(StepScale), StepScale, "must be positive and finite");
        Require(FirstLevelAccuracy is null || (FirstLevelAccuracy > 0 && FirstLevelAccuracy < 1), nameof(FirstLevelAccuracy), FirstLevelAccuracy,
            "must lie in (0, 1), or be unset to use EtaMax");
        Require(StepSize is null || (StepSize > 0 && double.IsFinite(StepSize.Value)), nameof(StepSize), StepSize,
            "must be positive and finite, or unset for the StepScale rule");
        Require(PriorTimestep >= 0 && PriorTimestep < schedule.NumTrainTimesteps, nameof(PriorTimestep), PriorTimestep,
            $"must lie in 0..{schedule.NumTrainTimesteps - 1} (the schedule's timesteps)");
        Start.Validate(GetType().Name, schedule);
    }

    /// <inheritdoc/>
    public override IPosteriorSampler CreateSampler(IScoreModel model, NoiseSchedule schedule) => new AnnealedLangevinSampler(model, schedule, this);
}

/// <summary>
/// Posterior sampling with a diffusion prior and annealed Langevin dynamics (Xun, Gupta, Price 2025):
/// from a prior sample (drawn with the diffusion model, or a caller's start through <see cref="RefiningPosteriorSampler.Refine"/>),
/// run Langevin on grad log p(x) + A^T (y_k - A x) / eta_k^2 for a decreasing sequence eta_1 > ... > eta_K = sigma_y
/// (<see cref="AnnealingSchedule"/>), with nested measurements y_K = y, y_k = y_{k+1} + sqrt(eta_k^2 - eta_{k+1}^2) z_k
/// (so y_k is a valid measurement at level eta_k; each chain has its own z). The prior score is the network's at the
/// timestep <see cref="AnnealedLangevinOptions.PriorTimestep"/>. Linear operators only (the likelihood gradient is exact for them).
/// Holds no device memory between calls. Thread-safe: concurrent calls on one device take turns (GpuDevice.Exclusive).
/// </summary>
public sealed class AnnealedLangevinSampler : RefiningPosteriorSampler
{
    /// <summary>Random stream of the Langevin noise (<see cref="RandomStreams.Langevin"/>).</summary>
    public const uint LangevinStream = RandomStreams.Langevin;

    /// <summary>Random stream of the nested measurement noise (<see cref="RandomStreams.NestedMeasurements"/>).</summary>
    public const uint MeasurementStream = RandomStreams.NestedMeasurements;

    /// <summary>An annealed Langevin sampler; the options are validated here.</summary>
    /// <exception cref="InvalidOptionException">An option is out of range (names it).</exception>
    public AnnealedLangevinSampler(IScoreModel model, NoiseSchedule schedule, AnnealedLangevinOptions? options = null)
        : base(model, schedule, (options ?? new AnnealedLangevinOptions()).Start)
    {
        Options = options ?? new AnnealedLangevinOptions();
        Options.Validate(schedule);
    }

    /// <summary>The options in use.</summary>
    public AnnealedLangevinOptions Options { get; }

    /// <inheritdoc/>
    public override string Name => "annealed-langevin";

    /// <inheritdoc/>
    protected override string RefinementDescription =>
        $"annealed Langevin: {Options.Levels} levels x {Options.StepsPerLevel} Langevin steps (eta from " +
        (Options.FirstLevelAccuracy is double a ? $"||A|| sqrt(min(d, m)) / (2 x {a})" : $"{Options.EtaMax}") + " down to sigma_y, " +
        (Options.StepSize is double h ? $"constant step size {h}" : $"step scale {Options.StepScale}") + $", prior score at timestep {Options.PriorTimestep})";

    /// <inheritdoc/>
    public override int RefinementEvaluations => Options.Levels * Options.StepsPerLevel;

    /// <summary>The annealing schedule for an operator with ||A||^2 = <paramref name="operatorNormSquared"/>: eta_1
    /// (<see cref="AnnealedLangevinOptions.FirstLevel"/>) down to eta_K = sigma_y, geometric, <see cref="AnnealedLangevinOptions.Levels"/> levels.</summary>
    public AnnealingSchedule Annealing(double operatorNormSquared, double sigmaY, int dimension, int measurements) =>
        AnnealingSchedule.Geometric(Options.FirstLevel(Math.Sqrt(operatorNormSquared), sigmaY, dimension, measurements), sigmaY, Options.Levels, Options.StepsPerLevel);

    /// <summary>The Langevin step size h_k at each level: <see cref="AnnealedLangevinOptions.StepSize"/> when set, else
    /// StepScale / (1 + ||A||^2 / eta_k^2 + anchorWeight), a fraction of the inverse curvature of the level's potential.</summary>
    public double[] StepSizes(AnnealingSchedule ladder, double operatorNormSquared, float anchorWeight) =>
        ladder.Levels.Select(eta => Options.StepSize ?? Options.StepScale / (1 + operatorNormSquared / (eta * eta) + anchorWeight)).ToArray();

    /// <inheritdoc/>
    protected override void RequireOperator(IForwardOperator op)
    {
        if (op is not ILinearOperator)
            throw new ArgumentException($"{Name}: needs a linear forward operator but {op.Name} is nonlinear; use DPnP or DPS", nameof(op));
    }

    /// <inheritdoc/>
    protected override PosteriorRun RefineCore(Tensor x, Tensor y, IForwardOperator op, float sigmaY, ulong seed, long firstSample,
        IProgress<SamplerProgress>? progress, CancellationToken cancellationToken)
    {
        var annealing = Anneal(x, y, (ILinearOperator)op, sigmaY, null, 0f, seed, firstSample, progress, cancellationToken);
        return new PosteriorRun(RefinementEvaluations) { Annealing = annealing };
    }

    /// <summary>
    /// The local variant (Xun, Gupta, Price, Theorem 1.2): given a Gaussian measurement x~ = x0 + sigma w
    /// of the signal (e.g. a warm start x0 from any sampler, noised by <see cref="GaussianMeasurement"/>),
    /// draws p(x | y, x~): reverse diffusion from x~ at the level where sqrt((1 - abar)/abar) = sigma gives
    /// a sample of p(x | x~), then annealed Langevin adds grad log p(y | x) and (x~ - x) / sigma^2.
    /// <paramref name="xTilde"/> is one measurement [1, ...] or one per chain.
    /// </summary>
    /// <returns>The annealing's report (<see cref="PosteriorRun.Annealing"/>); the evaluations counted are the Langevin steps'.</returns>
    public PosteriorRun SampleLocal(Tensor x, Tensor y, ILinearOperator op, float sigmaY, Tensor xTilde, float sigma, ulong seed,
        long firstSample = 0, IProgress<SamplerProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        PosteriorArguments.Check(Name, x, y, op, sigmaY, firstSample, Model);
        if (!(sigma > 0 && float.IsFinite(sigma))) throw new ArgumentOutOfRangeException(nameof(sigma), sigma, "annealed langevin: the warm start's noise level must be positive and finite");
        using var exclusive = x.Device.Exclusive(cancellationToken);
        using var pool = new TensorPool(x.Device);
        using var anchor = PosteriorCommon.PerChain(xTilde, x.N, x.Shape[1..], pool, "annealed langevin (local)", "x~");
        x.CopyFrom(anchor);
        int t = -1;
        for (int i = 0; i < Schedule.NumTrainTimesteps && Schedule.Sigma(i) <= sigma; i++) t = i;
        if (t >= 0)
        {
            // x~ = x0 + sigma w is x_t / sqrt(abar_t) at the level whose noise is sigma: run the reverse diffusion down.
            Axpby.Run(0f, x, (float)Math.Sqrt(Schedule.AlphaCumprod(t)), x);
            int count = Math.Min(Options.PriorSteps, t + 1);
            var timesteps = Enumerable.Range(0, count).Select(i => (int)Math.Round(t * (1 - (double)i / count))).Distinct().ToArray();
            SamplerFactory.Create(Options.PriorSampler, Model, Schedule).SampleFrom(x, timesteps, seed, firstSample, 0, null, cancellationToken);
        }
        var annealing = Anneal(x, y, op, sigmaY, anchor, sigma, seed, firstSample, progress, cancellationToken);
        return new PosteriorRun(RefinementEvaluations) { Annealing = annealing };
    }

    /// <summary>x~ = x0 + sigma w, w ~ N(0, I) from <paramref name="draw"/>: the Gaussian measurement of a warm start.</summary>
    public static void GaussianMeasurement(Tensor warmStart, float sigma, RandomDraw draw, Tensor xTilde)
    {
        xTilde.CopyFrom(warmStart);
        AddNoise.Run(xTilde, sigma, draw);
    }

    private AnnealingReport Anneal(Tensor x, Tensor y, ILinearOperator op, float sigmaY, Tensor? anchor, float sigma, ulong seed, long firstSample,
        IProgress<SamplerProgress>? progress, CancellationToken cancellationToken)
    {
        int n = x.N;
        using var pool = new TensorPool(x.Device);
        using var yk = PosteriorCommon.PerChain(y, n, op.MeasurementShape, pool, "annealed langevin");
        double norm2 = PosteriorCommon.OperatorNormSquared(op, pool);
        float anchorWeight = anchor is null ? 0f : 1f / (sigma * sigma);
        var ladder = Annealing(norm2, sigmaY, x.ItemLength, yk.ItemLength);
        if (Options.RequireAdmissible && !ladder.IsAdmissible)
            throw new InvalidOptionException(nameof(AnnealedLangevinOptions), nameof(AnnealedLangevinOptions.Levels), Options.Levels,
                ladder.AdmissibilityWarning! + " (RequireAdmissible is set)");
        var eta = ladder.Levels.ToArray();
        var stepSizes = StepSizes(ladder, norm2, anchorWeight);
        int levels = eta.Length;
        var increments = new float[levels];
        for (int k = 0; k < levels - 1; k++) increments[k] = (float)Math.Sqrt(eta[k] * eta[k] - eta[k + 1] * eta[k + 1]);
        RandomDraw Nested(int k) => new RandomDraw(seed, MeasurementStream, (ulong)k).ForBatch(firstSample, yk.ItemLength);
        // y_1 = y + sum_k increments_k z_k; each level then removes its own z_k again.
        for (int k = 0; k < levels - 1; k++) AddNoise.Run(yk, increments[k], Nested(k));

        using var eps = pool.Rent(x.Shape);
        using var grad = pool.Rent(x.Shape);
        using var check = pool.Rent(n);
        var chains = new Chains(x, yk, op, anchor, anchorWeight, eps, grad, check, [(float)Options.PriorTimestep],
            ScoreConversion.EpsilonToScoreFactor(Schedule.AlphaCumprod(Options.PriorTimestep)), seed, firstSample);
        // x's squared norms after each level go to a divergence ring read once per `window` levels (and after the last):
        // at least DivergenceCheckInterval steps apart where levels are short, never more than MaxLevelsPerCheck levels.
        // Each level of the window keeps its start (and its y_k, which later levels change) for the replay that
        // diagnoses a level that ended non-finite.
        int window = Math.Min(levels, LevelsPerCheck(Options.StepsPerLevel));
        using var ring = new DivergenceRing(pool, n, 1, window);
        var levelStarts = new Tensor[window];
        var levelMeasurements = new Tensor[window > 1 ? window : 0];
        try
        {
            for (int w = 0; w < window; w++) levelStarts[w] = pool.Rent(x.Shape);
            for (int w = 0; w < levelMeasurements.Length; w++) levelMeasurements[w] = pool.Rent(yk.Shape);
            ulong step = 0;
            for (int k = 0; k < levels; k++)
            {
                float h = (float)stepSizes[k];
                // One copy per level buys an exact diagnosis: a level that ends non-finite is replayed step by step.
                levelStarts[k % window].CopyFrom(x);
                if (window > 1) levelMeasurements[k % window].CopyFrom(yk);
                for (int s = 0; s < Options.StepsPerLevel; s++)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    Iterate(chains, (float)eta[k], h, step++, null, null);
                }
                ring.Record(k, 0, x);
                if (ring.Due(k, levels - 1))
                {
                    ring.Read();
                    for (int j = ring.WindowStart(k); j <= k; j++)
                        if (Divergence.NonFinite(ring.Values(j, 0)).Length > 0)
                            throw Diagnose(window > 1 ? chains with { Y = levelMeasurements[j % window] } : chains, levelStarts[j % window],
                                (float)eta[j], (float)stepSizes[j], (ulong)j * (ulong)Options.StepsPerLevel, j, levels);
                }
                if (k < levels - 1) AddNoise.Run(yk, -increments[k], Nested(k));
                progress?.Report(new SamplerProgress((k + 1) * Options.StepsPerLevel, RefinementEvaluations));
            }
        }
        finally
        {
            foreach (var t in levelStarts.Concat(levelMeasurements)) t?.Dispose();
        }
        return ladder.Report(stepSizes);
    }

    /// <summary>The most levels between two reads of the divergence ring (each keeps a copy of x for the diagnosis).</summary>
    internal const int MaxLevelsPerCheck = 4;

    /// <summary>Levels between two host reads of the divergence ring for <paramref name="stepsPerLevel"/> Langevin steps a
    /// level: enough for <see cref="PosteriorCommon.DivergenceCheckInterval"/> (16) steps, at most <see cref="MaxLevelsPerCheck"/>
    /// (so one read per 16 steps for 4 or more steps a level, e.g. the command line's 4 x 4; once a level from 16 steps a level).</summary>
    internal static int LevelsPerCheck(int stepsPerLevel) =>
        Math.Clamp((PosteriorCommon.DivergenceCheckInterval + stepsPerLevel - 1) / Math.Max(stepsPerLevel, 1), 1, MaxLevelsPerCheck);

    /// <summary>The buffers and constants of one annealing run.</summary>
    private sealed record Chains(Tensor X, Tensor Y, ILinearOperator Op, Tensor? Anchor, float AnchorWeight, Tensor Eps, Tensor Grad,
        Tensor Check, float[] Timestep, float ScoreFactor, ulong Seed, long FirstSample);

    /// <summary>One Langevin step (global index <paramref name="index"/>); with norm arrays, also the squared
    /// norms of the prior score and of the likelihood gradient per chain (for the diagnosis).</summary>
    private void Iterate(Chains c, float eta, float h, ulong index, float[]? scoreNorms, float[]? gradNorms)
    {
        Model.PredictEpsilon(c.X, c.Timestep, c.Eps);
        Axpby.Run(c.ScoreFactor, c.Eps, 0f, c.Eps);   // the prior score, in place
        if (scoreNorms is not null) Divergence.SquaredNorms(c.Eps, c.Check, scoreNorms);
        c.Op.LogLikelihoodGradient(c.X, c.Y, eta, c.Grad);
        if (c.Anchor is not null)
        {
            Axpby.Run(-c.AnchorWeight, c.X, 1f, c.Grad);        // + (x~ - x) / sigma^2
            Axpby.Run(c.AnchorWeight, c.Anchor, 1f, c.Grad);
        }
        if (gradNorms is not null) Divergence.SquaredNorms(c.Grad, c.Check, gradNorms);
        LangevinStep.Run(c.X, c.Eps, c.Grad, h, new RandomDraw(c.Seed, LangevinStream, index).ForBatch(c.FirstSample, c.X.ItemLength));
    }

    /// <summary>
    /// Replays the level from its saved start, checking after every stage of every step (the noise is a
    /// function of the step index, so a deterministic model fails again at the same step), and returns
    /// the exception naming the step, the chains and the cause. x is left at the last finite state.
    /// </summary>
    private SamplerDivergedException Diagnose(Chains c, Tensor levelStart, float eta, float h, ulong first, int level, int levels)
    {
        const string name = "annealed-langevin";
        int total = Options.Levels * Options.StepsPerLevel;
        int n = c.X.N;
        string where = $"noise level {level + 1} of {levels}, eta = {eta:G3}, step size h = {h:G3}";
        var before = new float[n];
        var after = new float[n];
        var scoreNorms = new float[n];
        var gradNorms = new float[n];
        c.X.CopyFrom(levelStart);
        Divergence.SquaredNorms(c.X, c.Check, before);
        for (int s = 0; s < Options.StepsPerLevel; s++)
        {
            ulong index = first + (ulong)s;
            levelStart.CopyFrom(c.X);   // now: the state before this step
            Iterate(c, eta, h, index, scoreNorms, gradNorms);
            Divergence.SquaredNorms(c.X, c.Check, after);
            var bad = Divergence.NonFinite(after);
            if (bad.Length > 0)
            {
                double largest = Divergence.Largest(before);
                var cause = largest > Divergence.ExplodedSquaredNorm ? DivergenceCause.Exploded
                    : Divergence.AnyNonFinite(scoreNorms, bad) ? DivergenceCause.ModelOutput
                    : Divergence.AnyNonFinite(gradNorms, bad) ? DivergenceCause.LikelihoodGradient
                    : DivergenceCause.Update;
                c.X.CopyFrom(levelStart);
                return new SamplerDivergedException(name, (int)index + 1, total, where, cause, bad, (int)index,
                    $"largest squared norm of a chain before the step {largest:G3}");
            }
            (before, after) = (after, before);
        }
        // The replay stayed finite: the model does not give the same output for the same input.
        return new SamplerDivergedException(name, (int)first + Options.StepsPerLevel, total, where, DivergenceCause.Unknown, [],
            (int)first + Options.StepsPerLevel, "the level's replay from its start stayed finite: is the score model deterministic?");
    }
}

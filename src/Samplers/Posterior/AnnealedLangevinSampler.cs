using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Models.Schedules;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Samplers.Posterior;

/// <summary>The annealing schedule of <see cref="AnnealedLangevinSampler"/>, with defaults that work for
/// data scaled to about unit variance.</summary>
public sealed record AnnealedLangevinOptions
{
    /// <summary>Number of measurement noise levels K (eta_1 > ... > eta_K = sigma_y, geometric).</summary>
    public int Levels { get; init; } = 20;

    /// <summary>Langevin steps at each level.</summary>
    public int StepsPerLevel { get; init; } = 50;

    /// <summary>The first level eta_1 (at least sigma_y); measurements at this level barely constrain x.</summary>
    public double EtaMax { get; init; } = 1.0;

    /// <summary>Step size h_k = StepScale / (1 + ||A||^2 / eta_k^2): a fraction of the inverse curvature
    /// of the level's potential for a prior with unit-scale score Lipschitz constant.</summary>
    public double StepScale { get; init; } = 0.1;

    /// <summary>The diffusion timestep whose score serves as the prior score (the smallest: 0).</summary>
    public int PriorTimestep { get; init; }

    /// <summary>The unconditional sampler that draws the starting prior samples (unless a warm start is given).</summary>
    public string PriorSampler { get; init; } = "ddpm";

    /// <summary>Steps of that sampler.</summary>
    public int PriorSteps { get; init; } = 50;
}

/// <summary>
/// Posterior sampling with a diffusion prior and annealed Langevin dynamics (Xun, Gupta, Price 2025):
/// from a prior sample (drawn with the diffusion model, or a caller's warm start), run Langevin on
/// grad log p(x) + A^T (y_k - A x) / eta_k^2 for a decreasing sequence eta_1 > ... > eta_K = sigma_y,
/// with nested measurements y_K = y, y_k = y_{k+1} + sqrt(eta_k^2 - eta_{k+1}^2) z_k (so y_k is a valid
/// measurement at level eta_k; each chain has its own z). The prior score is the network's at the
/// smallest diffusion time. Linear operators only (the likelihood gradient is exact for them).
/// Holds no device memory between calls. Thread-safe: concurrent calls on one device take turns (GpuDevice.Exclusive).
/// </summary>
public sealed class AnnealedLangevinSampler(IScoreModel model, NoiseSchedule schedule, AnnealedLangevinOptions? options = null)
{
    /// <summary>Random stream of the Langevin noise.</summary>
    public const uint LangevinStream = 0x414C4E47;

    /// <summary>Random stream of the nested measurement noise.</summary>
    public const uint MeasurementStream = 0x414C4D53;

    /// <summary>The schedule in use.</summary>
    public AnnealedLangevinOptions Options { get; } = options ?? new AnnealedLangevinOptions();

    /// <summary>The measurement noise levels eta_1 ... eta_K.</summary>
    public double[] Levels(double sigmaY)
    {
        int k = Options.Levels;
        double top = Math.Max(Options.EtaMax, sigmaY);
        return Enumerable.Range(0, k).Select(i => k == 1 ? sigmaY : top * Math.Pow(sigmaY / top, (double)i / (k - 1))).ToArray();
    }

    /// <summary>
    /// Draws x.N posterior samples of p(x | y) into x ([N, C, H, W]). y is one measurement ([1, ...])
    /// shared by all chains, or one per chain ([N, ...]). <paramref name="warmStart"/> replaces the
    /// prior draw (the paper's local variant refines any sampler's output this way).
    /// </summary>
    /// <exception cref="SamplerDivergedException">A chain stopped being finite; names the Langevin step, the chains
    /// and the cause, and x holds the last finite state (see <see cref="SamplerDivergedException.LastFiniteStep"/>).</exception>
    /// <exception cref="ArgumentOutOfRangeException">sigma_y is not positive.</exception>
    public void Sample(Tensor x, Tensor y, ILinearOperator op, float sigmaY, ulong seed, long firstSample = 0,
        Tensor? warmStart = null, IProgress<SamplerProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        RequireSigmaY(sigmaY);
        using var exclusive = x.Device.Exclusive(cancellationToken);   // concurrent runs on one device take turns
        if (warmStart is not null) x.CopyFrom(warmStart);
        else PosteriorCommon.DrawPrior(x, model, schedule, Options.PriorSampler, Options.PriorSteps, seed, firstSample, cancellationToken);
        Anneal(x, y, op, sigmaY, null, 0f, seed, firstSample, progress, cancellationToken);
    }

    /// <summary>
    /// The local variant (Xun, Gupta, Price, Theorem 1.2): given a Gaussian measurement x~ = x0 + sigma w
    /// of the signal (e.g. a warm start x0 from any sampler, noised by <see cref="GaussianMeasurement"/>),
    /// draws p(x | y, x~): reverse diffusion from x~ at the level where sqrt((1 - abar)/abar) = sigma gives
    /// a sample of p(x | x~), then annealed Langevin adds grad log p(y | x) and (x~ - x) / sigma^2.
    /// <paramref name="xTilde"/> is one measurement [1, ...] or one per chain.
    /// </summary>
    public void SampleLocal(Tensor x, Tensor y, ILinearOperator op, float sigmaY, Tensor xTilde, float sigma, ulong seed,
        long firstSample = 0, IProgress<SamplerProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        RequireSigmaY(sigmaY);
        if (!(sigma > 0 && float.IsFinite(sigma))) throw new ArgumentOutOfRangeException(nameof(sigma), sigma, "annealed langevin: the warm start's noise level must be positive and finite");
        using var exclusive = x.Device.Exclusive(cancellationToken);
        using var pool = new TensorPool(x.Device);
        using var anchor = PosteriorCommon.PerChain(xTilde, x.N, x.Shape[1..], pool, "annealed langevin (local)", "x~");
        x.CopyFrom(anchor);
        int t = -1;
        for (int i = 0; i < schedule.NumTrainTimesteps && schedule.Sigma(i) <= sigma; i++) t = i;
        if (t >= 0)
        {
            // x~ = x0 + sigma w is x_t / sqrt(abar_t) at the level whose noise is sigma: run the reverse diffusion down.
            Axpby.Run(0f, x, (float)Math.Sqrt(schedule.AlphaCumprod(t)), x);
            int count = Math.Min(Options.PriorSteps, t + 1);
            var timesteps = Enumerable.Range(0, count).Select(i => (int)Math.Round(t * (1 - (double)i / count))).Distinct().ToArray();
            SamplerFactory.Create(Options.PriorSampler, model, schedule).SampleFrom(x, timesteps, seed, firstSample, 0, null, cancellationToken);
        }
        Anneal(x, y, op, sigmaY, anchor, sigma, seed, firstSample, progress, cancellationToken);
    }

    /// <summary>x~ = x0 + sigma w, w ~ N(0, I) from <paramref name="draw"/>: the Gaussian measurement of a warm start.</summary>
    public static void GaussianMeasurement(Tensor warmStart, float sigma, RandomDraw draw, Tensor xTilde)
    {
        xTilde.CopyFrom(warmStart);
        AddNoise.Run(xTilde, sigma, draw);
    }

    private void Anneal(Tensor x, Tensor y, ILinearOperator op, float sigmaY, Tensor? anchor, float sigma, ulong seed, long firstSample,
        IProgress<SamplerProgress>? progress, CancellationToken cancellationToken)
    {
        int n = x.N;
        using var pool = new TensorPool(x.Device);
        using var yk = PosteriorCommon.PerChain(y, n, op.MeasurementShape, pool, "annealed langevin");
        var eta = Levels(sigmaY);
        int levels = eta.Length;
        var increments = new float[levels];
        for (int k = 0; k < levels - 1; k++) increments[k] = (float)Math.Sqrt(eta[k] * eta[k] - eta[k + 1] * eta[k + 1]);
        RandomDraw Nested(int k) => new RandomDraw(seed, MeasurementStream, (ulong)k).ForBatch(firstSample, yk.ItemLength);
        // y_1 = y + sum_k increments_k z_k; each level then removes its own z_k again.
        for (int k = 0; k < levels - 1; k++) AddNoise.Run(yk, increments[k], Nested(k));

        double norm2 = PosteriorCommon.OperatorNormSquared(op, pool);
        float anchorWeight = anchor is null ? 0f : 1f / (sigma * sigma);
        using var eps = pool.Rent(x.Shape);
        using var grad = pool.Rent(x.Shape);
        using var levelStart = pool.Rent(x.Shape);
        using var check = pool.Rent(n);
        var chains = new Chains(x, yk, op, anchor, anchorWeight, eps, grad, check, [(float)Options.PriorTimestep],
            ScoreConversion.EpsilonToScoreFactor(schedule.AlphaCumprod(Options.PriorTimestep)), seed, firstSample);
        ulong step = 0;
        var norms = new float[n];
        for (int k = 0; k < levels; k++)
        {
            float h = (float)(Options.StepScale / (1 + norm2 / (eta[k] * eta[k]) + anchorWeight));
            // One copy per level buys an exact diagnosis: a level that ends non-finite is replayed step by step.
            levelStart.CopyFrom(x);
            ulong first = step;
            for (int s = 0; s < Options.StepsPerLevel; s++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                Iterate(chains, (float)eta[k], h, step++, null, null);
            }
            Divergence.SquaredNorms(x, check, norms);
            if (Divergence.NonFinite(norms).Length > 0)
                throw Diagnose(chains, levelStart, (float)eta[k], h, first, k, levels);
            if (k < levels - 1) AddNoise.Run(yk, -increments[k], Nested(k));
            progress?.Report(new SamplerProgress(k + 1, levels));
        }
    }

    /// <summary>Checked before any work: the annealing ends at eta_K = sigma_y and divides by its square.</summary>
    private static void RequireSigmaY(float sigmaY)
    {
        if (!(sigmaY > 0 && float.IsFinite(sigmaY)))
            throw new ArgumentOutOfRangeException(nameof(sigmaY), sigmaY,
                "annealed langevin: sigma_y must be positive and finite (the last noise level is sigma_y and the likelihood divides by its square; " +
                "for noise-free measurements use a small positive sigma_y)");
    }

    /// <summary>The buffers and constants of one annealing run.</summary>
    private sealed record Chains(Tensor X, Tensor Y, ILinearOperator Op, Tensor? Anchor, float AnchorWeight, Tensor Eps, Tensor Grad,
        Tensor Check, float[] Timestep, float ScoreFactor, ulong Seed, long FirstSample);

    /// <summary>One Langevin step (global index <paramref name="index"/>); with norm arrays, also the squared
    /// norms of the prior score and of the likelihood gradient per chain (for the diagnosis).</summary>
    private void Iterate(Chains c, float eta, float h, ulong index, float[]? scoreNorms, float[]? gradNorms)
    {
        model.PredictEpsilon(c.X, c.Timestep, c.Eps);
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

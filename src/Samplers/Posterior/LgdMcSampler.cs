using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Layout;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Reductions;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;
using PosteriorGpu.Models.Schedules;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Samplers.Posterior;

/// <summary>The options of <see cref="LgdMcSampler"/>: DPS's budget and step rule plus the Monte Carlo particles
/// and the spread of their Gaussian around Tweedie's estimate.</summary>
public sealed record LgdMcOptions : PosteriorMethodOptions
{
    /// <summary>Most particles per chain (the particle index is part of the random counter).</summary>
    public const int MaxParticles = 1 << 16;

    /// <summary>DDPM steps (leading spacing, as DPS).</summary>
    public int Steps { get; init; } = 100;

    /// <summary>The step size zeta, as DPS's.</summary>
    public double StepSize { get; init; } = 1.0;

    /// <summary>How the guidance is weighed: as DPS (<see cref="DpsStepRule"/>); with the residual-norm rule the norm
    /// is the root of the particles' weighted mean squared residual.</summary>
    public DpsStepRule Rule { get; init; } = DpsStepRule.ResidualNorm;

    /// <summary>n, the Monte Carlo particles x0^ + r_t z_i per chain and step (Song et al. use 10 or more).</summary>
    public int Particles { get; init; } = 10;

    /// <summary>r_t = RadiusScale sqrt(1 - abar_t): Song et al.'s r_t = sigma_t / sqrt(1 + sigma_t^2) with
    /// sigma_t^2 = (1 - abar_t) / abar_t is sqrt(1 - abar_t), the posterior spread of x0 given x_t for a unit-variance
    /// Gaussian prior; 0 puts every particle at x0^ (DPS's guidance).</summary>
    public double RadiusScale { get; init; } = 1.0;

    /// <summary>The preset for 32 x 32 image models (the command line's): DPS's budget (24 steps, one network
    /// evaluation and one vector-Jacobian product a step; the particles cost operator evaluations only), 10 particles.</summary>
    public static LgdMcOptions Image32 { get; } = new() { Steps = 24 };

    /// <inheritdoc/>
    public override void Validate(NoiseSchedule schedule)
    {
        Require(Steps >= 1 && Steps <= schedule.NumTrainTimesteps, nameof(Steps), Steps, $"must lie in 1..{schedule.NumTrainTimesteps} (the schedule's timesteps)");
        Require(StepSize >= 0 && double.IsFinite(StepSize), nameof(StepSize), StepSize, "must be at least 0 and finite");
        Require(Enum.IsDefined(Rule), nameof(Rule), Rule, "must be a DpsStepRule");
        Require(Particles is >= 1 and <= MaxParticles, nameof(Particles), Particles, $"must lie in 1..{MaxParticles}");
        Require(RadiusScale >= 0 && double.IsFinite(RadiusScale), nameof(RadiusScale), RadiusScale, "must be at least 0 and finite");
    }

    /// <inheritdoc/>
    public override IPosteriorSampler CreateSampler(IScoreModel model, NoiseSchedule schedule) => new LgdMcSampler(model, schedule, this);
}

/// <summary>
/// Loss-guided diffusion with Monte Carlo (LGD-MC; Song, Zhang, Yin, Mardani, Liu, Kautz, Chen and Vahdat 2023,
/// "Loss-Guided Diffusion Models for Plug-and-Play Controllable Generation", Algorithm 2 with the loss
/// l(x0) = -log p(y | x0)): DPS's DDPM loop, but p(y | x_t) is approximated by E[p(y | x0)] under
/// x0 ~ N(x0^(x_t), r_t^2 I) instead of p(y | x0^), estimated with n particles x0_i = x0^ + r_t z_i:
/// guidance = grad_{x_t} log (1/n sum_i exp(-l(x0_i))) = J_{x0^}^T sum_i w_i grad log p(y | x0_i),
/// w = softmax_i(-l(x0_i)) per chain, with z_i held fixed (reparametrised), so one vector-Jacobian product per
/// step serves all particles. For a unit Gaussian prior and Gaussian noise this average is p(y | x_t) exactly
/// (n to infinity). With n = 1 and r_t = 0 it is DPS (<see cref="DpsSampler"/>) bit for bit.
/// Holds no device memory between calls. Thread-safe: concurrent calls on one device take turns (GpuDevice.Exclusive).
/// </summary>
public sealed class LgdMcSampler : IPosteriorSampler
{
    private readonly IDifferentiableScoreModel model;
    private readonly NoiseSchedule schedule;

    /// <summary>An LGD-MC sampler over a differentiable score model; the options are validated here.</summary>
    /// <exception cref="ArgumentException">The model is not differentiable, or was loaded without gradients.</exception>
    /// <exception cref="InvalidOptionException">An option is out of range (names it).</exception>
    public LgdMcSampler(IScoreModel model, NoiseSchedule schedule, LgdMcOptions? options = null)
    {
        this.model = GuidedDdpm.RequireGradients(model, "lgd-mc", "LGD-MC differentiates the particles' loss");
        ArgumentNullException.ThrowIfNull(schedule);
        this.schedule = schedule;
        Options = options ?? new LgdMcOptions();
        Options.Validate(schedule);
        schedule.RequireSupported(Name, supportsClipSample: false, supportsThresholding: false);
    }

    /// <summary>The options in use.</summary>
    public LgdMcOptions Options { get; }

    /// <inheritdoc/>
    public string Name => "lgd-mc";

    /// <inheritdoc/>
    public string Description => $"LGD-MC: {Options.Steps} reverse-diffusion steps from noise, {Options.Particles} particles at r_t = " +
                                 $"{Options.RadiusScale} sqrt(1 - abar_t), step size {Options.StepSize} ({Options.Rule} rule)";

    /// <inheritdoc/>
    public int NetworkEvaluations => Options.Steps;

    /// <summary>
    /// Draws x.N posterior samples of p(x | y) into x ([N, C, H, W]); y is one measurement ([1, ...]) or one per chain.
    /// Noise, particles included, is a function of (seed, step, global sample index), so a chain is the same alone or in a batch.
    /// </summary>
    /// <exception cref="SamplerDivergedException">A chain stopped being finite; names the step.</exception>
    /// <exception cref="OperationCanceledException">The token was cancelled.</exception>
    public PosteriorRun Sample(Tensor x, Tensor y, IForwardOperator op, float sigmaY, ulong seed, long firstSample = 0,
        IProgress<SamplerProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        PosteriorArguments.Check(Name, x, y, op, sigmaY, firstSample, model);
        int particles = Options.Particles;
        // The particles x0^ + r_t z_i (z from the step's own stream), their self-normalised weights and weighted
        // likelihood gradient, and the weighted mean squared residual per chain.
        return GuidedDdpm.Sample(Name, model, schedule, Options.Steps, Options.StepSize, Options.Rule, x, y, op, sigmaY, seed, firstSample,
            (pool, yk) => new ParticleGuidance(pool, x.Shape, op, yk, particles)
            {
                SigmaY = sigmaY, RadiusScale = Options.RadiusScale,
                Draw = step => new RandomDraw(seed, RandomStreams.LossGuidanceParticles, (ulong)step).ForBatch(firstSample * particles, x.ItemLength),
            }, progress, cancellationToken);
    }

    /// <summary>The Monte Carlo half of a step, with its buffers (rented once per run from the run's pool).</summary>
    internal sealed class ParticleGuidance : IMeasurementGuidance
    {
        /// <summary>sigma_y, for <see cref="IMeasurementGuidance.Run"/>.</summary>
        public float SigmaY { get; init; }

        /// <summary>r_t = RadiusScale sqrt(1 - abar_t), for <see cref="IMeasurementGuidance.Run"/>.</summary>
        public double RadiusScale { get; init; } = 1.0;

        /// <summary>The particles' noise of a step, for <see cref="IMeasurementGuidance.Run"/>.</summary>
        public Func<int, RandomDraw>? Draw { get; init; }

        /// <inheritdoc/>
        public bool ReportsHealth => true;

        /// <inheritdoc/>
        void IMeasurementGuidance.Run(Tensor x0, int step, double alphaBar, bool needResidual, Tensor g, Tensor squaredResidual, Tensor? health) =>
            Run(x0, SigmaY, (float)(RadiusScale * Math.Sqrt(1 - alphaBar)), Draw!(step), g, squaredResidual, health!);

        private readonly IForwardOperator op;
        private readonly ILogLikelihood? ownLikelihood;
        private readonly int particles, total;
        private readonly Tensor xp, gp, yp, axp, residuals, logLikelihoods, weights;

        /// <summary>Buffers for chains of shape <paramref name="chainShape"/> measured by y (one per chain).</summary>
        public ParticleGuidance(TensorPool pool, int[] chainShape, IForwardOperator op, Tensor y, int particles)
        {
            this.op = op;
            this.particles = particles;
            ownLikelihood = op as ILogLikelihood;
            total = checked(chainShape[0] * particles);
            var shape = (int[])chainShape.Clone();
            shape[0] = total;
            xp = pool.Rent(shape);
            gp = pool.Rent(shape);
            yp = pool.Rent(new[] { total }.Concat(op.MeasurementShape).ToArray());
            axp = pool.Rent(yp.Shape);
            residuals = pool.Rent(total);
            logLikelihoods = pool.Rent(total);
            weights = pool.Rent(total);
            RepeatItems.Run(y, particles, yp);
        }

        /// <summary>
        /// g = sum_i w_i grad log p(y | x0_i) per chain with x0_i = x0 + radius z_i (z from <paramref name="draw"/>,
        /// chain-major) and w = softmax_i(log p(y | x0_i)); meanResidual[c] = sum_i w_i ||y - A(x0_i)||^2 (for an operator
        /// with its own likelihood -2 sigma_y^2 log p(y | x0_i): <see cref="ILogLikelihood.SquaredResidual"/>); health[c] = 0,
        /// or NaN for a chain whose log-likelihoods are not usable (NaN or +infinity). All on the device (the weights are
        /// <see cref="ParticleWeights"/>'s): no host synchronisation unless the operator's own log-likelihood makes one.
        /// </summary>
        public void Run(Tensor x0, float sigmaY, float radius, RandomDraw draw, Tensor g, Tensor meanResidual, Tensor health)
        {
            RepeatItems.Run(x0, particles, xp);
            AddNoise.Run(xp, radius, draw);
            if (ownLikelihood is not null)
            {
                // The operator's likelihood gives the weights, and the residual is its general form -2 sigma_y^2 log p.
                ownLikelihood.LogLikelihood(xp, yp, sigmaY, logLikelihoods);
                ILogLikelihood.SquaredResidual(logLikelihoods, sigmaY, residuals);
            }
            else
            {
                // The weights then take the Gaussian -||y - A(x0_i)||^2 / (2 sigma_y^2), up to a constant they do not see.
                op.Forward(xp, axp);
                Axpby.Run(1f, yp, -1f, axp);   // r_i = y - A(x0_i)
                BatchReduce.SquaredNorm(axp, residuals);
            }
            ParticleWeights.Run(ownLikelihood is null ? null : logLikelihoods, -0.5f / (sigmaY * sigmaY), residuals, particles,
                weights, meanResidual, health);
            op.LogLikelihoodGradient(xp, yp, sigmaY, gp);
            WeightedItemSum.Run(gp, weights, particles, g);
        }

        /// <summary>Returns the buffers to the pool.</summary>
        public void Dispose()
        {
            foreach (var t in new[] { xp, gp, yp, axp, residuals, logLikelihoods, weights }) t.Dispose();
        }
    }

    /// <summary>
    /// The self-normalised weights w_i = exp(l_i - max l) / sum_j exp(l_j - max l) of one chain's particles from their
    /// log-likelihoods l_i (a stable log-sum-exp), and the weighted mean squared residual sum_i w_i ||r_i||^2.
    /// A single particle gets weight 1 exactly, so the mean is its residual bit for bit. False when a log-likelihood
    /// is NaN or +infinity (the chain diverged). The specification of the device kernel <see cref="ParticleWeights"/>
    /// (the sampler's path; bitwise equal on the CPU accelerator: LgdMcTests).
    /// </summary>
    internal static (float MeanResidual, bool Ok) Weigh(ReadOnlySpan<float> logLikelihood, ReadOnlySpan<float> squaredResidual, Span<float> weights)
    {
        if (logLikelihood.Length == 1)
        {
            weights[0] = 1f;
            return (squaredResidual[0], !float.IsNaN(logLikelihood[0]) && !float.IsPositiveInfinity(logLikelihood[0]));
        }
        double max = double.NegativeInfinity;
        foreach (float l in logLikelihood)
        {
            if (float.IsNaN(l) || float.IsPositiveInfinity(l)) return (float.NaN, false);
            max = Math.Max(max, l);
        }
        if (double.IsNegativeInfinity(max))
        {
            // Every particle impossible: weigh them equally rather than divide by zero.
            weights.Fill(1f / weights.Length);
            double s = 0;
            foreach (float r in squaredResidual) s += r;
            return ((float)(s / weights.Length), true);
        }
        double sum = 0;
        for (int k = 0; k < weights.Length; k++) sum += Math.Exp(logLikelihood[k] - max);
        double mean = 0;
        for (int k = 0; k < weights.Length; k++)
        {
            double w = Math.Exp(logLikelihood[k] - max) / sum;
            weights[k] = (float)w;
            mean += w * squaredResidual[k];
        }
        return ((float)mean, true);
    }
}

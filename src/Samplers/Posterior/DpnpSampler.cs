using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Models.Schedules;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Samplers.Posterior;

/// <summary>The options of <see cref="DpnpSampler"/>. The defaults are right on exact posteriors (checked on Gaussian
/// priors); <see cref="Image32"/> is the budget the command line uses for 32 x 32 image models.</summary>
public sealed record DpnpOptions : PosteriorMethodOptions
{
    /// <summary>Gibbs sweeps K (one proximal consistency draw and one denoising draw each).</summary>
    public int Iterations { get; init; } = 50;

    /// <summary>eta_1, the coupling level of the first sweep.</summary>
    public double EtaMax { get; init; } = 1.0;

    /// <summary>eta_K, the coupling level of the last sweep (geometric in between); the chain's stationary law
    /// is p(x) (p(y | .) * N(0, eta^2 I))(x), which tends to the posterior as eta shrinks: the samples' variance
    /// exceeds the posterior's by about eta_K^2 per coordinate, so keep eta_K well below sigma_y.</summary>
    public double EtaMin { get; init; } = 0.01;

    /// <summary>Langevin steps of each proximal consistency draw.</summary>
    public int ConsistencySteps { get; init; } = 6;

    /// <summary>How far the likelihood part of a consistency step may move, as a fraction of 1 / L.</summary>
    public double ConsistencyStepScale { get; init; } = 0.6;

    /// <summary>Metropolis-adjust each consistency step (MALA): the consistency draw then targets
    /// p(y | x^) N(x^; x, eta^2 I) exactly, and the run reports its acceptance rate. Costs one more forward operator
    /// call per step.</summary>
    public bool Metropolis { get; init; } = true;

    /// <summary>||A||^2 for the likelihood curvature L = ||A||^2 / sigma_y^2; null: by power iteration for linear
    /// operators, 1 for nonlinear ones (right for phase retrieval's orthonormal transform; give ||A||^2 for one-bit).</summary>
    public double? OperatorNormSquared { get; init; }

    /// <summary>The denoising diffusion sampler (kind and grid).</summary>
    public DenoisingDiffusionOptions Denoiser { get; init; } = new();

    /// <summary>The unconditional sampler of the prior draw that starts the chains (<see cref="PriorDraw"/>).</summary>
    public string PriorSampler { get; init; } = "ddpm";

    /// <summary>Steps of that sampler.</summary>
    public int PriorSteps { get; init; } = 50;

    /// <summary>The preset for 32 x 32 image models (the command line's): a DDIM-8 prior draw, then 4 sweeps with
    /// 4-call denoising draws (24 network evaluations a sample), unadjusted consistency steps, eta down to 0.03.</summary>
    public static DpnpOptions Image32 { get; } = new()
    {
        Iterations = 4, EtaMin = 0.03, Metropolis = false, Denoiser = new DenoisingDiffusionOptions { Steps = 3 },
        PriorSampler = "ddim", PriorSteps = 8,
    };

    /// <summary>The prior draw these options describe.</summary>
    public PriorDraw Start => new(PriorSampler, PriorSteps);

    /// <inheritdoc/>
    public override void Validate(NoiseSchedule schedule)
    {
        Require(Iterations >= 1, nameof(Iterations), Iterations, "must be at least 1");
        Require(EtaMin > 0 && double.IsFinite(EtaMin), nameof(EtaMin), EtaMin, "must be positive and finite");
        Require(EtaMax >= EtaMin && double.IsFinite(EtaMax), nameof(EtaMax), EtaMax, $"must be finite and at least EtaMin ({EtaMin})");
        Require(ConsistencySteps >= 0, nameof(ConsistencySteps), ConsistencySteps, "must be at least 0");
        Require(ConsistencyStepScale > 0 && double.IsFinite(ConsistencyStepScale), nameof(ConsistencyStepScale), ConsistencyStepScale, "must be positive and finite");
        Require(OperatorNormSquared is null || (OperatorNormSquared > 0 && double.IsFinite(OperatorNormSquared.Value)),
            nameof(OperatorNormSquared), OperatorNormSquared, "must be positive and finite (or null: estimated)");
        Require(Denoiser is not null, nameof(Denoiser), Denoiser, "must be set");
        Require(Denoiser!.Steps >= 1, "Denoiser.Steps", Denoiser.Steps, "must be at least 1 (a denoising draw makes Steps + 1 network calls)");
        Require(Denoiser.SigmaMin > 0 && Denoiser.SigmaMax >= Denoiser.SigmaMin && double.IsFinite(Denoiser.SigmaMax),
            "Denoiser.SigmaMax", Denoiser.SigmaMax, $"need 0 < SigmaMin ({Denoiser.SigmaMin}) <= SigmaMax < infinity");
        Start.Validate(GetType().Name, schedule);
    }

    /// <inheritdoc/>
    public override IPosteriorSampler CreateSampler(IScoreModel model, NoiseSchedule schedule) => new DpnpSampler(model, schedule, this);
}

/// <summary>
/// Diffusion plug-and-play (DPnP; Xu and Chi 2024, "Provably robust score-based diffusion posterior sampling
/// for plug-and-play image reconstruction", Algorithm 1): a Gibbs chain on (x, x^) that alternates the proximal consistency
/// sampler x^ ~ p(y | x^) N(x^; x, eta_k^2 I) (likelihood only, any <see cref="IForwardOperator"/>) and the
/// denoising diffusion sampler x ~ p(x) N(x^; x, eta_k^2 I) (prior only, the unconditional network), with
/// eta_k decreasing geometrically (<see cref="AnnealingSchedule"/>). The chain moves about eta per sweep, so it mixes
/// at the large levels and the small ones remove the bias eta^2 ||A||^2 against sigma_y^2.
/// Holds no device memory between calls. Thread-safe: concurrent calls on one device take turns (GpuDevice.Exclusive).
/// </summary>
public sealed class DpnpSampler : RefiningPosteriorSampler
{
    /// <summary>A DPnP sampler; the options are validated here.</summary>
    /// <exception cref="InvalidOptionException">An option is out of range (names it).</exception>
    public DpnpSampler(IScoreModel model, NoiseSchedule schedule, DpnpOptions? options = null)
        : base(model, schedule, (options ?? new DpnpOptions()).Start)
    {
        Options = options ?? new DpnpOptions();
        Options.Validate(schedule);
        // The denoising draws use the network's x0 as it is: a schedule that asks for clipping or thresholding is refused.
        schedule.RequireSupported(Name, supportsClipSample: false, supportsThresholding: false);
    }

    /// <summary>The options in use.</summary>
    public DpnpOptions Options { get; }

    /// <inheritdoc/>
    public override string Name => "dpnp";

    /// <inheritdoc/>
    protected override string RefinementDescription =>
        $"DPnP: {Options.Iterations} sweeps (eta {Options.EtaMax} down to {Options.EtaMin}), each {Options.ConsistencySteps} " +
        $"{(Options.Metropolis ? "Metropolis-adjusted" : "unadjusted")} consistency Langevin steps and a {Options.Denoiser.Kind} " +
        $"denoising draw of {Options.Denoiser.Steps + 1} network calls";

    /// <inheritdoc/>
    public override int RefinementEvaluations => Options.Iterations * (Options.Denoiser.Steps + 1);

    /// <summary>The coupling levels eta_1 ... eta_K, one sweep each.</summary>
    public AnnealingSchedule Annealing() => AnnealingSchedule.Geometric(Options.EtaMax, Options.EtaMin, Options.Iterations, 1);

    /// <inheritdoc/>
    protected override PosteriorRun RefineCore(Tensor x, Tensor y, IForwardOperator op, float sigmaY, ulong seed, long firstSample,
        IProgress<SamplerProgress>? progress, CancellationToken cancellationToken)
    {
        int n = x.N;
        using var pool = new TensorPool(x.Device);
        using var yk = PosteriorCommon.PerChain(y, n, op.MeasurementShape, pool, Name);
        double norm2 = Options.OperatorNormSquared ?? (op is ILinearOperator linear ? PosteriorCommon.OperatorNormSquared(linear, pool) : 1.0);
        double lipschitz = norm2 / ((double)sigmaY * sigmaY);
        var pcs = new ProximalConsistencySampler(Options.ConsistencySteps, Options.ConsistencyStepScale, Options.Metropolis);
        var dds = new DenoisingDiffusionSampler(Model, Schedule, Options.Denoiser);
        using var xHat = pool.Rent(x.Shape);
        var ladder = Annealing();
        var eta = ladder.Levels;
        // x's squared norms after each sweep, read once per DivergenceCheckInterval sweeps (and after the last).
        using var ring = new DivergenceRing(pool, n, 1, Math.Min(PosteriorCommon.DivergenceCheckInterval, eta.Count));
        // Accepts per chain, counted on the device and read once after the last sweep.
        using var acceptedCount = pool.Rent(n);
        acceptedCount.Clear();
        long accepted = 0;
        int perSweep = Options.Denoiser.Steps + 1;
        for (int k = 0; k < eta.Count; k++)
        {
            if (!pcs.Sample(xHat, x, yk, op, sigmaY, (float)eta[k], lipschitz, seed, firstSample, (ulong)k * (ulong)pcs.DrawsPerCall, pool,
                    acceptedCount, cancellationToken))
                accepted += (long)Options.ConsistencySteps * n;   // unadjusted: every step counts as accepted
            dds.Sample(x, xHat, (float)eta[k], seed, firstSample, (ulong)k * (ulong)dds.NetworkCalls, pool, cancellationToken);
            ring.Record(k, 0, x);
            if (ring.Due(k, eta.Count - 1)) PosteriorCommon.CheckFinite(ring, Name, ring.WindowStart(k), k, eta.Count);
            progress?.Report(new SamplerProgress((k + 1) * perSweep, RefinementEvaluations));
        }
        long proposals = (long)eta.Count * Options.ConsistencySteps * n;
        if (Options.Metropolis && proposals > 0)
            foreach (float c in acceptedCount.ToHost()) accepted += (long)c;
        return new PosteriorRun(RefinementEvaluations, Options.Metropolis && proposals > 0 ? (double)accepted / proposals : null)
        {
            Annealing = ladder.Report([]),
        };
    }
}

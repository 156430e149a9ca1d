using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Models.Schedules;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Samplers.Posterior;

/// <summary>The schedule of <see cref="DpnpSampler"/>, with defaults that work for data scaled to about unit variance.</summary>
public sealed record DpnpOptions
{
    /// <summary>Gibbs sweeps K (one proximal consistency draw and one denoising draw each).</summary>
    public int Iterations { get; init; } = 50;

    /// <summary>eta_1, the coupling level of the first sweep.</summary>
    public double EtaMax { get; init; } = 1.0;

    /// <summary>eta_K, the coupling level of the last sweep (geometric in between); the chain's stationary law
    /// is p(x) (p(y | .) * N(0, eta^2 I))(x), which tends to the posterior as eta shrinks.</summary>
    public double EtaMin { get; init; } = 0.03;

    /// <summary>Langevin steps of each proximal consistency draw.</summary>
    public int ConsistencySteps { get; init; } = 6;

    /// <summary>How far the likelihood part of a consistency step may move, as a fraction of 1 / L.</summary>
    public double ConsistencyStepScale { get; init; } = 0.6;

    /// <summary>||A||^2 for the likelihood curvature L = ||A||^2 / sigma_y^2; null: by power iteration for linear
    /// operators, 1 for nonlinear ones (right for phase retrieval's orthonormal transform; give ||A||^2 for one-bit).</summary>
    public double? OperatorNormSquared { get; init; }

    /// <summary>The denoising diffusion sampler (kind and grid).</summary>
    public DenoisingDiffusionOptions Denoiser { get; init; } = new();

    /// <summary>The unconditional sampler that draws the starting prior samples (unless a warm start is given).</summary>
    public string PriorSampler { get; init; } = "ddpm";

    /// <summary>Steps of that sampler.</summary>
    public int PriorSteps { get; init; } = 50;
}

/// <summary>
/// Diffusion plug-and-play (DPnP; Xu and Chi 2024, "Provably robust score-based diffusion posterior sampling
/// for plug-and-play image reconstruction"): a Gibbs chain on (x, x^) that alternates the proximal consistency
/// sampler x^ ~ p(y | x^) N(x^; x, eta_k^2 I) (likelihood only, any <see cref="IForwardOperator"/>) and the
/// denoising diffusion sampler x ~ p(x) N(x^; x, eta_k^2 I) (prior only, the unconditional network), with
/// eta_k decreasing geometrically. The chain moves about eta per sweep, so it mixes at the large levels and
/// the small ones remove the bias eta^2 ||A||^2 against sigma_y^2.
/// Holds no device memory between calls. Thread-safe: concurrent calls on one device take turns (GpuDevice.Exclusive).
/// </summary>
public sealed class DpnpSampler(IScoreModel model, NoiseSchedule schedule, DpnpOptions? options = null)
{
    /// <summary>The schedule in use.</summary>
    public DpnpOptions Options { get; } = Validate(options ?? new DpnpOptions());

    /// <summary>The coupling levels eta_1 ... eta_K.</summary>
    public double[] Levels()
    {
        int k = Options.Iterations;
        return Enumerable.Range(0, k).Select(i => k == 1 ? Options.EtaMin
            : Options.EtaMax * Math.Pow(Options.EtaMin / Options.EtaMax, (double)i / (k - 1))).ToArray();
    }

    /// <summary>
    /// Draws x.N posterior samples of p(x | y) into x ([N, C, H, W]). y is one measurement ([1, ...]) shared by
    /// all chains, or one per chain ([N, ...]). <paramref name="warmStart"/> replaces the prior draw. Progress is
    /// reported once per sweep; the state is checked for NaN after every sweep.
    /// </summary>
    /// <exception cref="SamplerDivergedException">A chain stopped being finite; names the sweep.</exception>
    /// <exception cref="OperationCanceledException">The token was cancelled.</exception>
    public void Sample(Tensor x, Tensor y, IForwardOperator op, float sigmaY, ulong seed, long firstSample = 0,
        Tensor? warmStart = null, IProgress<SamplerProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        if (!(sigmaY > 0)) throw new ArgumentOutOfRangeException(nameof(sigmaY), sigmaY, "dpnp: sigma_y must be positive");
        using var exclusive = x.Device.Exclusive(cancellationToken);   // concurrent runs on one device take turns
        if (warmStart is not null) x.CopyFrom(warmStart);
        else PosteriorCommon.DrawPrior(x, model, schedule, Options.PriorSampler, Options.PriorSteps, seed, firstSample, cancellationToken);

        int n = x.N;
        using var pool = new TensorPool(x.Device);
        using var yk = PosteriorCommon.PerChain(y, n, op.MeasurementShape, pool, "dpnp");
        double norm2 = Options.OperatorNormSquared ?? (op is ILinearOperator linear ? PosteriorCommon.OperatorNormSquared(linear, pool) : 1.0);
        double lipschitz = norm2 / ((double)sigmaY * sigmaY);
        var pcs = new ProximalConsistencySampler(Options.ConsistencySteps, Options.ConsistencyStepScale);
        var dds = new DenoisingDiffusionSampler(model, schedule, Options.Denoiser);
        using var xHat = pool.Rent(x.Shape);
        using var check = pool.Rent(n);
        var norms = new float[n];
        var eta = Levels();
        for (int k = 0; k < eta.Length; k++)
        {
            pcs.Sample(xHat, x, yk, op, sigmaY, (float)eta[k], lipschitz, seed, firstSample, (ulong)k * (ulong)pcs.DrawsPerCall, pool, cancellationToken);
            dds.Sample(x, xHat, (float)eta[k], seed, firstSample, (ulong)k * (ulong)dds.NetworkCalls, pool, cancellationToken);
            PosteriorCommon.CheckFinite(x, check, norms, "dpnp", k + 1, eta.Length);
            progress?.Report(new SamplerProgress(k + 1, eta.Length));
        }
    }

    private static DpnpOptions Validate(DpnpOptions o)
    {
        if (o.Iterations < 1) throw new ArgumentOutOfRangeException(nameof(o), o.Iterations, "dpnp: Iterations must be at least 1");
        if (!(o.EtaMin > 0) || !(o.EtaMax >= o.EtaMin) || double.IsInfinity(o.EtaMax))
            throw new ArgumentOutOfRangeException(nameof(o), $"dpnp: need 0 < EtaMin <= EtaMax < infinity, got {o.EtaMin}, {o.EtaMax}");
        if (o.ConsistencySteps < 0) throw new ArgumentOutOfRangeException(nameof(o), o.ConsistencySteps, "dpnp: ConsistencySteps must be >= 0");
        if (!(o.ConsistencyStepScale > 0)) throw new ArgumentOutOfRangeException(nameof(o), o.ConsistencyStepScale, "dpnp: ConsistencyStepScale must be positive");
        return o;
    }
}

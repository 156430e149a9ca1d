using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;
using PosteriorGpu.Models.Schedules;

namespace PosteriorGpu.Samplers.Posterior;

/// <summary>The two kinds of denoising diffusion sampler of Xu and Chi (2024).</summary>
public enum DenoisingSamplerKind
{
    /// <summary>Stochastic (DDPM-type): the reverse SDE, fresh noise at every step.</summary>
    Ddpm,

    /// <summary>Deterministic (DDIM-type): the probability-flow ODE from one starting noise.</summary>
    Ddim,
}

/// <summary>The step grid of <see cref="DenoisingDiffusionSampler"/>, in units of the level eta it denoises.</summary>
public sealed record DenoisingDiffusionOptions
{
    /// <summary>Stochastic or deterministic.</summary>
    public DenoisingSamplerKind Kind { get; init; } = DenoisingSamplerKind.Ddim;

    /// <summary>Noise levels of the grid sigma_1 > ... > sigma_n (geometric); the sampler makes n + 1 network calls.</summary>
    public int Steps { get; init; } = 7;

    /// <summary>sigma_1 / eta: where the walk starts after its exact first step from sigma = infinity.</summary>
    public double SigmaMax { get; init; } = 5;

    /// <summary>sigma_n / eta: the last level before the final jump to sigma = 0.</summary>
    public double SigmaMin { get; init; } = 0.05;

    /// <summary>Second order (DPM-Solver++(2M) for the ODE, SDE-DPM-Solver++(2M) for the SDE); false gives
    /// the first-order DDIM and DDPM updates, whose few-step samples are measurably under-dispersed.</summary>
    public bool SecondOrder { get; init; } = true;
}

/// <summary>
/// The denoising diffusion sampler (DDS) of DPnP (Xu and Chi 2024, "Provably robust score-based diffusion
/// posterior sampling for plug-and-play image reconstruction"): draws x ~ p(x | x^), the posterior of
/// the prior p under the Gaussian measurement x^ = x + eta w, using only the unconditional network.
/// <para>
/// The target pi(x) ∝ p(x) N(x; x^, eta^2 I) is diffused by the variance-exploding process z = x + sigma e
/// and the reverse process is walked from sigma = infinity to 0. Its denoiser maps onto the unconditional
/// one: E_pi[x | z] = D_p(m, tau) with m = (sigma^2 x^ + eta^2 z) / (eta^2 + sigma^2) and
/// tau^2 = eta^2 sigma^2 / (eta^2 + sigma^2) (the product of the two Gaussians in x), and
/// D_p(m, tau) = m - tau eps(sqrt(a) m, t) at the timestep t where alpha_bar = a = 1 / (1 + tau^2)
/// (below the schedule's smallest level: m - (tau^2 / sigma_0) eps at t = 0). At sigma = infinity the
/// denoiser is D_p(x^, eta) (Tweedie's mean of p(x | x^)), so the first step draws z_1 = D + sigma_1 xi.
/// The walk over the geometric grid sigma_1 > ... > sigma_n then ends with z = D. The update is
/// DPM-Solver++(2M) (Lu et al. 2022; the ODE, DDIM-type) or its SDE form (DDPM-type) in the data
/// prediction form, first order at the first and last step.
/// </para>
/// Not thread-safe.
/// </summary>
public sealed class DenoisingDiffusionSampler(IScoreModel model, NoiseSchedule schedule, DenoisingDiffusionOptions? options = null)
{
    /// <summary>Random stream of the sampler's noise (<see cref="RandomStreams.DenoisingDiffusion"/>).</summary>
    public const uint NoiseStream = RandomStreams.DenoisingDiffusion;

    private readonly float[] timestep = new float[1];

    /// <summary>The grid in use.</summary>
    public DenoisingDiffusionOptions Options { get; } = Validate(options ?? new DenoisingDiffusionOptions());

    /// <summary>Network calls per draw.</summary>
    public int NetworkCalls => Options.Steps + 1;

    /// <summary>
    /// Draws x ([N, C, H, W]) from p(x | x^) with x^ = <paramref name="xHat"/> (one per chain, the shape of x)
    /// at level <paramref name="eta"/>. Noise is a function of (seed, draw offset + step, global sample index).
    /// </summary>
    /// <exception cref="ArgumentException">Shapes do not fit.</exception>
    /// <exception cref="ArgumentOutOfRangeException">eta is not positive and finite.</exception>
    /// <exception cref="OperationCanceledException">The token was cancelled.</exception>
    public void Sample(Tensor x, Tensor xHat, float eta, ulong seed, long firstSample = 0, ulong drawOffset = 0,
        CancellationToken cancellationToken = default)
    {
        using var pool = new TensorPool(x.Device);
        Sample(x, xHat, eta, seed, firstSample, drawOffset, pool, cancellationToken);
    }

    internal void Sample(Tensor x, Tensor xHat, float eta, ulong seed, long firstSample, ulong drawOffset, TensorPool pool,
        CancellationToken cancellationToken)
    {
        const string name = "denoising diffusion sampler";
        Shape.RequireRank(name, x, "x", 4);
        Shape.RequireSame(name, xHat, "x^", x, "x");
        if (x.C != model.Channels || (model.Height > 0 && x.H != model.Height) || (model.Width > 0 && x.W != model.Width))
            throw new ArgumentException($"{name}: the model takes [N, {model.Channels}, {model.Height}, {model.Width}] but x has shape {Shape.Format(x.Shape)}");
        if (!(eta > 0) || float.IsInfinity(eta)) throw new ArgumentOutOfRangeException(nameof(eta), eta, $"{name}: eta must be positive and finite");

        var sigmas = Grid(eta);
        bool sde = Options.Kind == DenoisingSamplerKind.Ddpm;
        using var eps = pool.Rent(x.Shape);
        using var prev = pool.Rent(x.Shape);
        using var u = pool.Rent(x.Shape);
        x.Clear();   // z is read (with weight 0) by the first step; pooled memory may hold NaN
        double e2 = (double)eta * eta;

        // Step 0, from sigma = infinity: m = x^, tau = eta; z_1 = D + sigma_1 xi.
        var level = NoiseLevelMap.For(schedule, eta);
        u.CopyFrom(xHat);
        Axpby.Run(0f, u, (float)level.SqrtAlphaBar, u);   // u = sqrt(a) x^ (never 0 * pooled garbage)
        double hPrev = double.PositiveInfinity;
        for (int i = 0; i <= sigmas.Length; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            double tau = i == 0 ? eta : Tau(eta, sigmas[i - 1]);
            timestep[0] = (float)level.Timestep;
            model.PredictEpsilon(u, timestep, eps);
            float ke = (float)(-tau * tau / Math.Max(tau, level.Sigma));
            DenoisingUpdate.Coefficients c;
            if (i == 0)
            {
                c = new DenoisingUpdate.Coefficients(0f, 1f, ke, 0f, 1f, 0f, (float)sigmas[0], 0f, 0f);
            }
            else
            {
                double st = sigmas[i - 1], ss = i < sigmas.Length ? sigmas[i] : 0;
                float wz = (float)(e2 / (e2 + st * st)), wa = (float)(st * st / (e2 + st * st));
                if (ss == 0) c = new DenoisingUpdate.Coefficients(wz, wa, ke, 0f, 1f, 0f, 0f, 0f, 0f);
                else
                {
                    double h = Math.Log(st / ss);
                    double q = sde ? ss * ss / (st * st) : ss / st;
                    double c1 = 1 - q, c2 = 0;
                    if (Options.SecondOrder && !double.IsInfinity(hPrev))
                    {
                        double r = hPrev / h;   // DPM-Solver++(2M), midpoint form: D + (D - D_prev) / (2 r)
                        c1 = (1 - q) * (1 + 1 / (2 * r));
                        c2 = -(1 - q) / (2 * r);
                    }
                    float noise = sde ? (float)(ss * Math.Sqrt(1 - q)) : 0f;
                    c = new DenoisingUpdate.Coefficients(wz, wa, ke, (float)q, (float)c1, (float)c2, noise, 0f, 0f);
                    hPrev = h;
                }
            }
            // The next network input u = sqrt(a') m' at the next level, fused into this step.
            if (i < sigmas.Length)
            {
                double sn = sigmas[i];
                var next = NoiseLevelMap.For(schedule, Tau(eta, sn));
                c = c with
                {
                    Uz = (float)(next.SqrtAlphaBar * e2 / (e2 + sn * sn)),
                    Ua = (float)(next.SqrtAlphaBar * sn * sn / (e2 + sn * sn)),
                };
                level = next;
            }
            var draw = new RandomDraw(seed, NoiseStream, drawOffset + (ulong)i).ForBatch(firstSample, x.ItemLength);
            DenoisingUpdate.Run(x, xHat, eps, prev, u, c, draw);
        }
    }

    /// <summary>sigma_1 ... sigma_n for level eta.</summary>
    public double[] Grid(double eta)
    {
        int n = Options.Steps;
        double hi = Options.SigmaMax * eta, lo = Options.SigmaMin * eta;
        return Ladders.Geometric(hi, lo, n);
    }

    private static double Tau(double eta, double sigma) => eta * sigma / Math.Sqrt(eta * eta + sigma * sigma);

    private static DenoisingDiffusionOptions Validate(DenoisingDiffusionOptions o)
    {
        if (o.Steps < 1) throw new ArgumentOutOfRangeException(nameof(o), o.Steps, "denoising diffusion sampler: Steps must be at least 1");
        if (!(o.SigmaMin > 0) || !(o.SigmaMax >= o.SigmaMin) || double.IsInfinity(o.SigmaMax))
            throw new ArgumentOutOfRangeException(nameof(o), $"denoising diffusion sampler: need 0 < SigmaMin <= SigmaMax < infinity, got {o.SigmaMin}, {o.SigmaMax}");
        return o;
    }
}

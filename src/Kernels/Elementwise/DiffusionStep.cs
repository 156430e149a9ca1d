using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Gemm;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Elementwise;

/// <summary>
/// The update every DDPM/DDIM step reduces to once its scalars are known:
/// x' = cx * x + ce * eps + sigma * z, z ~ N(0, I) drawn in the kernel. One read of x and eps, one write.
/// <see cref="Ddim"/> and <see cref="Ddpm"/> compute the scalars from alphas_cumprod.
/// </summary>
public static class DiffusionStep
{
    /// <summary>Scalars of one step: x' = X * x + Eps * eps + Sigma * z.</summary>
    public readonly record struct Coefficients(float X, float Eps, float Sigma);

    /// <summary>
    /// DDIM (Song et al. 2021, eq. 12): with a_t = alphas_cumprod[t], a_p that of the previous
    /// timestep, sigma = eta sqrt((1 - a_p) / (1 - a_t)) sqrt(1 - a_t / a_p),
    /// x0 = (x - sqrt(1 - a_t) eps) / sqrt(a_t) and x' = sqrt(a_p) x0 + sqrt(1 - a_p - sigma^2) eps + sigma z.
    /// </summary>
    public static Coefficients Ddim(double alphaT, double alphaPrev, double eta)
    {
        double sigma = eta * Math.Sqrt((1 - alphaPrev) / (1 - alphaT)) * Math.Sqrt(1 - alphaT / alphaPrev);
        double cx = Math.Sqrt(alphaPrev / alphaT);
        double ce = Math.Sqrt(Math.Max(1 - alphaPrev - sigma * sigma, 0)) - Math.Sqrt(alphaPrev) * Math.Sqrt(1 - alphaT) / Math.Sqrt(alphaT);
        return new Coefficients((float)cx, (float)ce, (float)sigma);
    }

    /// <summary>
    /// DDPM ancestral step (Ho et al. 2020, eqs. 6-7, as diffusers' DDPMScheduler without clipping):
    /// beta_t = 1 - a_t / a_p, mean = sqrt(a_p) beta_t / (1 - a_t) x0 + sqrt(1 - beta_t) (1 - a_p) / (1 - a_t) x,
    /// variance (1 - a_p) / (1 - a_t) beta_t ("fixed_small") or beta_t ("fixed_large").
    /// </summary>
    public static Coefficients Ddpm(double alphaT, double alphaPrev, bool fixedLarge = false)
    {
        double beta = 1 - alphaT / alphaPrev;
        double c0 = Math.Sqrt(alphaPrev) * beta / (1 - alphaT);
        double ct = Math.Sqrt(1 - beta) * (1 - alphaPrev) / (1 - alphaT);
        double variance = fixedLarge ? beta : (1 - alphaPrev) / (1 - alphaT) * beta;
        // x0 = (x - sqrt(1 - a_t) eps) / sqrt(a_t), folded into the coefficients of x and eps.
        double cx = c0 / Math.Sqrt(alphaT) + ct;
        double ce = -c0 * Math.Sqrt(1 - alphaT) / Math.Sqrt(alphaT);
        return new Coefficients((float)cx, (float)ce, (float)Math.Sqrt(Math.Max(variance, 0)));
    }

    /// <summary>The specification: a plain loop.</summary>
    public static void Reference(Span<float> x, ReadOnlySpan<float> eps, Coefficients c, RandomDraw draw)
    {
        for (int i = 0; i < x.Length; i++)
            x[i] = c.X * x[i] + c.Eps * eps[i] + (c.Sigma != 0 ? c.Sigma * draw.Normal(i) : 0);
    }

    /// <summary>One Philox block and (<see cref="VectorIO"/>) one 16-byte load per operand per whole quad; thread 0 does the
    /// partial quads (see <see cref="LangevinStep"/>).</summary>
    internal static void Kernel<TIO>(Index1D tid, ElementRange quads, QuadSplit split, ArrayView<float> x, ArrayView<float> eps,
        Coefficients c, QuadDraw draw) where TIO : struct, IQuadIO
    {
        // No noise draw at all for deterministic steps (eta = 0, last DDPM step): a loop without Philox code.
        if (c.Sigma != 0) Loop<TIO, Noisy>(tid, quads, split, x, eps, c, draw);
        else Loop<TIO, Quiet>(tid, quads, split, x, eps, c, draw);
    }

    private static void Loop<TIO, TNoise>(Index1D tid, ElementRange quads, QuadSplit split, ArrayView<float> x, ArrayView<float> eps,
        Coefficients c, QuadDraw draw) where TIO : struct, IQuadIO where TNoise : struct, INoiseFlag
    {
        if (tid == 0)
        {
            if (split.Lead > 0) Edge<TNoise>(0, split.Total, x, eps, c, draw);
            if (split.Tail > 0) Edge<TNoise>(split.FirstQuad + split.Full, split.Total, x, eps, c, draw);
        }
        var io = default(TIO);
        for (int q = quads.First(tid), end = quads.End(tid), stride = quads.Stride; q < end; q += stride)
        {
            int e = split.Lead + 4 * q;
            io.Store(x, e, Update<TNoise>(io.Load(x, e), io.Load(eps, e), c, split.FirstQuad + q, draw));
        }
    }

    private static void Edge<TNoise>(int q, int total, ArrayView<float> x, ArrayView<float> eps, Coefficients c, QuadDraw draw)
        where TNoise : struct, INoiseFlag
    {
        int i0 = draw.QuadStart(q);
        QuadEdge.Store(x, i0, total, Update<TNoise>(QuadEdge.Load(x, i0, total), QuadEdge.Load(eps, i0, total), c, q, draw));
    }

    private static Float4 Update<TNoise>(Float4 x, Float4 eps, Coefficients c, int q, QuadDraw draw) where TNoise : struct, INoiseFlag
    {
        bool draws = default(TNoise).Draws;
        float z0 = 0, z1 = 0, z2 = 0, z3 = 0;
        if (draws) draw.Normal4(q, out z0, out z1, out z2, out z3);
        x.X = Lane(x.X, eps.X, c, draws, z0);
        x.Y = Lane(x.Y, eps.Y, c, draws, z1);
        x.Z = Lane(x.Z, eps.Z, c, draws, z2);
        x.W = Lane(x.W, eps.W, c, draws, z3);
        return x;
    }

    /// <summary>One element; <paramref name="draws"/> is c.Sigma != 0.</summary>
    private static float Lane(float x, float eps, Coefficients c, bool draws, float z)
    {
        float v = c.X * x + c.Eps * eps;
        if (draws) v += c.Sigma * z;
        return v;
    }

    /// <summary>x = c.X * x + c.Eps * eps + c.Sigma * z in place.</summary>
    public static void Run(Tensor x, Tensor eps, Coefficients c, RandomDraw draw)
    {
        Shape.RequireSame("diffusion step", eps, "eps", x, "x");
        var split = QuadSplit.For(x.Length, draw);
        var plan = x.Device.Plan(split.Full);
        var k = split.Aligned(x.View, eps.View)
            ? x.Device.Kernel("diffusion-step", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, QuadSplit,
                ArrayView<float>, ArrayView<float>, Coefficients, QuadDraw>(Kernel<VectorIO>))
            : x.Device.Kernel("diffusion-step-unaligned", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, QuadSplit,
                ArrayView<float>, ArrayView<float>, Coefficients, QuadDraw>(Kernel<ScalarIO>));
        k(plan.Threads, plan, split, x.View, eps.View, c, new QuadDraw(draw));
    }

    /// <summary>Rows of the per-run table <see cref="RunFromTable"/> reads: [timestep, X, Eps, Sigma, step index].</summary>
    public const int TableWidth = 5;

    /// <summary>The step's coefficients read from the device (a <see cref="StepTable"/> row: [timestep, X, Eps, Sigma, k]) and
    /// its noise k steps after <paramref name="draw"/>'s: the same arithmetic as <see cref="Kernel{TIO}"/> on the same
    /// values, so bitwise its result.</summary>
    internal static void TableKernel<TIO>(Index1D tid, ElementRange quads, QuadSplit split, ArrayView<float> x, ArrayView<float> eps,
        ArrayView<float> row, QuadDraw draw) where TIO : struct, IQuadIO =>
        Kernel<TIO>(tid, quads, split, x, eps, new Coefficients(row[1], row[2], row[3]), draw.Later((uint)(int)row[4]));

    /// <summary>x = X * x + Eps * eps + Sigma * z in place, with X, Eps, Sigma and k read on the device from
    /// <paramref name="row"/> ([<see cref="TableWidth"/>]: timestep, X, Eps, Sigma, k) and z the noise of step
    /// <paramref name="draw"/>.Step + k. Launched with the same arguments at every step of a run.</summary>
    /// <exception cref="ArgumentException">A shape does not fit, or the tensors live on different devices.</exception>
    public static void RunFromTable(Tensor x, Tensor eps, Tensor row, RandomDraw draw)
    {
        Shape.RequireSame("diffusion step", eps, "eps", x, "x");
        Shape.Require("diffusion step", row, "row", TableWidth);
        Shape.RequireSameDevice("diffusion step", x, row);
        var split = QuadSplit.For(x.Length, draw);
        var plan = x.Device.Plan(split.Full);
        var k = split.Aligned(x.View, eps.View)
            ? x.Device.Kernel("diffusion-step-table", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, QuadSplit,
                ArrayView<float>, ArrayView<float>, ArrayView<float>, QuadDraw>(TableKernel<VectorIO>))
            : x.Device.Kernel("diffusion-step-table-unaligned", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, QuadSplit,
                ArrayView<float>, ArrayView<float>, ArrayView<float>, QuadDraw>(TableKernel<ScalarIO>));
        k(plan.Threads, plan, split, x.View, eps.View, row.View, new QuadDraw(draw));
    }
}

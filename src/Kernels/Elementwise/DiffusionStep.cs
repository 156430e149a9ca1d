using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
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

    /// <summary>One Philox block per iteration, four elements each (bitwise the per-element draw; see <see cref="LangevinStep"/>).</summary>
    internal static void Kernel(Index1D tid, ElementRange quads, int total, ArrayView<float> x, ArrayView<float> eps, Coefficients c, RandomDraw draw)
    {
        for (int k = 0; k < quads.Count; k++)
        {
            int q = quads.Index(tid, k);
            if (q >= quads.Total) return;
            float z0 = 0, z1 = 0, z2 = 0, z3 = 0;
            // No noise draw at all for deterministic steps (eta = 0, last DDPM step).
            if (c.Sigma != 0) draw.NormalQuad(q, out z0, out z1, out z2, out z3);
            int i0 = draw.QuadStart(q);
            // The four lanes written out (see LangevinStep).
            Lane(i0, total, x, eps, c, z0);
            Lane(i0 + 1, total, x, eps, c, z1);
            Lane(i0 + 2, total, x, eps, c, z2);
            Lane(i0 + 3, total, x, eps, c, z3);
        }
    }

    private static void Lane(int i, int total, ArrayView<float> x, ArrayView<float> eps, Coefficients c, float z)
    {
        if (i < 0 || i >= total) return;
        float v = c.X * x[i] + c.Eps * eps[i];
        if (c.Sigma != 0) v += c.Sigma * z;
        x[i] = v;
    }

    /// <summary>x = c.X * x + c.Eps * eps + c.Sigma * z in place.</summary>
    public static void Run(Tensor x, Tensor eps, Coefficients c, RandomDraw draw)
    {
        Shape.RequireSame("diffusion step", eps, "eps", x, "x");
        var plan = x.Device.Plan(draw.Quads(x.Length));
        var k = x.Device.Kernel("diffusion-step", acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int,
            ArrayView<float>, ArrayView<float>, Coefficients, RandomDraw>(Kernel));
        k(plan.Threads, plan, x.Length, x.View, eps.View, c, draw);
    }
}

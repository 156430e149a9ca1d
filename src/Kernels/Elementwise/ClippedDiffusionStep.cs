using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Reductions;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Elementwise;

/// <summary>
/// A DDPM/DDIM step whose predicted x0 is clipped or dynamically thresholded first, as diffusers'
/// DDPMScheduler.step and DDIMScheduler.step do with clip_sample or thresholding set:
/// x0 = (x - sqrt(1 - a_t) eps) / sqrt(a_t); x0' = clamp(x0, -r, r) (clip_sample, r = clip_sample_range) or
/// clamp(x0, -s_n, s_n) / s_n with item n's threshold s_n (<see cref="DynamicThreshold"/>);
/// x' = X0 * x0' + X * x + Eps * eps + Sigma * z. One read of x and eps, one write, as <see cref="DiffusionStep"/>;
/// that unclipped step stays the default path (its fused coefficients fold x0 away, which a clamp forbids).
/// </summary>
public static class ClippedDiffusionStep
{
    /// <summary>Scalars of one step: x0 = (x - SqrtOneMinusAlpha * eps) / SqrtAlpha, then x' = X0 * x0' + X * x + Eps * eps + Sigma * z.</summary>
    public readonly record struct Coefficients(float SqrtAlpha, float SqrtOneMinusAlpha, float X0, float X, float Eps, float Sigma);

    /// <summary>
    /// DDPM (Ho et al. 2020, eqs. 6-7, diffusers' DDPMScheduler.step stages 4-6): beta_t = 1 - a_t / a_p,
    /// x' = sqrt(a_p) beta_t / (1 - a_t) x0' + sqrt(a_t / a_p) (1 - a_p) / (1 - a_t) x + sigma z, sigma as
    /// <see cref="DiffusionStep.Ddpm"/> ("fixed_small" or "fixed_large").
    /// </summary>
    public static Coefficients Ddpm(double alphaT, double alphaPrev, bool fixedLarge = false)
    {
        double beta = 1 - alphaT / alphaPrev;
        double c0 = Math.Sqrt(alphaPrev) * beta / (1 - alphaT);
        double ct = Math.Sqrt(alphaT / alphaPrev) * (1 - alphaPrev) / (1 - alphaT);
        return new Coefficients((float)Math.Sqrt(alphaT), (float)Math.Sqrt(1 - alphaT), (float)c0, (float)ct, 0f,
            DiffusionStep.Ddpm(alphaT, alphaPrev, fixedLarge).Sigma);
    }

    /// <summary>
    /// DDIM (Song et al. 2021, eq. 12, diffusers' DDIMScheduler.step stages 5-7): x' = sqrt(a_p) x0' + d eps + sigma z with
    /// d = sqrt(1 - a_p - sigma^2) and the model's eps. With <paramref name="useClippedModelOutput"/> (diffusers' step
    /// argument of that name, GLIDE's choice) eps is first re-derived from the clipped x0,
    /// eps' = (x - sqrt(a_t) x0') / sqrt(1 - a_t), which folds into the coefficients of x0' and x.
    /// </summary>
    public static Coefficients Ddim(double alphaT, double alphaPrev, double eta, bool useClippedModelOutput = false)
    {
        float sigma = DiffusionStep.Ddim(alphaT, alphaPrev, eta).Sigma;
        double d = Math.Sqrt(Math.Max(1 - alphaPrev - (double)sigma * sigma, 0));
        double sa = Math.Sqrt(alphaT), s1 = Math.Sqrt(1 - alphaT);
        return useClippedModelOutput
            ? new Coefficients((float)sa, (float)s1, (float)(Math.Sqrt(alphaPrev) - d * sa / s1), (float)(d / s1), 0f, sigma)
            : new Coefficients((float)sa, (float)s1, (float)Math.Sqrt(alphaPrev), 0f, (float)d, sigma);
    }

    /// <summary>diffusers' stage "clip or threshold predicted x_0" for one value: clamp(x0, -clipRange, clipRange), or with
    /// <paramref name="thresholded"/> non-zero clamp(x0, -s, s) / s for the item's threshold s.</summary>
    public static float ClipX0(float x0, float clipRange, int thresholded, float s) =>
        thresholded == 0 ? DynamicThreshold.Clamp(x0, -clipRange, clipRange) : DynamicThreshold.Clamp(x0, -s, s) / s;

    /// <summary>The specification: a plain loop. <paramref name="thresholds"/> empty clips to [-clipRange, clipRange];
    /// else it holds one threshold per item (x's length must be a multiple of its length).</summary>
    public static void Reference(Span<float> x, ReadOnlySpan<float> eps, Coefficients c, float clipRange, ReadOnlySpan<float> thresholds, RandomDraw draw)
    {
        int itemLength = thresholds.Length == 0 ? x.Length : x.Length / thresholds.Length;
        for (int i = 0; i < x.Length; i++)
        {
            float x0 = DynamicThreshold.PredictX0(x[i], eps[i], c.SqrtAlpha, c.SqrtOneMinusAlpha);
            float p = ClipX0(x0, clipRange, thresholds.Length == 0 ? 0 : 1, thresholds.Length == 0 ? 0f : thresholds[i / itemLength]);
            x[i] = c.X0 * p + c.X * x[i] + c.Eps * eps[i] + (c.Sigma != 0 ? c.Sigma * draw.Normal(i) : 0);
        }
    }

    internal static void Kernel(Index1D tid, ElementRange r, ArrayView<float> x, ArrayView<float> eps, Coefficients c,
        float clipRange, int itemLength, int thresholded, ArrayView<float> thresholds, RandomDraw draw)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            float xi = x[i], ei = eps[i];
            float x0 = DynamicThreshold.PredictX0(xi, ei, c.SqrtAlpha, c.SqrtOneMinusAlpha);
            float p = ClipX0(x0, clipRange, thresholded, thresholded == 0 ? 0f : thresholds[i / itemLength]);
            float v = c.X0 * p + c.X * xi + c.Eps * ei;
            if (c.Sigma != 0) v += c.Sigma * draw.Normal(i);
            x[i] = v;
        }
    }

    /// <summary>The step in place, x0 clipped to [-clipRange, clipRange] when <paramref name="thresholds"/> is null,
    /// else thresholded by item (thresholds [N], from <see cref="DynamicThreshold.Run"/>).</summary>
    public static void Run(Tensor x, Tensor eps, Coefficients c, float clipRange, Tensor? thresholds, RandomDraw draw)
    {
        const string op = "clipped diffusion step";
        Shape.RequireSame(op, eps, "eps", x, "x");
        if (thresholds is not null) Shape.Require(op, thresholds, "thresholds", x.N);
        var plan = x.Device.Plan(x.Length);
        var k = x.Device.Kernel("clipped-diffusion-step", acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange,
            ArrayView<float>, ArrayView<float>, Coefficients, float, int, int, ArrayView<float>, RandomDraw>(Kernel));
        k(plan.Threads, plan, x.View, eps.View, c, clipRange, Math.Max(x.ItemLength, 1), thresholds is null ? 0 : 1,
            (thresholds ?? x).View, draw);
    }
}

using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Operators;

/// <summary>
/// The quantizer of one-bit sensing with its noise: u = sign(u + sigma z) in place, sign(v) = +1 for v &gt;= 0 and -1
/// otherwise, z ~ N(0, I) drawn in the kernel from (seed, stream, step, index) when sigma &gt; 0, so the noise enters
/// before the quantizer as the probit likelihood assumes.
/// </summary>
public static class SignQuantize
{
    /// <summary>The quantizer: +1 where v &gt;= 0, else -1.</summary>
    public static float Sign(float v) => v >= 0f ? 1f : -1f;

    /// <summary>The specification: u[i] = sign(u[i] + sigma draw.Normal(i)) (no noise drawn when sigma is 0).</summary>
    public static void Reference(Span<float> u, float sigma, RandomDraw draw)
    {
        for (int i = 0; i < u.Length; i++) u[i] = Sign(sigma > 0f ? u[i] + sigma * draw.Normal(i) : u[i]);
    }

    internal static void Kernel(Index1D tid, ElementRange r, ArrayView<float> u, float sigma, RandomDraw draw)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            float v = u[i];
            if (sigma > 0f) v += sigma * draw.Normal(i);
            u[i] = v >= 0f ? 1f : -1f;
        }
    }

    /// <summary>u = sign(u + sigma z) in place, z from <paramref name="draw"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">sigma is negative or not finite.</exception>
    public static void Run(Tensor u, float sigma, RandomDraw draw)
    {
        if (!(sigma >= 0) || float.IsInfinity(sigma))
            throw new ArgumentOutOfRangeException(nameof(sigma), sigma, "sign quantize: sigma must be >= 0 and finite");
        var plan = u.Device.Plan(u.Length);
        if (plan.Total == 0) return;
        var k = u.Device.Kernel("one-bit-sign", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange,
            ArrayView<float>, float, RandomDraw>(Kernel));
        k(plan.Threads, plan, u.View, sigma, draw);
    }
}

using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Elementwise;

/// <summary>
/// One step of DPnP's denoising diffusion sampler, fused into one pass: the denoiser estimate
/// D = Wz z + Wa a + Ke eps (a is the noisy image x^ the sampler conditions on, eps the network's
/// output), the multistep update z' = Cx z + C1 D + C2 prev + Noise * xi, prev = D for the next step,
/// and the next network input u = Uz z' + Ua a. Reads z, a, eps, prev once; writes z, prev, u once.
/// </summary>
public static class DenoisingUpdate
{
    /// <summary>Scalars of one step.</summary>
    public readonly record struct Coefficients(float Wz, float Wa, float Ke, float Cx, float C1, float C2, float Noise, float Uz, float Ua);

    /// <summary>The specification: a plain loop with the same counter-based noise.</summary>
    public static void Reference(Span<float> z, ReadOnlySpan<float> a, ReadOnlySpan<float> eps, Span<float> prev, Span<float> u,
        Coefficients c, RandomDraw draw)
    {
        for (int i = 0; i < z.Length; i++)
        {
            float d = c.Wz * z[i] + c.Wa * a[i] + c.Ke * eps[i];
            float v = c.Cx * z[i] + c.C1 * d + (c.C2 != 0 ? c.C2 * prev[i] : 0);
            if (c.Noise != 0) v += c.Noise * draw.Normal(i);
            z[i] = v;
            prev[i] = d;
            u[i] = c.Uz * v + c.Ua * a[i];
        }
    }

    internal static void Kernel(Index1D tid, ElementRange r, Coefficients c, ArrayView<float> z, ArrayView<float> a,
        ArrayView<float> eps, ArrayView<float> prev, ArrayView<float> u, RandomDraw draw)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            float zi = z[i], ai = a[i];
            float d = c.Wz * zi + c.Wa * ai + c.Ke * eps[i];
            float v = c.Cx * zi + c.C1 * d;
            if (c.C2 != 0) v += c.C2 * prev[i];
            if (c.Noise != 0) v += c.Noise * draw.Normal(i);
            z[i] = v;
            prev[i] = d;
            u[i] = c.Uz * v + c.Ua * ai;
        }
    }

    /// <summary>Applies the step in place to z, prev and u (all the shape of z); with C2 = 0 prev is only written.</summary>
    /// <exception cref="ArgumentException">Shapes differ.</exception>
    public static void Run(Tensor z, Tensor a, Tensor eps, Tensor prev, Tensor u, Coefficients c, RandomDraw draw)
    {
        const string op = "denoising update";
        Shape.RequireSame(op, a, "a", z, "z");
        Shape.RequireSame(op, eps, "eps", z, "z");
        Shape.RequireSame(op, prev, "prev", z, "z");
        Shape.RequireSame(op, u, "u", z, "z");
        var plan = z.Device.Plan(z.Length);
        var k = z.Device.Kernel("denoising-update", acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, Coefficients,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, RandomDraw>(Kernel));
        k(plan.Threads, plan, c, z.View, a.View, eps.View, prev.View, u.View, draw);
    }
}

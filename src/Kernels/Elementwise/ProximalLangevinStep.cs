using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Elementwise;

/// <summary>
/// One Langevin step on log L(x) - ||x - a||^2 / (2 eta^2) with the Gaussian term integrated exactly
/// (an exponential integrator): x' = a + C1 (x - a) + C2 g + C3 z, where g is the log-likelihood gradient
/// at x, C1 = exp(-h / eta^2), C2 = eta^2 (1 - C1) and C3 = eta sqrt(1 - C1^2). Without a likelihood the
/// step draws N(a, eta^2 I) exactly for any h. DPnP's proximal consistency sampler (Xu and Chi 2024).
/// </summary>
public static class ProximalLangevinStep
{
    /// <summary>The specification: a plain loop with the same counter-based noise.</summary>
    public static void Reference(Span<float> x, ReadOnlySpan<float> anchor, ReadOnlySpan<float> gradient, float c1, float c2, float c3, RandomDraw draw)
    {
        for (int i = 0; i < x.Length; i++)
            x[i] = anchor[i] + c1 * (x[i] - anchor[i]) + c2 * gradient[i] + c3 * draw.Normal(i);
    }

    /// <summary>One Philox block per iteration, four elements each (bitwise the per-element draw; see <see cref="LangevinStep"/>).</summary>
    internal static void Kernel(Index1D tid, ElementRange quads, int total, ArrayView<float> x, ArrayView<float> a, ArrayView<float> g,
        float c1, float c2, float c3, RandomDraw draw)
    {
        for (int k = 0; k < quads.Count; k++)
        {
            int q = quads.Index(tid, k);
            if (q >= quads.Total) return;
            draw.NormalQuad(q, out float z0, out float z1, out float z2, out float z3);
            int i0 = draw.QuadStart(q);
            for (int j = 0; j < 4; j++)
            {
                int i = i0 + j;
                if (i < 0 || i >= total) continue;
                float z = j == 0 ? z0 : j == 1 ? z1 : j == 2 ? z2 : z3;
                float ai = a[i];
                x[i] = ai + c1 * (x[i] - ai) + c2 * g[i] + c3 * z;
            }
        }
    }

    /// <summary>x = a + c1 (x - a) + c2 g + c3 z in place.</summary>
    /// <exception cref="ArgumentException">Shapes differ.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A coefficient is not finite.</exception>
    public static void Run(Tensor x, Tensor anchor, Tensor gradient, float c1, float c2, float c3, RandomDraw draw)
    {
        const string op = "proximal langevin step";
        Shape.RequireSame(op, anchor, "anchor", x, "x");
        Shape.RequireSame(op, gradient, "gradient", x, "x");
        if (!float.IsFinite(c1) || !float.IsFinite(c2) || !float.IsFinite(c3))
            throw new ArgumentOutOfRangeException(nameof(c1), $"{op}: coefficients must be finite, got {c1}, {c2}, {c3}");
        var plan = x.Device.Plan(draw.Quads(x.Length));
        var k = x.Device.Kernel("proximal-langevin-step", acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, float, float, float, RandomDraw>(Kernel));
        k(plan.Threads, plan, x.Length, x.View, anchor.View, gradient.View, c1, c2, c3, draw);
    }
}

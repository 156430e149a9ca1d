using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Gemm;
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

    /// <summary>One Philox block and (<see cref="VectorIO"/>) one 16-byte load per operand per whole quad; thread 0 does the
    /// partial quads (see <see cref="LangevinStep"/>).</summary>
    internal static void Kernel<TIO>(Index1D tid, ElementRange quads, QuadSplit split, ArrayView<float> x, ArrayView<float> a,
        ArrayView<float> g, float c1, float c2, float c3, QuadDraw draw) where TIO : struct, IQuadIO
    {
        if (tid == 0)
        {
            if (split.Lead > 0) Edge(0, split.Total, x, a, g, c1, c2, c3, draw);
            if (split.Tail > 0) Edge(split.FirstQuad + split.Full, split.Total, x, a, g, c1, c2, c3, draw);
        }
        var io = default(TIO);
        for (int q = quads.First(tid), end = quads.End(tid), stride = quads.Stride; q < end; q += stride)
        {
            int e = split.Lead + 4 * q;
            io.Store(x, e, Update(io.Load(x, e), io.Load(a, e), io.Load(g, e), c1, c2, c3, split.FirstQuad + q, draw));
        }
    }

    private static void Edge(int q, int total, ArrayView<float> x, ArrayView<float> a, ArrayView<float> g, float c1, float c2, float c3, QuadDraw draw)
    {
        int i0 = draw.QuadStart(q);
        QuadEdge.Store(x, i0, total, Update(QuadEdge.Load(x, i0, total), QuadEdge.Load(a, i0, total), QuadEdge.Load(g, i0, total),
            c1, c2, c3, q, draw));
    }

    private static Float4 Update(Float4 x, Float4 a, Float4 g, float c1, float c2, float c3, int q, QuadDraw draw)
    {
        draw.Normal4(q, out float z0, out float z1, out float z2, out float z3);
        x.X = a.X + c1 * (x.X - a.X) + c2 * g.X + c3 * z0;
        x.Y = a.Y + c1 * (x.Y - a.Y) + c2 * g.Y + c3 * z1;
        x.Z = a.Z + c1 * (x.Z - a.Z) + c2 * g.Z + c3 * z2;
        x.W = a.W + c1 * (x.W - a.W) + c2 * g.W + c3 * z3;
        return x;
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
        var split = QuadSplit.For(x.Length, draw);
        var plan = x.Device.Plan(split.Full);
        var k = split.Aligned(x.View, anchor.View, gradient.View)
            ? x.Device.Kernel("proximal-langevin-step", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, QuadSplit,
                ArrayView<float>, ArrayView<float>, ArrayView<float>, float, float, float, QuadDraw>(Kernel<VectorIO>))
            : x.Device.Kernel("proximal-langevin-step-unaligned", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, QuadSplit,
                ArrayView<float>, ArrayView<float>, ArrayView<float>, float, float, float, QuadDraw>(Kernel<ScalarIO>));
        k(plan.Threads, plan, split, x.View, anchor.View, gradient.View, c1, c2, c3, new QuadDraw(draw));
    }
}

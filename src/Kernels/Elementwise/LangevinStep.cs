using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Gemm;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Elementwise;

/// <summary>
/// One unadjusted Langevin step, fused: x += h * (s + g) + sqrt(2h) * z, where s is the prior score,
/// g the likelihood gradient and z ~ N(0, I) drawn in the kernel from (seed, stream, step, index).
/// Reads x, s, g once and writes x once (Xun, Gupta, Price 2025, the annealed Langevin update).
/// </summary>
public static class LangevinStep
{
    /// <summary>The specification: a plain loop with the same counter-based noise.</summary>
    public static void Reference(Span<float> x, ReadOnlySpan<float> score, ReadOnlySpan<float> gradient, float h, RandomDraw draw)
    {
        float noise = MathF.Sqrt(2 * h);
        for (int i = 0; i < x.Length; i++)
            x[i] += h * (score[i] + (gradient.IsEmpty ? 0 : gradient[i])) + noise * draw.Normal(i);
    }

    /// <summary>One Philox block per whole quad (<see cref="QuadSplit"/>): four elements share the block and its two
    /// Box-Muller pairs, drawing bitwise what <see cref="RandomDraw.Normal"/> gives per element, with one index and
    /// (<see cref="VectorIO"/>) one 16-byte load per operand and one store. Thread 0 does the partial quads at the ends.</summary>
    internal static void Kernel<TIO>(Index1D tid, ElementRange quads, QuadSplit split, ArrayView<float> x, ArrayView<float> s,
        ArrayView<float> g, float gWeight, float h, float noise, QuadDraw draw) where TIO : struct, IQuadIO
    {
        if (tid == 0)
        {
            if (split.Lead > 0) Edge(0, split.Total, x, s, g, gWeight, h, noise, draw);
            if (split.Tail > 0) Edge(split.FirstQuad + split.Full, split.Total, x, s, g, gWeight, h, noise, draw);
        }
        var io = default(TIO);
        for (int q = quads.First(tid), end = quads.End(tid), stride = quads.Stride; q < end; q += stride)
        {
            int e = split.Lead + 4 * q;
            io.Store(x, e, Update(io.Load(x, e), io.Load(s, e), io.Load(g, e), gWeight, h, noise, split.FirstQuad + q, draw));
        }
    }

    private static void Edge(int q, int total, ArrayView<float> x, ArrayView<float> s, ArrayView<float> g, float gWeight, float h, float noise, QuadDraw draw)
    {
        int i0 = draw.QuadStart(q);
        QuadEdge.Store(x, i0, total, Update(QuadEdge.Load(x, i0, total), QuadEdge.Load(s, i0, total), QuadEdge.Load(g, i0, total),
            gWeight, h, noise, q, draw));
    }

    /// <summary>The four lanes of quad <paramref name="q"/> (written out: each lane's normal is a register, not a select).</summary>
    private static Float4 Update(Float4 x, Float4 s, Float4 g, float gWeight, float h, float noise, int q, QuadDraw draw)
    {
        draw.Normal4(q, out float z0, out float z1, out float z2, out float z3);
        x.X += h * (s.X + gWeight * g.X) + noise * z0;
        x.Y += h * (s.Y + gWeight * g.Y) + noise * z1;
        x.Z += h * (s.Z + gWeight * g.Z) + noise * z2;
        x.W += h * (s.W + gWeight * g.W) + noise * z3;
        return x;
    }

    /// <summary>x += h (score + gradient) + sqrt(2h) z; <paramref name="gradient"/> may be null (zero).</summary>
    /// <exception cref="ArgumentException">Shapes differ.</exception>
    /// <exception cref="ArgumentOutOfRangeException">h is not positive and finite.</exception>
    public static void Run(Tensor x, Tensor score, Tensor? gradient, float h, RandomDraw draw)
    {
        Shape.RequireSame("langevin step", score, "score", x, "x");
        if (gradient is not null) Shape.RequireSame("langevin step", gradient, "gradient", x, "x");
        if (!(h > 0) || float.IsInfinity(h))
            throw new ArgumentOutOfRangeException(nameof(h), h, "langevin step: step size h must be positive and finite");
        var split = QuadSplit.For(x.Length, draw);
        var plan = x.Device.Plan(split.Full);
        var g = (gradient ?? score).View;
        var k = split.Aligned(x.View, score.View, g)
            ? x.Device.Kernel("langevin-step", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, QuadSplit,
                ArrayView<float>, ArrayView<float>, ArrayView<float>, float, float, float, QuadDraw>(Kernel<VectorIO>))
            : x.Device.Kernel("langevin-step-unaligned", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, QuadSplit,
                ArrayView<float>, ArrayView<float>, ArrayView<float>, float, float, float, QuadDraw>(Kernel<ScalarIO>));
        k(plan.Threads, plan, split, x.View, score.View, g, gradient is null ? 0f : 1f, h, MathF.Sqrt(2 * h), new QuadDraw(draw));
    }
}

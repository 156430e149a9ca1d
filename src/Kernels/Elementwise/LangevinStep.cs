using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
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

    /// <summary>One Philox block per iteration (<paramref name="quads"/> plans the draw's quads): four elements share
    /// the block and its two Box-Muller pairs, drawing bitwise what <see cref="RandomDraw.Normal"/> gives per element.</summary>
    internal static void Kernel(Index1D tid, ElementRange quads, int total, ArrayView<float> x, ArrayView<float> s, ArrayView<float> g,
        float gWeight, float h, float noise, RandomDraw draw)
    {
        for (int k = 0; k < quads.Count; k++)
        {
            int q = quads.Index(tid, k);
            if (q >= quads.Total) return;
            draw.NormalQuad(q, out float z0, out float z1, out float z2, out float z3);
            int i0 = draw.QuadStart(q);
            // The four lanes written out: no lane loop, and each lane's normal is a register, not a select.
            Lane(i0, total, x, s, g, gWeight, h, noise, z0);
            Lane(i0 + 1, total, x, s, g, gWeight, h, noise, z1);
            Lane(i0 + 2, total, x, s, g, gWeight, h, noise, z2);
            Lane(i0 + 3, total, x, s, g, gWeight, h, noise, z3);
        }
    }

    private static void Lane(int i, int total, ArrayView<float> x, ArrayView<float> s, ArrayView<float> g, float gWeight, float h, float noise, float z)
    {
        if (i >= 0 && i < total) x[i] += h * (s[i] + gWeight * g[i]) + noise * z;
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
        var plan = x.Device.Plan(draw.Quads(x.Length));
        var k = x.Device.Kernel("langevin-step", acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, float, float, float, RandomDraw>(Kernel));
        k(plan.Threads, plan, x.Length, x.View, score.View, (gradient ?? score).View, gradient is null ? 0f : 1f, h, MathF.Sqrt(2 * h), draw);
    }
}

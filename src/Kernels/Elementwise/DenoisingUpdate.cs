using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Gemm;
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

    /// <summary>One Philox block and (<see cref="VectorIO"/>) one 16-byte load or store per buffer per whole quad; thread 0
    /// does the partial quads (see <see cref="LangevinStep"/>).</summary>
    internal static void Kernel<TIO>(Index1D tid, ElementRange quads, QuadSplit split, Coefficients c, ArrayView<float> z, ArrayView<float> a,
        ArrayView<float> eps, ArrayView<float> prev, ArrayView<float> u, QuadDraw draw) where TIO : struct, IQuadIO
    {
        if (c.Noise != 0) Loop<TIO, Noisy>(tid, quads, split, c, z, a, eps, prev, u, draw);
        else Loop<TIO, Quiet>(tid, quads, split, c, z, a, eps, prev, u, draw);
    }

    private static void Loop<TIO, TNoise>(Index1D tid, ElementRange quads, QuadSplit split, Coefficients c, ArrayView<float> z, ArrayView<float> a,
        ArrayView<float> eps, ArrayView<float> prev, ArrayView<float> u, QuadDraw draw) where TIO : struct, IQuadIO where TNoise : struct, INoiseFlag
    {
        if (tid == 0)
        {
            if (split.Lead > 0) Edge<TNoise>(0, split.Total, c, z, a, eps, prev, u, draw);
            if (split.Tail > 0) Edge<TNoise>(split.FirstQuad + split.Full, split.Total, c, z, a, eps, prev, u, draw);
        }
        var io = default(TIO);
        for (int q = quads.First(tid), end = quads.End(tid), stride = quads.Stride; q < end; q += stride)
        {
            int e = split.Lead + 4 * q;
            // Draw first, load after (see QuadNoise).
            var n = QuadNoise.Of<TNoise>(split.FirstQuad + q, draw);
            var zv = io.Load(z, e);
            var av = io.Load(a, e);
            // With C2 = 0 prev is not read (it may hold garbage on the first step).
            var pv = c.C2 != 0 ? io.Load(prev, e) : default;
            var d = Update<TNoise>(ref zv, av, io.Load(eps, e), pv, c, n, out var uv);
            io.Store(z, e, zv);
            io.Store(prev, e, d);
            io.Store(u, e, uv);
        }
    }

    private static void Edge<TNoise>(int q, int total, Coefficients c, ArrayView<float> z, ArrayView<float> a, ArrayView<float> eps,
        ArrayView<float> prev, ArrayView<float> u, QuadDraw draw) where TNoise : struct, INoiseFlag
    {
        int i0 = draw.QuadStart(q);
        var n = QuadNoise.Of<TNoise>(q, draw);
        var zv = QuadEdge.Load(z, i0, total);
        var pv = c.C2 != 0 ? QuadEdge.Load(prev, i0, total) : default;
        var d = Update<TNoise>(ref zv, QuadEdge.Load(a, i0, total), QuadEdge.Load(eps, i0, total), pv, c, n, out var uv);
        QuadEdge.Store(z, i0, total, zv);
        QuadEdge.Store(prev, i0, total, d);
        QuadEdge.Store(u, i0, total, uv);
    }

    /// <summary>The four lanes: z becomes z', the result is the denoiser estimate D (the next prev), u the next input.</summary>
    private static Float4 Update<TNoise>(ref Float4 z, Float4 a, Float4 eps, Float4 prev, Coefficients c, Float4 n, out Float4 u)
        where TNoise : struct, INoiseFlag
    {
        bool draws = default(TNoise).Draws;
        Float4 d = default;
        u = default;
        d.X = Lane(ref z.X, a.X, eps.X, prev.X, c, draws, n.X, out u.X);
        d.Y = Lane(ref z.Y, a.Y, eps.Y, prev.Y, c, draws, n.Y, out u.Y);
        d.Z = Lane(ref z.Z, a.Z, eps.Z, prev.Z, c, draws, n.Z, out u.Z);
        d.W = Lane(ref z.W, a.W, eps.W, prev.W, c, draws, n.W, out u.W);
        return d;
    }

    /// <summary>One element; <paramref name="draws"/> is c.Noise != 0.</summary>
    private static float Lane(ref float z, float a, float eps, float prev, Coefficients c, bool draws, float n, out float u)
    {
        float d = c.Wz * z + c.Wa * a + c.Ke * eps;
        float v = c.Cx * z + c.C1 * d;
        if (c.C2 != 0) v += c.C2 * prev;
        if (draws) v += c.Noise * n;
        z = v;
        u = c.Uz * v + c.Ua * a;
        return d;
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
        var split = QuadSplit.For(z.Length, draw);
        var plan = z.Device.Plan(split.Full);
        var k = split.Aligned(z.View, a.View, eps.View, prev.View, u.View)
            ? z.Device.Kernel("denoising-update", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, QuadSplit, Coefficients,
                ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, QuadDraw>(Kernel<VectorIO>))
            : z.Device.Kernel("denoising-update-unaligned", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, QuadSplit, Coefficients,
                ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, QuadDraw>(Kernel<ScalarIO>));
        k(plan.Threads, plan, split, c, z.View, a.View, eps.View, prev.View, u.View, new QuadDraw(draw));
    }
}

using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Gemm;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Elementwise;

/// <summary>x += sigma z with z ~ N(0, I) drawn in the kernel: measurement noise, and the nested
/// noise of annealed measurements.</summary>
public static class AddNoise
{
    /// <summary>The specification: a plain loop with the same counter-based noise.</summary>
    public static void Reference(Span<float> x, float sigma, RandomDraw draw)
    {
        for (int i = 0; i < x.Length; i++) x[i] += sigma * draw.Normal(i);
    }

    /// <summary>One Philox block and (<see cref="VectorIO"/>) one 16-byte load and store per whole quad; thread 0 does the
    /// partial quads (see <see cref="LangevinStep"/>).</summary>
    internal static void Kernel<TIO>(Index1D tid, ElementRange quads, QuadSplit split, float sigma, QuadDraw draw, ArrayView<float> x)
        where TIO : struct, IQuadIO
    {
        if (tid == 0)
        {
            if (split.Lead > 0) Edge(0, split.Total, sigma, draw, x);
            if (split.Tail > 0) Edge(split.FirstQuad + split.Full, split.Total, sigma, draw, x);
        }
        var io = default(TIO);
        for (int q = quads.First(tid), end = quads.End(tid), stride = quads.Stride; q < end; q += stride)
        {
            int e = split.Lead + 4 * q;
            io.Store(x, e, Update(io.Load(x, e), sigma, split.FirstQuad + q, draw));
        }
    }

    private static void Edge(int q, int total, float sigma, QuadDraw draw, ArrayView<float> x)
    {
        int i0 = draw.QuadStart(q);
        QuadEdge.Store(x, i0, total, Update(QuadEdge.Load(x, i0, total), sigma, q, draw));
    }

    private static Float4 Update(Float4 x, float sigma, int q, QuadDraw draw)
    {
        draw.Normal4(q, out float z0, out float z1, out float z2, out float z3);
        x.X += sigma * z0;
        x.Y += sigma * z1;
        x.Z += sigma * z2;
        x.W += sigma * z3;
        return x;
    }

    /// <summary>x += sigma z in place (a negative sigma subtracts the same z: nested measurements are undone that way).</summary>
    public static void Run(Tensor x, float sigma, RandomDraw draw)
    {
        if (!float.IsFinite(sigma)) throw new ArgumentOutOfRangeException(nameof(sigma), sigma, "add noise: sigma must be finite");
        if (sigma == 0) return;
        var split = QuadSplit.For(x.Length, draw);
        var plan = x.Device.Plan(split.Full);
        var k = split.Aligned(x.View)
            ? x.Device.Kernel("add-noise", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, QuadSplit, float, QuadDraw,
                ArrayView<float>>(Kernel<VectorIO>))
            : x.Device.Kernel("add-noise-unaligned", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, QuadSplit, float, QuadDraw,
                ArrayView<float>>(Kernel<ScalarIO>));
        k(plan.Threads, plan, split, sigma, new QuadDraw(draw), x.View);
    }
}

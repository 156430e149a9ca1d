using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Operators;

/// <summary>
/// The adjoint of <see cref="BlockAverage"/>: each coarse value, divided by f^2, spread over its f x f block,
/// x[p, r, c] = y[p, r / f, c / f] / f^2. One fine pixel per loop step.
/// </summary>
public static class BlockSpread
{
    /// <summary>The specification, for <paramref name="planes"/> fine planes of h x w.</summary>
    /// <exception cref="ArgumentException">f does not divide h and w, or a length does not fit.</exception>
    public static void Reference(ReadOnlySpan<float> y, Span<float> x, int planes, int h, int w, int f)
    {
        BlockAverage.Check(x.Length, y.Length, planes, h, w, f);
        int ho = h / f, wo = w / f;
        for (int p = 0; p < planes; p++)
            for (int r = 0; r < h; r++)
                for (int c = 0; c < w; c++)
                    x[(p * h + r) * w + c] = y[(p * ho + r / f) * wo + c / f] / (f * f);
    }

    internal static void Kernel(Index1D tid, ElementRange r, int h, int w, int f, float scale,
        ArrayView<float> y, ArrayView<float> x)
    {
        int ho = h / f, wo = w / f;
        for (int k = 0; k < r.Count; k++)
        {
            int o = r.Index(tid, k);
            if (o >= r.Total) return;
            int p = o / (h * w), q = o - p * h * w;
            int row = q / w, col = q - row * w;
            x[o] = y[(p * ho + row / f) * wo + col / f] * scale;
        }
    }

    /// <summary>x = y spread over f x f blocks and divided by f^2; y is [..., H / f, W / f] and x [..., H, W].</summary>
    /// <exception cref="ArgumentException">f does not divide H and W, or the shapes do not match.</exception>
    public static void Run(Tensor y, Tensor x, int f)
    {
        var (planes, h, w) = BlockAverage.Planes("block spread", x, y, f);
        var plan = x.Device.Plan(x.Length);
        if (plan.Total == 0 || planes == 0) return;
        var k = x.Device.Kernel("sr-spread", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int, int, int, float,
            ArrayView<float>, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, h, w, f, 1f / (f * f), y.View, x.View);
    }
}

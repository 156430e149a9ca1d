using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Resample;

/// <summary>Nearest-neighbour 2x upsampling of NCHW images (F.interpolate(scale_factor=2, mode="nearest")):
/// y[n, c, i, j] = x[n, c, i / 2, j / 2].</summary>
public static class Upsample2x
{
    /// <summary>The specification: a plain loop.</summary>
    public static void Reference(ReadOnlySpan<float> x, int planes, int h, int w, Span<float> y)
    {
        for (int p = 0; p < planes; p++)
            for (int i = 0; i < 2 * h; i++)
                for (int j = 0; j < 2 * w; j++)
                    y[(p * 2 * h + i) * 2 * w + j] = x[(p * h + i / 2) * w + j / 2];
    }

    internal static void Kernel(Index1D tid, ElementRange r, int h, int w, ArrayView<float> x, ArrayView<float> y)
    {
        int w2 = 2 * w;
        for (int k = 0; k < r.Count; k++)
        {
            int o = r.Index(tid, k);
            if (o >= r.Total) return;
            int j = o % w2;
            int row = o / w2;             // = plane * 2h + i
            int i = row % (2 * h);
            int plane = row / (2 * h);
            y[o] = x[(plane * h + i / 2) * w + j / 2];
        }
    }

    /// <summary>y = nearest 2x upsampling of x; x [N, C, H, W], y [N, C, 2H, 2W].</summary>
    public static void Run(Tensor x, Tensor y)
    {
        Shape.RequireRank("upsample 2x", x, "x", 4);
        Shape.Require("upsample 2x", y, "y", x.N, x.C, 2 * x.H, 2 * x.W);
        var plan = y.Device.Plan(y.Length);
        var k = y.Device.Kernel("upsample-2x", acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int, int, ArrayView<float>, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, x.H, x.W, x.View, y.View);
    }
}

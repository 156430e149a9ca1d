using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Resample;

/// <summary>Nearest-neighbour 2x upsampling, [N,C,H,W] -> [N,C,2H,2W]
/// (torch.nn.functional.interpolate(scale_factor=2, mode="nearest"), as diffusers' Upsample2D).</summary>
public static class Upsample2x
{
    /// <summary>The specification: output pixel (h, w) copies input pixel (h/2, w/2).</summary>
    public static void Reference(ReadOnlySpan<float> x, int planes, int height, int width, Span<float> y)
    {
        int w2 = 2 * width;
        for (int p = 0; p < planes; p++)
            for (int h = 0; h < 2 * height; h++)
                for (int w = 0; w < w2; w++)
                    y[(p * 2 * height + h) * w2 + w] = x[(p * height + h / 2) * width + w / 2];
    }

    internal static void Kernel(Index1D tid, ElementRange r, int height, int width, ArrayView<float> x, ArrayView<float> y)
    {
        int w2 = 2 * width;
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            int ow = i % w2;
            int row = i / w2;                // plane * 2H + oh
            int oh = row % (2 * height);
            int plane = row / (2 * height);
            y[i] = x[(plane * height + (oh >> 1)) * width + (ow >> 1)];
        }
    }

    /// <summary>y = nearest 2x upsampling of x; y must be [N, C, 2H, 2W].</summary>
    /// <exception cref="ArgumentException">x is not rank 4 or y has the wrong shape.</exception>
    public static void Run(Tensor x, Tensor y)
    {
        Shape.RequireRank("upsample2x", x, "x", 4);
        Shape.Require("upsample2x", y, "y", x.N, x.C, 2 * x.H, 2 * x.W);
        Shape.RequireSameDevice("upsample2x", x, y);
        var plan = y.Device.Plan(y.Length);
        var k = y.Device.Kernel("upsample2x", static acc =>
            acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int, int, ArrayView<float>, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, x.H, x.W, x.View, y.View);
    }
}

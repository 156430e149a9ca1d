using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Resample;

/// <summary>The gradient of <see cref="Upsample2x"/>: each input pixel was copied to a 2x2 block, so it
/// receives the sum of that block's gradients.</summary>
public static class Upsample2xBackward
{
    /// <summary>The specification: dx[p, h, w] = sum of dy over the 2x2 block at (2h, 2w).</summary>
    public static void Reference(ReadOnlySpan<float> dy, int planes, int height, int width, Span<float> dx)
    {
        int w2 = 2 * width;
        for (int p = 0; p < planes; p++)
            for (int h = 0; h < height; h++)
                for (int w = 0; w < width; w++)
                {
                    int o = (p * 2 * height + 2 * h) * w2 + 2 * w;
                    dx[(p * height + h) * width + w] = dy[o] + dy[o + 1] + dy[o + w2] + dy[o + w2 + 1];
                }
    }

    internal static void Kernel(Index1D tid, ElementRange r, int height, int width, int accumulate, ArrayView<float> dy, ArrayView<float> dx)
    {
        int w2 = 2 * width;
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            int w = i % width, row = i / width;            // row = plane * H + h
            int o = 2 * row * w2 + 2 * w;                  // (plane * 2H + 2h) * 2W + 2w
            float v = dy[o] + dy[o + 1] + dy[o + w2] + dy[o + w2 + 1];
            dx[i] = accumulate != 0 ? dx[i] + v : v;
        }
    }

    /// <summary>dx (+)= the gradient of nearest 2x upsampling for dy [N, C, 2H, 2W] and dx [N, C, H, W].</summary>
    /// <exception cref="ArgumentException">The shapes do not fit.</exception>
    public static void Run(Tensor dy, Tensor dx, bool accumulate = false)
    {
        Shape.RequireRank("upsample2x backward", dx, "dx", 4);
        Shape.Require("upsample2x backward", dy, "dy", dx.N, dx.C, 2 * dx.H, 2 * dx.W);
        Shape.RequireSameDevice("upsample2x backward", dx, dy);
        var plan = dx.Device.Plan(dx.Length);
        var k = dx.Device.Kernel("upsample2x-backward", static acc =>
            acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int, int, int, ArrayView<float>, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, dx.H, dx.W, accumulate ? 1 : 0, dy.View, dx.View);
    }
}

using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Elementwise;

/// <summary>y[n, ...] = scales[n] * x[n, ...]: one factor per batch item (e.g. the epsilon-to-score
/// factor -1 / sqrt(1 - alphas_cumprod[t_n]) when items sit at different timesteps).</summary>
public static class ScalePerItem
{
    /// <summary>The specification: a plain loop.</summary>
    public static void Reference(ReadOnlySpan<float> x, ReadOnlySpan<float> scales, Span<float> y)
    {
        int len = x.Length / scales.Length;
        for (int i = 0; i < x.Length; i++) y[i] = scales[i / len] * x[i];
    }

    internal static void Kernel(Index1D tid, ElementRange r, int itemLength, ArrayView<float> x, ArrayView<float> scales, ArrayView<float> y)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            y[i] = scales[i / itemLength] * x[i];
        }
    }

    /// <summary>y = scales[n] * x per item; scales is [N]; y may be x.</summary>
    public static void Run(Tensor x, Tensor scales, Tensor y)
    {
        Shape.RequireSame("scale per item", x, "x", y, "y");
        Shape.Require("scale per item", scales, "scales", x.N);
        var plan = x.Device.Plan(x.Length);
        var k = x.Device.Kernel("scale-per-item", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int,
            ArrayView<float>, ArrayView<float>, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, Math.Max(x.ItemLength, 1), x.View, scales.View, y.View);
    }
}

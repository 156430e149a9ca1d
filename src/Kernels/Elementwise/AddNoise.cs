using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
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

    internal static void Kernel(Index1D tid, ElementRange r, float sigma, RandomDraw draw, ArrayView<float> x)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            x[i] += sigma * draw.Normal(i);
        }
    }

    /// <summary>x += sigma z in place (a negative sigma subtracts the same z: nested measurements are undone that way).</summary>
    public static void Run(Tensor x, float sigma, RandomDraw draw)
    {
        if (!float.IsFinite(sigma)) throw new ArgumentOutOfRangeException(nameof(sigma), sigma, "add noise: sigma must be finite");
        if (sigma == 0) return;
        var plan = x.Device.Plan(x.Length);
        var k = x.Device.Kernel("add-noise", acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, float, RandomDraw, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, sigma, draw, x.View);
    }
}

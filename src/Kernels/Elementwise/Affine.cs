using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Elementwise;

/// <summary>y = a * x + b elementwise with scalars a, b (e.g. center_input_sample's 2x - 1).</summary>
public static class Affine
{
    /// <summary>The specification: a plain loop.</summary>
    public static void Reference(ReadOnlySpan<float> x, float a, float b, Span<float> y)
    {
        for (int i = 0; i < x.Length; i++) y[i] = a * x[i] + b;
    }

    internal static void Kernel(Index1D tid, ElementRange r, ArrayView<float> x, float a, float b, ArrayView<float> y)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            y[i] = a * x[i] + b;
        }
    }

    /// <summary>y = a x + b; y may be x.</summary>
    public static void Run(Tensor x, float a, float b, Tensor y)
    {
        Shape.RequireSame("affine", x, "x", y, "y");
        var plan = y.Device.Plan(y.Length);
        var k = y.Device.Kernel("affine", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, ArrayView<float>, float, float, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, x.View, a, b, y.View);
    }
}

using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Activations;

/// <summary>SiLU (swish): y = x * sigmoid(x) = x / (1 + e^-x), elementwise.</summary>
public static class Silu
{
    /// <summary>The specification: a plain loop.</summary>
    public static void Reference(ReadOnlySpan<float> x, Span<float> y)
    {
        for (int i = 0; i < x.Length; i++) y[i] = x[i] / (1 + MathF.Exp(-x[i]));
    }

    internal static void Kernel(Index1D tid, ElementRange r, ArrayView<float> x, ArrayView<float> y)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            float v = x[i];
            y[i] = v / (1 + MathF.Exp(-v));
        }
    }

    /// <summary>y = silu(x); y may be x.</summary>
    public static void Run(Tensor x, Tensor y)
    {
        Shape.RequireSame("silu", x, "x", y, "y");
        var plan = y.Device.Plan(y.Length);
        var k = y.Device.Kernel("silu", acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, ArrayView<float>, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, x.View, y.View);
    }
}

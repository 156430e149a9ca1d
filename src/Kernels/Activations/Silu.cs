using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Activations;

/// <summary>SiLU (swish), y = x * sigmoid(x) = x / (1 + exp(-x)), elementwise (Elfwing et al. 2018).</summary>
public static class Silu
{
    /// <summary>The specification: a plain loop in double precision.</summary>
    public static void Reference(ReadOnlySpan<float> x, Span<float> y)
    {
        if (x.Length != y.Length) throw new ArgumentException("x and y differ in length");
        for (int i = 0; i < x.Length; i++) y[i] = (float)(x[i] / (1 + Math.Exp(-(double)x[i])));
    }

    /// <summary>x / (1 + exp(-x)): for very negative x exp overflows to +inf and the result is -0, not NaN.</summary>
    internal static float Apply(float x) => x / (1f + MathF.Exp(-x));

    internal static void Kernel(Index1D tid, ElementRange r, ArrayView<float> x, ArrayView<float> y)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            y[i] = Apply(x[i]);
        }
    }

    /// <summary>y = silu(x); <paramref name="y"/> may be <paramref name="x"/> (in place).</summary>
    /// <exception cref="ArgumentException">x and y differ in shape.</exception>
    public static void Run(Tensor x, Tensor y)
    {
        Shape.RequireSame("silu", x, "x", y, "y");
        var plan = y.Device.Plan(y.Length);
        var k = y.Device.Kernel("silu", static acc =>
            acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, ArrayView<float>, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, x.View, y.View);
    }
}

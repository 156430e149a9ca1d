using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Activations;

/// <summary>The gradient of <see cref="Silu"/>: dx = dy * silu'(x), silu'(x) = s (1 + x (1 - s)) with s = sigmoid(x).</summary>
public static class SiluBackward
{
    /// <summary>The specification, in double.</summary>
    public static void Reference(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx)
    {
        for (int i = 0; i < x.Length; i++)
        {
            double s = 1 / (1 + Math.Exp(-(double)x[i]));
            dx[i] = (float)(dy[i] * s * (1 + x[i] * (1 - s)));
        }
    }

    /// <summary>silu'(x); for very negative x, exp overflows to +inf, s is 0 and so is the derivative.</summary>
    internal static float Derivative(float x)
    {
        float s = 1f / (1f + MathF.Exp(-x));
        return s * (1f + x * (1f - s));
    }

    internal static void Kernel(Index1D tid, ElementRange r, ArrayView<float> x, ArrayView<float> dy, ArrayView<float> dx)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            dx[i] = dy[i] * Derivative(x[i]);
        }
    }

    /// <summary>dx = dy * silu'(x) where x is the activation's input; dx may be dy (in place).</summary>
    /// <exception cref="ArgumentException">The shapes differ.</exception>
    public static void Run(Tensor x, Tensor dy, Tensor dx)
    {
        Shape.RequireSame("silu backward", x, "x", dy, "dy");
        Shape.RequireSame("silu backward", x, "x", dx, "dx");
        var plan = dx.Device.Plan(dx.Length);
        var k = dx.Device.Kernel("silu-backward", static acc =>
            acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, ArrayView<float>, ArrayView<float>, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, x.View, dy.View, dx.View);
    }
}

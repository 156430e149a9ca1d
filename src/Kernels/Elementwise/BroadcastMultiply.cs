using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Elementwise;

/// <summary>y[n, i] = m[i] x[n, i]: one per-element factor shared by every batch item (a mask).</summary>
public static class BroadcastMultiply
{
    /// <summary>The specification: a plain loop.</summary>
    public static void Reference(ReadOnlySpan<float> x, ReadOnlySpan<float> m, Span<float> y)
    {
        for (int i = 0; i < x.Length; i++) y[i] = m[i % m.Length] * x[i];
    }

    internal static void Kernel(Index1D tid, ElementRange r, int itemLength, ArrayView<float> x, ArrayView<float> m, ArrayView<float> y)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            y[i] = m[i % itemLength] * x[i];
        }
    }

    /// <summary>y = m x per item; m holds one item's worth of factors; y may be x.</summary>
    public static void Run(Tensor x, Tensor m, Tensor y)
    {
        Shape.RequireSame("broadcast multiply", x, "x", y, "y");
        if (m.Length != x.ItemLength)
            throw new ArgumentException($"broadcast multiply: factors of shape {Shape.Format(m.Shape)} do not match items of x {Shape.Format(x.Shape)}");
        var plan = x.Device.Plan(x.Length);
        var k = x.Device.Kernel("broadcast-multiply", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int,
            ArrayView<float>, ArrayView<float>, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, Math.Max(1, m.Length), x.View, m.View, y.View);
    }
}

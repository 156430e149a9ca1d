using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Elementwise;

/// <summary>
/// The deterministic update of the first- and second-order ODE samplers, fused into one pass:
/// cur = Px x + Pe eps (the step's prediction: a score, or an x0 estimate), x' = Cx x + C1 cur +
/// C2 prev, then prev = cur for the next step. Reads x, eps, prev once and writes x, prev once.
/// With C2 = 0 prev is not read (it may hold garbage on the first step).
/// </summary>
public static class MultistepUpdate
{
    /// <summary>Scalars of one update.</summary>
    public readonly record struct Coefficients(float Px, float Pe, float Cx, float C1, float C2);

    /// <summary>The specification: a plain loop.</summary>
    public static void Reference(Span<float> x, ReadOnlySpan<float> eps, Span<float> prev, Coefficients c)
    {
        for (int i = 0; i < x.Length; i++)
        {
            float cur = c.Px * x[i] + c.Pe * eps[i];
            x[i] = c.Cx * x[i] + c.C1 * cur + (c.C2 != 0 ? c.C2 * prev[i] : 0);
            prev[i] = cur;
        }
    }

    internal static void Kernel(Index1D tid, ElementRange r, Coefficients c, ArrayView<float> x, ArrayView<float> eps, ArrayView<float> prev)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            float xi = x[i];
            float cur = c.Px * xi + c.Pe * eps[i];
            float v = c.Cx * xi + c.C1 * cur;
            if (c.C2 != 0) v += c.C2 * prev[i];
            x[i] = v;
            prev[i] = cur;
        }
    }

    /// <summary>Applies the update in place to x and prev.</summary>
    public static void Run(Tensor x, Tensor eps, Tensor prev, Coefficients c)
    {
        Shape.RequireSame("multistep update", eps, "eps", x, "x");
        Shape.RequireSame("multistep update", prev, "prev", x, "x");
        var plan = x.Device.Plan(x.Length);
        var k = x.Device.Kernel("multistep-update", acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, Coefficients,
            ArrayView<float>, ArrayView<float>, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, c, x.View, eps.View, prev.View);
    }
}

using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Operators;

/// <summary>The scaled measurement residual r = scale (y - A x), overwriting A x in place: the
/// vector the adjoint maps to the Gaussian log-likelihood gradient (scale = 1 / sigma^2).</summary>
public static class Residual
{
    /// <summary>The specification: r[i] = scale (y[i] - ax[i]).</summary>
    public static void Reference(ReadOnlySpan<float> y, ReadOnlySpan<float> ax, float scale, Span<float> r)
    {
        if (y.Length != ax.Length || r.Length != y.Length)
            throw new ArgumentException($"residual reference: y has {y.Length} values, A x {ax.Length}, r {r.Length}");
        for (int i = 0; i < y.Length; i++) r[i] = scale * (y[i] - ax[i]);
    }

    internal static void Kernel(Index1D tid, ElementRange r, ArrayView<float> y, ArrayView<float> ax, float scale)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            ax[i] = scale * (y[i] - ax[i]);
        }
    }

    /// <summary>ax = scale (y - ax), in place.</summary>
    /// <exception cref="ArgumentException">y and ax differ in shape.</exception>
    public static void Run(Tensor y, Tensor ax, float scale)
    {
        Shape.RequireSame("residual", y, "y", ax, "A x");
        var plan = ax.Device.Plan(ax.Length);
        if (plan.Total == 0) return;
        var k = ax.Device.Kernel("operator-residual", static acc =>
            acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, ArrayView<float>, ArrayView<float>, float>(Kernel));
        k(plan.Threads, plan, y.View, ax.View, scale);
    }
}

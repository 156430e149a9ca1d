using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Elementwise;

/// <summary>x[n, ...] = candidate[n, ...] where accept[n] != 0, else unchanged: the per-chain accept step of a
/// Metropolis-Hastings move (an exact copy, so an accepted state is bitwise the proposal).</summary>
public static class SelectItems
{
    /// <summary>The specification: a plain loop.</summary>
    public static void Reference(Span<float> x, ReadOnlySpan<float> candidate, ReadOnlySpan<float> accept)
    {
        int len = x.Length / accept.Length;
        for (int i = 0; i < x.Length; i++)
            if (accept[i / len] != 0) x[i] = candidate[i];
    }

    internal static void Kernel(Index1D tid, ElementRange r, int itemLength, ArrayView<float> x, ArrayView<float> candidate, ArrayView<float> accept)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            if (accept[i / itemLength] != 0) x[i] = candidate[i];
        }
    }

    /// <summary>x = candidate for the items whose accept flag is non-zero; accept is [N].</summary>
    /// <exception cref="ArgumentException">Shapes differ, or accept does not hold one flag per item.</exception>
    public static void Run(Tensor x, Tensor candidate, Tensor accept)
    {
        Shape.RequireSame("select items", candidate, "candidate", x, "x");
        Shape.Require("select items", accept, "accept", x.N);
        var plan = x.Device.Plan(x.Length);
        var k = x.Device.Kernel("select-items", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int,
            ArrayView<float>, ArrayView<float>, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, Math.Max(x.ItemLength, 1), x.View, candidate.View, accept.View);
    }
}

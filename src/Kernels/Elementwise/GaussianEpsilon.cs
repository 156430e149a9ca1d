using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Elementwise;

/// <summary>
/// The exact epsilon of a diagonal Gaussian prior x0 ~ N(mu, diag(var)) at noise level a
/// (x_t = sqrt(a) x0 + sqrt(1 - a) eps): x_t ~ N(sqrt(a) mu, a var + 1 - a), so
/// eps = sqrt(1 - a) (x - sqrt(a) mu) / (a var + 1 - a). Each batch item has its own a.
/// </summary>
public static class GaussianEpsilon
{
    /// <summary>The specification, in double.</summary>
    public static void Reference(ReadOnlySpan<float> x, ReadOnlySpan<float> mu, ReadOnlySpan<float> variance, ReadOnlySpan<double> levels, Span<float> eps)
    {
        int d = mu.Length;
        for (int i = 0; i < x.Length; i++)
        {
            double a = levels[i / d];
            int j = i % d;
            eps[i] = (float)(Math.Sqrt(1 - a) * (x[i] - Math.Sqrt(a) * mu[j]) / (a * variance[j] + 1 - a));
        }
    }

    internal static void Kernel(Index1D tid, ElementRange r, int d, ArrayView<float> x, ArrayView<float> mu, ArrayView<float> variance,
        ArrayView<float> levels, ArrayView<float> eps)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            int n = i / d, j = i - n * d;
            float a = levels[3 * n], sa = levels[3 * n + 1], s1a = levels[3 * n + 2];
            // 1 - a as sqrt(1 - a)^2: with a near 1, 1 - a in float would keep only a few digits.
            eps[i] = s1a * (x[i] - sa * mu[j]) / (a * variance[j] + s1a * s1a);
        }
    }

    /// <summary>eps = exact epsilon; x, eps [N, ...d]; mu, variance [d]; levels [N, 3] holding
    /// (a, sqrt(a), sqrt(1 - a)) per item (so square roots are taken once, in double, on the host).</summary>
    public static void Run(Tensor x, Tensor mu, Tensor variance, Tensor levels, Tensor eps)
    {
        Shape.RequireSame("gaussian epsilon", x, "x", eps, "eps");
        int d = mu.Length;
        if (x.ItemLength != d)
            throw new ArgumentException($"gaussian epsilon: x {Shape.Format(x.Shape)} has {x.ItemLength} values per item but mu has {d}");
        Shape.RequireSame("gaussian epsilon", variance, "variance", mu, "mu");
        Shape.Require("gaussian epsilon", levels, "levels", x.N, 3);
        var plan = x.Device.Plan(x.Length);
        var k = x.Device.Kernel("gaussian-epsilon", acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, d, x.View, mu.View, variance.View, levels.View, eps.View);
    }
}

using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Reductions;

/// <summary>y[c, ...] = sum_j w[c r + j] x[c r + j, ...] over j below r: groups of r consecutive items summed with
/// one weight each (the self-normalised average of a chain's Monte Carlo particles). The sum runs in j order and
/// starts from the first term, so with r = 1 and w = 1 y is bitwise x.</summary>
public static class WeightedItemSum
{
    /// <summary>The specification, in double: x holds <paramref name="groups"/> x <paramref name="repeats"/> items.</summary>
    public static void Reference(ReadOnlySpan<float> x, ReadOnlySpan<float> weights, int groups, int repeats, Span<float> y)
    {
        int len = y.Length / groups;
        for (int c = 0; c < groups; c++)
            for (int e = 0; e < len; e++)
            {
                double acc = 0;
                for (int j = 0; j < repeats; j++) acc += (double)weights[c * repeats + j] * x[(c * repeats + j) * len + e];
                y[c * len + e] = (float)acc;
            }
    }

    internal static void Kernel(Index1D tid, ElementRange r, int itemLength, int repeats, ArrayView<float> x, ArrayView<float> weights, ArrayView<float> y)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            int c = i / itemLength, e = i - c * itemLength, first = c * repeats;
            float acc = weights[first] * x[first * itemLength + e];
            for (int j = 1; j < repeats; j++) acc += weights[first + j] * x[(first + j) * itemLength + e];
            y[i] = acc;
        }
    }

    /// <summary>y = the weighted sum of each group of <paramref name="repeats"/> items of x; weights is [N repeats].</summary>
    /// <exception cref="ArgumentException">The shapes do not match (x [N repeats, ...], y [N, ...]) or repeats is below 1.</exception>
    public static void Run(Tensor x, Tensor weights, int repeats, Tensor y)
    {
        const string op = "weighted item sum";
        if (repeats < 1) throw new ArgumentException($"{op}: repeats must be at least 1 but got {repeats}");
        var expected = (int[])y.Shape.Clone();
        expected[0] = checked(y.N * repeats);
        Shape.Require(op, x, "x", expected);
        Shape.Require(op, weights, "weights", x.N);
        if (y.Length == 0) return;
        var plan = y.Device.Plan(y.Length);
        var k = y.Device.Kernel("weighted-item-sum", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int, int,
            ArrayView<float>, ArrayView<float>, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, Math.Max(y.ItemLength, 1), repeats, x.View, weights.View, y.View);
    }
}

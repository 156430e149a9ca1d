using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Layout;

/// <summary>y[c r + j, ...] = x[c, ...] for j below r: each batch item repeated r times, back to back (torch's
/// repeat_interleave along the batch): the particles of a Monte Carlo estimate per chain start from the chain's value.</summary>
public static class RepeatItems
{
    /// <summary>The specification: a plain loop; x holds <paramref name="items"/> items.</summary>
    public static void Reference(ReadOnlySpan<float> x, int items, int repeats, Span<float> y)
    {
        int len = x.Length / items;
        for (int i = 0; i < y.Length; i++) y[i] = x[i / (len * repeats) * len + i % len];
    }

    internal static void Kernel(Index1D tid, ElementRange r, int itemLength, int repeats, ArrayView<float> x, ArrayView<float> y)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            int item = i / itemLength;
            y[i] = x[item / repeats * itemLength + (i - item * itemLength)];
        }
    }

    /// <summary>y = x with every item repeated <paramref name="repeats"/> times; y is [N repeats, ...x's item shape].</summary>
    /// <exception cref="ArgumentException">y's shape is not x's with N repeats items, or repeats is below 1.</exception>
    public static void Run(Tensor x, int repeats, Tensor y)
    {
        const string op = "repeat items";
        if (repeats < 1) throw new ArgumentException($"{op}: repeats must be at least 1 but got {repeats}");
        var expected = (int[])x.Shape.Clone();
        expected[0] = checked(x.N * repeats);
        Shape.Require(op, y, "y", expected);
        if (y.Length == 0) return;
        var plan = y.Device.Plan(y.Length);
        var k = y.Device.Kernel("repeat-items", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int, int,
            ArrayView<float>, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, Math.Max(x.ItemLength, 1), repeats, x.View, y.View);
    }
}

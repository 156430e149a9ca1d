using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Layout;

/// <summary>The inverse of <see cref="ConcatChannels"/> and so its gradient: y [N, Ca+Cb, ...] is split
/// into a [N, Ca, ...] and b [N, Cb, ...], each either overwritten or added to (a U-Net skip also
/// receives gradient from the layer that consumed it on the way down).</summary>
public static class SplitChannels
{
    /// <summary>The specification: per item, the first a-block of y to a, the rest to b.</summary>
    public static void Reference(ReadOnlySpan<float> y, int batch, Span<float> a, bool accumulateA, Span<float> b, bool accumulateB)
    {
        int la = a.Length / batch, lb = b.Length / batch;
        for (int n = 0; n < batch; n++)
        {
            for (int j = 0; j < la; j++) a[n * la + j] = (accumulateA ? a[n * la + j] : 0) + y[n * (la + lb) + j];
            for (int j = 0; j < lb; j++) b[n * lb + j] = (accumulateB ? b[n * lb + j] : 0) + y[n * (la + lb) + la + j];
        }
    }

    internal static void Kernel(Index1D tid, ElementRange r, int itemA, int itemB, int accumulateA, int accumulateB,
        ArrayView<float> y, ArrayView<float> a, ArrayView<float> b)
    {
        int item = itemA + itemB;
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            int n = i / item, j = i - n * item;
            if (j < itemA)
            {
                int o = n * itemA + j;
                a[o] = accumulateA != 0 ? a[o] + y[i] : y[i];
            }
            else
            {
                int o = n * itemB + j - itemA;
                b[o] = accumulateB != 0 ? b[o] + y[i] : y[i];
            }
        }
    }

    /// <summary>a (+)= y[:, :Ca], b (+)= y[:, Ca:].</summary>
    /// <exception cref="ArgumentException">The shapes do not fit together.</exception>
    public static void Run(Tensor y, Tensor a, bool accumulateA, Tensor b, bool accumulateB)
    {
        if (a.Rank < 2 || b.Rank != a.Rank || a.N != b.N || !a.Shape.AsSpan(2).SequenceEqual(b.Shape.AsSpan(2)))
            throw new ArgumentException(
                $"split channels: a has shape {Shape.Format(a.Shape)} and b has shape {Shape.Format(b.Shape)}; " +
                "they must have the same rank (at least 2) and agree in every dimension but the channels (dim 1)");
        var expected = (int[])a.Shape.Clone();
        expected[1] = a.Shape[1] + b.Shape[1];
        Shape.Require("split channels", y, "y", expected);
        Shape.RequireSameDevice("split channels", a, y);
        Shape.RequireSameDevice("split channels", b, y);
        var plan = y.Device.Plan(y.Length);
        var k = y.Device.Kernel("split-channels", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int, int, int, int,
            ArrayView<float>, ArrayView<float>, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, a.ItemLength, b.ItemLength, accumulateA ? 1 : 0, accumulateB ? 1 : 0, y.View, a.View, b.View);
    }
}

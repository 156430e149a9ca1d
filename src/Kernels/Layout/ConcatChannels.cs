using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Layout;

/// <summary>Concatenation along the channel dimension, [N,Ca,...] ++ [N,Cb,...] -> [N,Ca+Cb,...]
/// (torch.cat(dim=1); the U-Net's skip connections).</summary>
public static class ConcatChannels
{
    /// <summary>The specification: per batch item, a's block then b's block.</summary>
    public static void Reference(ReadOnlySpan<float> a, ReadOnlySpan<float> b, int batch, Span<float> y)
    {
        int la = a.Length / batch, lb = b.Length / batch;
        for (int n = 0; n < batch; n++)
        {
            a.Slice(n * la, la).CopyTo(y.Slice(n * (la + lb), la));
            b.Slice(n * lb, lb).CopyTo(y.Slice(n * (la + lb) + la, lb));
        }
    }

    internal static void Kernel(Index1D tid, ElementRange r, int itemA, int itemB, ArrayView<float> a, ArrayView<float> b, ArrayView<float> y)
    {
        int item = itemA + itemB;
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            int n = i / item;
            int j = i - n * item;
            y[i] = j < itemA ? a[n * itemA + j] : b[n * itemB + j - itemA];
        }
    }

    /// <summary>y = cat([a, b], dim=1); a and b agree in every dimension but the second.</summary>
    /// <exception cref="ArgumentException">The shapes do not fit together (the message names them).</exception>
    public static void Run(Tensor a, Tensor b, Tensor y)
    {
        if (a.Rank < 2 || b.Rank != a.Rank || a.N != b.N || !a.Shape.AsSpan(2).SequenceEqual(b.Shape.AsSpan(2)))
            throw new ArgumentException(
                $"concat channels: a has shape {Shape.Format(a.Shape)} and b has shape {Shape.Format(b.Shape)}; " +
                "they must have the same rank (at least 2) and agree in every dimension but the channels (dim 1)");
        var expected = (int[])a.Shape.Clone();
        expected[1] = a.Shape[1] + b.Shape[1];
        Shape.Require("concat channels", y, "y", expected);
        Shape.RequireSameDevice("concat channels", a, y);
        Shape.RequireSameDevice("concat channels", b, y);
        var plan = y.Device.Plan(y.Length);
        var k = y.Device.Kernel("concat-channels", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int, int,
            ArrayView<float>, ArrayView<float>, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, a.ItemLength, b.ItemLength, a.View, b.View, y.View);
    }
}

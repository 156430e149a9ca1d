using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Layout;

/// <summary>Channel concatenation of NCHW tensors (torch.cat([a, b], dim=1)): the U-Net's skip connections.</summary>
public static class ConcatChannels
{
    /// <summary>The specification: copies item by item.</summary>
    public static void Reference(ReadOnlySpan<float> a, ReadOnlySpan<float> b, int n, int itemA, int itemB, Span<float> y)
    {
        for (int i = 0; i < n; i++)
        {
            a.Slice(i * itemA, itemA).CopyTo(y.Slice(i * (itemA + itemB), itemA));
            b.Slice(i * itemB, itemB).CopyTo(y.Slice(i * (itemA + itemB) + itemA, itemB));
        }
    }

    internal static void Kernel(Index1D tid, ElementRange r, int itemA, int itemB, ArrayView<float> a, ArrayView<float> b, ArrayView<float> y)
    {
        int item = itemA + itemB;
        for (int k = 0; k < r.Count; k++)
        {
            int o = r.Index(tid, k);
            if (o >= r.Total) return;
            int n = o / item;
            int j = o - n * item;
            y[o] = j < itemA ? a[n * itemA + j] : b[n * itemB + j - itemA];
        }
    }

    /// <summary>y = [a, b] along channels; a [N, Ca, H, W], b [N, Cb, H, W], y [N, Ca + Cb, H, W].</summary>
    public static void Run(Tensor a, Tensor b, Tensor y)
    {
        Shape.RequireRank("concat", a, "a", 4);
        Shape.RequireRank("concat", b, "b", 4);
        if (a.N != b.N || a.H != b.H || a.W != b.W)
            throw new ArgumentException($"concat: a has shape {Shape.Format(a.Shape)} but b has shape {Shape.Format(b.Shape)}; N, H and W must match");
        Shape.Require("concat", y, "y", a.N, a.C + b.C, a.H, a.W);
        var plan = y.Device.Plan(y.Length);
        var k = y.Device.Kernel("concat-channels", acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int, int,
            ArrayView<float>, ArrayView<float>, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, a.ItemLength, b.ItemLength, a.View, b.View, y.View);
    }
}

using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Operators;

/// <summary>
/// y[i] = mask[(i / group) % mask.Length] x[i]: a diagonal operator whose mask repeats over the
/// batch (and over channels when it is one [H, W] plane). group = 2 applies one real mask value to
/// both parts of an interleaved complex element (Fourier masks). Self-adjoint.
/// </summary>
public static class MaskMultiply
{
    /// <summary>The specification: a plain loop.</summary>
    public static void Reference(ReadOnlySpan<float> mask, int group, ReadOnlySpan<float> x, Span<float> y)
    {
        if (x.Length != y.Length || group < 1)
            throw new ArgumentException($"mask multiply reference: x has {x.Length} values, y {y.Length}, group {group}");
        for (int i = 0; i < x.Length; i++) y[i] = mask[i / group % mask.Length] * x[i];
    }

    internal static void Kernel(Index1D tid, ElementRange r, int group, int maskLength, ArrayView<float> mask,
        ArrayView<float> x, ArrayView<float> y)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            y[i] = mask[i / group % maskLength] * x[i];
        }
    }

    /// <summary>y = mask ⊙ x with the mask repeating (see the type); y may be x.</summary>
    /// <exception cref="ArgumentException">x and y differ in shape, or the mask does not tile x.</exception>
    public static void Run(Tensor mask, int group, Tensor x, Tensor y)
    {
        Shape.RequireSame("mask multiply", x, "x", y, "y");
        Shape.RequireSameDevice("mask multiply", mask, x);
        if (group < 1 || mask.Length == 0 || x.Length % ((long)mask.Length * group) != 0)
            throw new ArgumentException(
                $"mask multiply: a mask of shape {Shape.Format(mask.Shape)} (group {group}) does not tile x of shape {Shape.Format(x.Shape)}");
        var plan = x.Device.Plan(x.Length);
        if (plan.Total == 0) return;
        var k = x.Device.Kernel("mask-multiply", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int, int,
            ArrayView<float>, ArrayView<float>, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, group, mask.Length, mask.View, x.View, y.View);
    }
}

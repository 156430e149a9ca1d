using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Elementwise;

/// <summary>y = a * x + b * y, elementwise (BLAS axpby). As in BLAS, b = 0 does not read y, so y may start
/// uninitialised (a rented buffer holding NaN) when it is only a destination.</summary>
public static class Axpby
{
    /// <summary>The specification: a plain loop.</summary>
    public static void Reference(float a, ReadOnlySpan<float> x, float b, Span<float> y)
    {
        if (x.Length != y.Length) throw new ArgumentException("x and y differ in length");
        for (int i = 0; i < y.Length; i++) y[i] = b == 0 ? a * x[i] : a * x[i] + b * y[i];
    }

    internal static void Kernel(Index1D tid, ElementRange r, float a, ArrayView<float> x, float b, ArrayView<float> y)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            y[i] = b == 0 ? a * x[i] : a * x[i] + b * y[i];   // 0 * NaN would be NaN
        }
    }

    /// <summary>y = a * x + b * y on the device of <paramref name="y"/>.</summary>
    /// <exception cref="ArgumentException">x and y differ in shape.</exception>
    public static void Run(float a, Tensor x, float b, Tensor y)
    {
        Shape.RequireSame("axpby", x, "x", y, "y");
        var plan = y.Device.Plan(y.Length);
        var k = y.Device.Kernel("axpby", static acc =>
            acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, float, ArrayView<float>, float, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, a, x.View, b, y.View);
    }

    /// <summary>a and b read from the device (<paramref name="row"/>[ia], row[ib]): the same arithmetic as
    /// <see cref="Kernel"/> on the same values, so bitwise its result.</summary>
    internal static void RowKernel(Index1D tid, ElementRange r, ArrayView<float> row, int ia, int ib, ArrayView<float> x, ArrayView<float> y) =>
        Kernel(tid, r, row[ia], x, row[ib], y);

    /// <summary>y = a * x + b * y with a = <paramref name="row"/>[<paramref name="ia"/>] and b = row[<paramref name="ib"/>]
    /// read on the device (a <see cref="StepTable"/> row: the same launch at every step of a run).</summary>
    /// <exception cref="ArgumentException">x and y differ in shape, an index lies outside the row, or the tensors live on different devices.</exception>
    public static void RunFromRow(Tensor row, int ia, int ib, Tensor x, Tensor y)
    {
        Shape.RequireSame("axpby", x, "x", y, "y");
        Shape.RequireRank("axpby", row, "row", 1);
        Shape.RequireSameDevice("axpby", y, row);
        if ((uint)ia >= (uint)row.Length || (uint)ib >= (uint)row.Length)
            throw new ArgumentException($"axpby: coefficients at {ia} and {ib} lie outside a row of {row.Length}");
        var plan = y.Device.Plan(y.Length);
        var k = y.Device.Kernel("axpby-row", static acc =>
            acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, ArrayView<float>, int, int, ArrayView<float>, ArrayView<float>>(RowKernel));
        k(plan.Threads, plan, row.View, ia, ib, x.View, y.View);
    }
}

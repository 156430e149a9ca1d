using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Gemm;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Elementwise;

/// <summary>
/// The deterministic update of the first- and second-order ODE samplers, fused into one pass:
/// cur = Px x + Pe eps (the step's prediction: a score, or an x0 estimate), x' = Cx x + C1 cur +
/// C2 prev, then prev = cur for the next step. Reads x, eps, prev once and writes x, prev once.
/// With C2 = 0 prev is not read (it may hold garbage on the first step).
/// </summary>
public static class MultistepUpdate
{
    /// <summary>Scalars of one update.</summary>
    public readonly record struct Coefficients(float Px, float Pe, float Cx, float C1, float C2);

    /// <summary>The specification: a plain loop.</summary>
    public static void Reference(Span<float> x, ReadOnlySpan<float> eps, Span<float> prev, Coefficients c)
    {
        for (int i = 0; i < x.Length; i++)
        {
            float cur = c.Px * x[i] + c.Pe * eps[i];
            x[i] = c.Cx * x[i] + c.C1 * cur + (c.C2 != 0 ? c.C2 * prev[i] : 0);
            prev[i] = cur;
        }
    }

    /// <summary>Four elements per iteration, (<see cref="VectorIO"/>) one 16-byte load or store per buffer; thread 0 does
    /// the 0..3 elements after the whole quads.</summary>
    internal static void Kernel<TIO>(Index1D tid, ElementRange quads, QuadSplit split, Coefficients c, ArrayView<float> x,
        ArrayView<float> eps, ArrayView<float> prev) where TIO : struct, IQuadIO
    {
        if (tid == 0 && split.Tail > 0)
        {
            int i0 = 4 * split.Full, total = split.Total;
            var pv = c.C2 != 0 ? QuadEdge.Load(prev, i0, total) : default;
            var xv = QuadEdge.Load(x, i0, total);
            var cur = Update(ref xv, QuadEdge.Load(eps, i0, total), pv, c);
            QuadEdge.Store(x, i0, total, xv);
            QuadEdge.Store(prev, i0, total, cur);
        }
        var io = default(TIO);
        for (int q = quads.First(tid), end = quads.End(tid), stride = quads.Stride; q < end; q += stride)
        {
            int e = 4 * q;
            var xv = io.Load(x, e);
            // With C2 = 0 prev is not read (it may hold garbage on the first step).
            var pv = c.C2 != 0 ? io.Load(prev, e) : default;
            var cur = Update(ref xv, io.Load(eps, e), pv, c);
            io.Store(x, e, xv);
            io.Store(prev, e, cur);
        }
    }

    /// <summary>The four lanes: x becomes x', the result is cur (the next prev).</summary>
    private static Float4 Update(ref Float4 x, Float4 eps, Float4 prev, Coefficients c)
    {
        Float4 cur = default;
        cur.X = Lane(ref x.X, eps.X, prev.X, c);
        cur.Y = Lane(ref x.Y, eps.Y, prev.Y, c);
        cur.Z = Lane(ref x.Z, eps.Z, prev.Z, c);
        cur.W = Lane(ref x.W, eps.W, prev.W, c);
        return cur;
    }

    private static float Lane(ref float x, float eps, float prev, Coefficients c)
    {
        float cur = c.Px * x + c.Pe * eps;
        float v = c.Cx * x + c.C1 * cur;
        if (c.C2 != 0) v += c.C2 * prev;
        x = v;
        return cur;
    }

    /// <summary>Rows of the per-run table <see cref="RunFromTable"/> reads: [timestep, Px, Pe, Cx, C1, C2].</summary>
    public const int TableWidth = 6;

    /// <summary>The update's scalars read from the device (a <see cref="StepTable"/> row: [timestep, Px, Pe, Cx, C1, C2]): the
    /// same arithmetic as <see cref="Kernel{TIO}"/> on the same values, so bitwise its result.</summary>
    internal static void TableKernel<TIO>(Index1D tid, ElementRange quads, QuadSplit split, ArrayView<float> row, ArrayView<float> x,
        ArrayView<float> eps, ArrayView<float> prev) where TIO : struct, IQuadIO =>
        Kernel<TIO>(tid, quads, split, new Coefficients(row[1], row[2], row[3], row[4], row[5]), x, eps, prev);

    /// <summary>Applies the update in place to x and prev with its scalars read on the device from <paramref name="row"/>
    /// ([<see cref="TableWidth"/>]: timestep, Px, Pe, Cx, C1, C2). Launched with the same arguments at every step of a run.</summary>
    /// <exception cref="ArgumentException">A shape does not fit, or the tensors live on different devices.</exception>
    public static void RunFromTable(Tensor x, Tensor eps, Tensor prev, Tensor row)
    {
        Shape.RequireSame("multistep update", eps, "eps", x, "x");
        Shape.RequireSame("multistep update", prev, "prev", x, "x");
        Shape.Require("multistep update", row, "row", TableWidth);
        Shape.RequireSameDevice("multistep update", x, row);
        var split = QuadSplit.For(x.Length);
        var plan = x.Device.Plan(split.Full);
        var k = split.Aligned(x.View, eps.View, prev.View)
            ? x.Device.Kernel("multistep-update-table", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, QuadSplit,
                ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(TableKernel<VectorIO>))
            : x.Device.Kernel("multistep-update-table-unaligned", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, QuadSplit,
                ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(TableKernel<ScalarIO>));
        k(plan.Threads, plan, split, row.View, x.View, eps.View, prev.View);
    }

    /// <summary>Applies the update in place to x and prev.</summary>
    public static void Run(Tensor x, Tensor eps, Tensor prev, Coefficients c)
    {
        Shape.RequireSame("multistep update", eps, "eps", x, "x");
        Shape.RequireSame("multistep update", prev, "prev", x, "x");
        var split = QuadSplit.For(x.Length);
        var plan = x.Device.Plan(split.Full);
        var k = split.Aligned(x.View, eps.View, prev.View)
            ? x.Device.Kernel("multistep-update", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, QuadSplit, Coefficients,
                ArrayView<float>, ArrayView<float>, ArrayView<float>>(Kernel<VectorIO>))
            : x.Device.Kernel("multistep-update-unaligned", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, QuadSplit, Coefficients,
                ArrayView<float>, ArrayView<float>, ArrayView<float>>(Kernel<ScalarIO>));
        k(plan.Threads, plan, split, c, x.View, eps.View, prev.View);
    }
}

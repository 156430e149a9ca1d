using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Elementwise;

/// <summary>
/// The per-chain weights of a guidance step, written on the device so that the sampler step needs no read-back:
/// scales[n] = w / sqrt(r[n]) where r[n] &gt; 0, else 0 (DPS's residual-norm rule: each chain's gradient normalised by
/// its own residual; a zero residual has nothing to correct), or scales[n] = w for every chain (the likelihood rule).
/// </summary>
public static class GuidanceScales
{
    /// <summary>The specification: the residual rule when <paramref name="squaredResidual"/> is not empty, else the constant.</summary>
    public static void Reference(ReadOnlySpan<float> squaredResidual, float w, Span<float> scales)
    {
        for (int k = 0; k < scales.Length; k++)
            scales[k] = squaredResidual.IsEmpty ? w : squaredResidual[k] > 0 ? w / MathF.Sqrt(squaredResidual[k]) : 0f;
    }

    internal static void Kernel(Index1D tid, ElementRange r, ArrayView<float> squaredResidual, int useResidual, float w, ArrayView<float> scales)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            if (useResidual == 0) scales[i] = w;
            else
            {
                float s = squaredResidual[i];
                scales[i] = s > 0 ? w / MathF.Sqrt(s) : 0f;
            }
        }
    }

    /// <summary>scales = w / sqrt(squaredResidual) per chain (0 where the residual is not positive), or w everywhere when
    /// <paramref name="squaredResidual"/> is null. Both are [N].</summary>
    /// <exception cref="ArgumentException">The lengths differ.</exception>
    public static void Run(Tensor? squaredResidual, float w, Tensor scales)
    {
        if (squaredResidual is not null) Shape.RequireSame("guidance scales", squaredResidual, "squaredResidual", scales, "scales");
        var plan = scales.Device.Plan(scales.Length);
        if (plan.Total == 0) return;
        var k = scales.Device.Kernel("guidance-scales", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange,
            ArrayView<float>, int, float, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, (squaredResidual ?? scales).View, squaredResidual is null ? 0 : 1, w, scales.View);
    }

    /// <summary>w read from the device (<paramref name="row"/>[iw]): the same arithmetic as <see cref="Kernel"/>.</summary>
    internal static void RowKernel(Index1D tid, ElementRange r, ArrayView<float> squaredResidual, int useResidual, ArrayView<float> row, int iw,
        ArrayView<float> scales) => Kernel(tid, r, squaredResidual, useResidual, row[iw], scales);

    /// <summary>As <see cref="Run"/> with w = <paramref name="row"/>[<paramref name="iw"/>] read on the device (a
    /// <see cref="StepTable"/> row: the same launch at every step of a run).</summary>
    /// <exception cref="ArgumentException">The lengths differ, the index lies outside the row, or the tensors live on different devices.</exception>
    public static void RunFromRow(Tensor? squaredResidual, Tensor row, int iw, Tensor scales)
    {
        if (squaredResidual is not null) Shape.RequireSame("guidance scales", squaredResidual, "squaredResidual", scales, "scales");
        Shape.RequireRank("guidance scales", row, "row", 1);
        Shape.RequireSameDevice("guidance scales", scales, row);
        if ((uint)iw >= (uint)row.Length) throw new ArgumentException($"guidance scales: w at {iw} lies outside a row of {row.Length}");
        var plan = scales.Device.Plan(scales.Length);
        if (plan.Total == 0) return;
        var k = scales.Device.Kernel("guidance-scales-row", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange,
            ArrayView<float>, int, ArrayView<float>, int, ArrayView<float>>(RowKernel));
        k(plan.Threads, plan, (squaredResidual ?? scales).View, squaredResidual is null ? 0 : 1, row.View, iw, scales.View);
    }
}

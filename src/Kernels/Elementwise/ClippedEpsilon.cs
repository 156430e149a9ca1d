using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Reductions;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Elementwise;

/// <summary>
/// Epsilon re-derived from the clipped or thresholded predicted x0, in place (GLIDE's choice, diffusers'
/// use_clipped_model_output): x0 = (x - sqrt(1 - a) eps) / sqrt(a), x0' = <see cref="ClippedDiffusionStep.ClipX0"/>,
/// eps' = (x - sqrt(a) x0') / sqrt(1 - a). A sampler that reads its data prediction back as (x - sqrt(1 - a) eps') / sqrt(a)
/// (DPM-Solver++) then works with x0', as diffusers' DPMSolverMultistepScheduler does after _threshold_sample.
/// </summary>
public static class ClippedEpsilon
{
    /// <summary>The specification: a plain loop. <paramref name="thresholds"/> empty clips to [-clipRange, clipRange]; else it
    /// holds one threshold per item.</summary>
    public static void Reference(ReadOnlySpan<float> x, Span<float> eps, float sqrtAlpha, float sqrtOneMinusAlpha, float clipRange, ReadOnlySpan<float> thresholds)
    {
        int itemLength = thresholds.Length == 0 ? x.Length : x.Length / thresholds.Length;
        for (int i = 0; i < x.Length; i++)
        {
            float x0 = DynamicThreshold.PredictX0(x[i], eps[i], sqrtAlpha, sqrtOneMinusAlpha);
            float p = ClippedDiffusionStep.ClipX0(x0, clipRange, thresholds.Length == 0 ? 0 : 1, thresholds.Length == 0 ? 0f : thresholds[i / itemLength]);
            eps[i] = (x[i] - sqrtAlpha * p) / sqrtOneMinusAlpha;
        }
    }

    internal static void Kernel(Index1D tid, ElementRange r, ArrayView<float> x, ArrayView<float> eps, float sqrtAlpha, float sqrtOneMinusAlpha,
        float clipRange, int itemLength, int thresholded, ArrayView<float> thresholds)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            float xi = x[i];
            float x0 = DynamicThreshold.PredictX0(xi, eps[i], sqrtAlpha, sqrtOneMinusAlpha);
            float p = ClippedDiffusionStep.ClipX0(x0, clipRange, thresholded, thresholded == 0 ? 0f : thresholds[i / itemLength]);
            eps[i] = (xi - sqrtAlpha * p) / sqrtOneMinusAlpha;
        }
    }

    /// <summary>eps re-derived in place from x0 clipped to [-clipRange, clipRange] (<paramref name="thresholds"/> null) or
    /// thresholded by item (thresholds [N], from <see cref="DynamicThreshold.Run"/>).</summary>
    /// <exception cref="ArgumentException">Shapes disagree.</exception>
    /// <exception cref="ArgumentOutOfRangeException">sqrt(1 - a) is 0 (there is no epsilon at alpha_bar 1).</exception>
    public static void Run(Tensor x, Tensor eps, float sqrtAlpha, float sqrtOneMinusAlpha, float clipRange, Tensor? thresholds)
    {
        const string op = "clipped epsilon";
        Shape.RequireSame(op, eps, "eps", x, "x");
        if (thresholds is not null) Shape.Require(op, thresholds, "thresholds", x.N);
        if (!(sqrtOneMinusAlpha > 0)) throw new ArgumentOutOfRangeException(nameof(sqrtOneMinusAlpha), sqrtOneMinusAlpha, $"{op}: needs alpha_bar below 1");
        if (thresholds is null && !(clipRange > 0))
            throw new ArgumentOutOfRangeException(nameof(clipRange), clipRange, $"{op}: the clip range must be positive (clip_sample_range)");
        var plan = x.Device.Plan(x.Length);
        var k = x.Device.Kernel("clipped-epsilon", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange,
            ArrayView<float>, ArrayView<float>, float, float, float, int, int, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, x.View, eps.View, sqrtAlpha, sqrtOneMinusAlpha, clipRange, Math.Max(x.ItemLength, 1), thresholds is null ? 0 : 1,
            (thresholds ?? x).View);
    }
}

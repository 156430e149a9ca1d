using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Reductions;

/// <summary>
/// Imagen's dynamic threshold per batch item (Saharia et al. 2022, section 2.3, as diffusers'
/// _threshold_sample): s_n = clamp(quantile(|x0_n|, ratio), 1, maxValue) over all of item n's values, where
/// x0 = (x - sqrt(1 - a) eps) / sqrt(a) is the step's predicted clean sample, formed on the fly. The
/// quantile is torch.quantile's: rank = ratio (n - 1) in float32, linear interpolation between the values
/// at floor and ceil of the rank (torch.lerp's formula), NaN if the item holds a NaN.
/// </summary>
/// <remarks>One thread per item selects the two order statistics by radix select on the float bits (|x0| is
/// non-negative, so its bit patterns sort as its values): four passes of 8 bits per statistic over the item,
/// each counting into the item's own 256-bin histogram, so no thread waits on another and the result does
/// not depend on the launch. Counts are floats, exact up to 2^24 values per item (torch.quantile's own limit).</remarks>
public static class DynamicThreshold
{
    /// <summary>Histogram bins per item in the scratch tensor.</summary>
    public const int Bins = 256;

    /// <summary>The most values per item (counts are exact floats below this, and torch.quantile refuses more).</summary>
    public const int MaxItemLength = 1 << 24;

    /// <summary>The specification: per item, sort |x0| and interpolate as torch.quantile does, then clamp to [1, maxValue].</summary>
    public static void Reference(ReadOnlySpan<float> x, ReadOnlySpan<float> eps, float sqrtAlpha, float sqrtOneMinusAlpha,
        float ratio, float maxValue, Span<float> thresholds)
    {
        int batch = thresholds.Length, len = x.Length / batch;
        var v = new float[len];
        for (int n = 0; n < batch; n++)
        {
            for (int i = 0; i < len; i++) v[i] = MathF.Abs(PredictX0(x[n * len + i], eps[n * len + i], sqrtAlpha, sqrtOneMinusAlpha));
            thresholds[n] = Clamp(Quantile(v, ratio), 1f, maxValue);
        }
    }

    /// <summary>torch.quantile(values, q) with linear interpolation, in float32 (sorts <paramref name="values"/> in place).</summary>
    public static float Quantile(Span<float> values, float q)
    {
        foreach (float v in values)
            if (float.IsNaN(v)) return float.NaN;
        values.Sort();
        float weight = Weight(values.Length, q, out int below, out int above);
        return Lerp(values[below], values[above], weight);
    }

    /// <summary>torch.lerp's float formula: exact at both ends.</summary>
    public static float Lerp(float a, float b, float w) => w < 0.5f ? a + w * (b - a) : b - (b - a) * (1f - w);

    /// <summary>torch.clamp(v, lo, hi) = min(max(v, lo), hi): a NaN stays NaN, and hi wins when lo &gt; hi.</summary>
    public static float Clamp(float v, float lo, float hi)
    {
        float r = v < lo ? lo : v;
        return r > hi ? hi : r;
    }

    /// <summary>torch.clamp(v, -s, s) for s &gt;= 0 or NaN, bitwise <see cref="Clamp"/>(v, -s, s) there (NaN stays NaN,
    /// -0 stays -0, the bounds come out exactly): |v| &gt; s ? s with v's sign : v. One compare on |v|, one bit operation
    /// and one select, where the two-sided clamp takes five instructions on a GPU.</summary>
    public static float ClampSymmetric(float v, float s) =>
        MathF.Abs(v) > s ? Interop.IntAsFloat(Interop.FloatAsInt(s) | (Interop.FloatAsInt(v) & 0x80000000u)) : v;

    /// <summary>The predicted x0 exactly as every thresholded or clipped step computes it.</summary>
    public static float PredictX0(float x, float eps, float sqrtAlpha, float sqrtOneMinusAlpha) => (x - sqrtOneMinusAlpha * eps) / sqrtAlpha;

    // rank = q * (n - 1) in float32 as torch; ceil(rank) is floor + 1 exactly when the fraction is non-zero.
    private static float Weight(int length, float q, out int below, out int above)
    {
        float rank = q * (float)(length - 1);
        below = (int)rank;
        float weight = rank - below;
        above = weight > 0 ? below + 1 : below;
        return weight;
    }

    internal static void Kernel(Index1D item, int itemLength, float sqrtAlpha, float sqrtOneMinusAlpha, float ratio, float maxValue,
        ArrayView<float> x, ArrayView<float> eps, ArrayView<float> histogram, ArrayView<float> thresholds)
    {
        int offset = item * itemLength;
        for (int i = 0; i < itemLength; i++)
        {
            if (Key(x[offset + i], eps[offset + i], sqrtAlpha, sqrtOneMinusAlpha) > 0x7F800000u)
            {
                thresholds[item] = float.NaN;   // torch.quantile: a NaN anywhere in the row gives NaN
                return;
            }
        }
        float weight = Weight(itemLength, ratio, out int below, out int above);
        float lo = Select(item, itemLength, below, sqrtAlpha, sqrtOneMinusAlpha, x, eps, histogram);
        float hi = above == below ? lo : Select(item, itemLength, above, sqrtAlpha, sqrtOneMinusAlpha, x, eps, histogram);
        thresholds[item] = Clamp(Lerp(lo, hi, weight), 1f, maxValue);
    }

    // |x0| as its float bits: clearing the sign bit is the absolute value.
    private static uint Key(float x, float eps, float sqrtAlpha, float sqrtOneMinusAlpha) =>
        Interop.FloatAsInt(PredictX0(x, eps, sqrtAlpha, sqrtOneMinusAlpha)) & 0x7FFFFFFFu;

    // The rank-th smallest |x0| of the item (0-based): one 8-bit digit per pass, most significant first.
    private static float Select(int item, int itemLength, int rank, float sqrtAlpha, float sqrtOneMinusAlpha,
        ArrayView<float> x, ArrayView<float> eps, ArrayView<float> histogram)
    {
        int offset = item * itemLength, h = item * Bins;
        uint prefix = 0, known = 0;
        for (int shift = 24; shift >= 0; shift -= 8)
        {
            for (int d = 0; d < Bins; d++) histogram[h + d] = 0;
            for (int i = 0; i < itemLength; i++)
            {
                uint u = Key(x[offset + i], eps[offset + i], sqrtAlpha, sqrtOneMinusAlpha);
                if ((u & known) == prefix) histogram[h + (int)((u >> shift) & 0xFFu)] += 1f;
            }
            int digit = 0;
            for (; digit < Bins - 1; digit++)
            {
                int count = (int)histogram[h + digit];
                if (rank < count) break;
                rank -= count;
            }
            prefix |= (uint)digit << shift;
            known |= 0xFFu << shift;
        }
        return Interop.IntAsFloat(prefix);
    }

    /// <summary>The threshold of each item of the x0 predicted from x and eps ([N, ...]) into <paramref name="thresholds"/>
    /// ([N]); <paramref name="histogram"/> is scratch of N * <see cref="Bins"/> floats.</summary>
    /// <exception cref="ArgumentException">Shapes disagree, an item holds more than 2^24 values, or ratio is outside [0, 1].</exception>
    public static void Run(Tensor x, Tensor eps, float sqrtAlpha, float sqrtOneMinusAlpha, float ratio, float maxValue,
        Tensor histogram, Tensor thresholds)
    {
        const string op = "dynamic threshold";
        Shape.RequireSame(op, eps, "eps", x, "x");
        Shape.Require(op, thresholds, "thresholds", x.N);
        Shape.Require(op, histogram, "histogram", x.N * Bins);
        if (x.ItemLength < 1 || x.ItemLength > MaxItemLength)
            throw new ArgumentException($"{op}: an item of {x.ItemLength} values; expected 1 to {MaxItemLength} (torch.quantile's limit)");
        if (!(ratio >= 0 && ratio <= 1)) throw new ArgumentOutOfRangeException(nameof(ratio), ratio, $"{op}: the quantile must be in [0, 1]");
        var k = x.Device.Kernel("dynamic-threshold", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, int, float, float, float, float,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(Kernel));
        k(x.N, x.ItemLength, sqrtAlpha, sqrtOneMinusAlpha, ratio, maxValue, x.View, eps.View, histogram.View, thresholds.View);
    }
}

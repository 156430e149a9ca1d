using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Norm;

/// <summary>
/// GroupNorm (Wu and He 2018, as torch.nn.GroupNorm): per item and group of C/G channels,
/// y = (x - mean) / sqrt(var + eps) * gamma[c] + beta[c] with the biased variance, optionally
/// followed by SiLU (fused: the U-Net always applies one right after). Two launches: statistics
/// (one thread per item and group, two passes over the group for an accurate variance), then an
/// elementwise normalisation.
/// </summary>
public static class GroupNorm
{
    /// <summary>The specification: double-precision statistics, then a plain loop.</summary>
    public static void Reference(ReadOnlySpan<float> x, int n, int c, int spatial, int groups,
        ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta, float eps, bool silu, Span<float> y)
    {
        int cg = c / groups, len = cg * spatial;
        for (int b = 0; b < n; b++)
            for (int g = 0; g < groups; g++)
            {
                int start = (b * c + g * cg) * spatial;
                double mean = 0, var = 0;
                for (int i = 0; i < len; i++) mean += x[start + i];
                mean /= len;
                for (int i = 0; i < len; i++) var += (x[start + i] - mean) * (x[start + i] - mean);
                var /= len;
                double rstd = 1 / Math.Sqrt(var + eps);
                for (int i = 0; i < len; i++)
                {
                    int ch = g * cg + i / spatial;
                    float v = (float)((x[start + i] - mean) * rstd * gamma[ch] + beta[ch]);
                    y[start + i] = silu ? v / (1 + MathF.Exp(-v)) : v;
                }
            }
    }

    // Sums in blocks of 256 so float rounding grows with the block count, not the element count.
    internal static void StatsKernel(Index1D group, int groupLength, float eps, ArrayView<float> x, ArrayView<float> stats)
    {
        int start = group * groupLength;
        float total = 0;
        for (int b = 0; b < groupLength; b += 256)
        {
            float block = 0;
            int end = b + 256 < groupLength ? b + 256 : groupLength;
            for (int i = b; i < end; i++) block += x[start + i];
            total += block;
        }
        float mean = total / groupLength;
        float sq = 0;
        for (int b = 0; b < groupLength; b += 256)
        {
            float block = 0;
            int end = b + 256 < groupLength ? b + 256 : groupLength;
            for (int i = b; i < end; i++)
            {
                float d = x[start + i] - mean;
                block += d * d;
            }
            sq += block;
        }
        stats[2 * group] = mean;
        stats[2 * group + 1] = 1f / MathF.Sqrt(sq / groupLength + eps);
    }

    internal static void NormalizeKernel(Index1D tid, ElementRange r, int channels, int spatial, int channelsPerGroup, int silu,
        ArrayView<float> x, ArrayView<float> stats, ArrayView<float> gamma, ArrayView<float> beta, ArrayView<float> y)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            int plane = i / spatial;
            int ch = plane % channels;
            int group = plane / channelsPerGroup;   // = item * groups + ch / channelsPerGroup
            float v = (x[i] - stats[2 * group]) * stats[2 * group + 1] * gamma[ch] + beta[ch];
            y[i] = silu != 0 ? v / (1 + MathF.Exp(-v)) : v;
        }
    }

    /// <summary>y = GroupNorm(x) (then SiLU when <paramref name="silu"/>); x [N, C, ...], gamma and
    /// beta [C]; y may be x.</summary>
    /// <exception cref="ArgumentException">Shapes differ or C is not divisible by groups.</exception>
    public static void Run(Tensor x, int groups, Tensor gamma, Tensor beta, float eps, Tensor y, bool silu = false)
    {
        Shape.RequireSame("group norm", x, "x", y, "y");
        if (x.Rank < 2) throw new ArgumentException($"group norm: x must be [N, C, ...] but got {Shape.Format(x.Shape)}");
        int c = x.Shape[1];
        if (groups < 1 || c % groups != 0)
            throw new ArgumentException($"group norm: {c} channels of x {Shape.Format(x.Shape)} cannot be split into {groups} groups");
        Shape.Require("group norm", gamma, "gamma", c);
        Shape.Require("group norm", beta, "beta", c);
        if (!(eps >= 0)) throw new ArgumentOutOfRangeException(nameof(eps), eps, "group norm: eps must be >= 0");
        var dev = x.Device;
        int n = x.N, spatial = x.ItemLength / c, cg = c / groups;
        var stats = dev.Scratch(2 * n * groups);
        var statsKernel = dev.Kernel("group-norm-stats", acc => acc.LoadAutoGroupedStreamKernel<Index1D, int, float, ArrayView<float>, ArrayView<float>>(StatsKernel));
        statsKernel(n * groups, cg * spatial, eps, x.View, stats);
        var plan = dev.Plan(x.Length);
        var norm = dev.Kernel("group-norm-normalize", acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int, int, int, int,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(NormalizeKernel));
        norm(plan.Threads, plan, c, spatial, cg, silu ? 1 : 0, x.View, stats, gamma.View, beta.View, y.View);
    }
}

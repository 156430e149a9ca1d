using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Activations;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Norm;

/// <summary>
/// Group normalisation (Wu &amp; He 2018; torch.nn.GroupNorm): per batch item and group of C/groups
/// channels, y = (x - mean) / sqrt(var + eps) * gamma[c] + beta[c] with the biased variance over the
/// group's channels and all spatial positions, optionally followed by SiLU (fused, as the U-Net's
/// resnet blocks always apply it next).
/// </summary>
/// <remarks>
/// A group's elements are contiguous in NC... layout. Two variants of the same math:
/// <list type="bullet">
/// <item>CPU (barrier-free, three launches): each group is split into contiguous chunks; one thread per
/// chunk computes the chunk's count, mean and centred sum of squares (two passes over a cache-hot chunk);
/// one thread per group merges its chunks with Chan et al.'s pairwise formula in a fixed order; an
/// <see cref="ElementRange"/> pass normalises.</item>
/// <item>GPU (one launch): one thread group per (n, group). When the group's slab fits shared memory
/// (<see cref="GroupNormSlab"/>, every layer of the shipped models): x is read once with 16-byte loads,
/// both passes of the variance run on the staged copy, sums are warp shuffles. Otherwise
/// (<see cref="FusedKernel"/>) it sums in shared memory, then sums squared deviations from that mean
/// (two-pass variance), then normalises, reading x three times.</item>
/// </list>
/// Both avoid E[x^2] - E[x]^2, which cancels catastrophically when |mean| is large against the spread.
/// </remarks>
public static class GroupNorm
{
    /// <summary>The specification: two passes in double precision per (n, group).</summary>
    public static void Reference(ReadOnlySpan<float> x, int batch, int channels, int spatial, int groups,
        ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta, float eps, Span<float> y, bool silu = false)
    {
        int perGroup = channels / groups;
        int length = perGroup * spatial;
        for (int item = 0; item < batch * groups; item++)
        {
            int offset = item * length;
            double sum = 0;
            for (int i = 0; i < length; i++) sum += x[offset + i];
            double mean = sum / length;
            double sq = 0;
            for (int i = 0; i < length; i++) sq += (x[offset + i] - mean) * (x[offset + i] - mean);
            double rstd = 1 / Math.Sqrt(sq / length + eps);
            int g = item % groups;
            for (int i = 0; i < length; i++)
            {
                int c = g * perGroup + i / spatial;
                double v = (x[offset + i] - mean) * rstd * gamma[c] + beta[c];
                if (silu) v /= 1 + Math.Exp(-v);
                y[offset + i] = (float)v;
            }
        }
    }

    // ---- CPU variant: chunk statistics, merge, normalise (no barriers) ----

    /// <summary>Thread (item, part): count, mean and centred sum of squares of one chunk of one group.</summary>
    internal static void ChunkStatsKernel(Index1D tid, ElementRange r, int parts, int groupLength,
        ArrayView<float> x, ArrayView<float> partial)
    {
        int item = tid / parts;
        int p = tid - item * parts;
        int offset = item * groupLength;
        float sum = 0;
        int count = 0;
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(p, k);
            if (i >= r.Total) break;
            sum += x[offset + i];
            count++;
        }
        float mean = count > 0 ? sum / count : 0f;
        float m2 = 0;
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(p, k);
            if (i >= r.Total) break;
            float d = x[offset + i] - mean;
            m2 += d * d;
        }
        partial[3 * tid] = count;
        partial[3 * tid + 1] = mean;
        partial[3 * tid + 2] = m2;
    }

    /// <summary>Thread item: merges its chunks (Chan, Golub &amp; LeVeque 1979) and stores mean and 1/std.</summary>
    internal static void MergeKernel(Index1D item, int parts, float eps, ArrayView<float> partial, ArrayView<float> stats)
    {
        float count = 0, mean = 0, m2 = 0;
        for (int p = 0; p < parts; p++)
        {
            int at = 3 * (item * parts + p);
            float nb = partial[at];
            if (nb == 0f) continue;
            float total = count + nb;
            float delta = partial[at + 1] - mean;
            mean += delta * (nb / total);
            m2 += partial[at + 2] + delta * delta * (count * nb / total);
            count = total;
        }
        stats[2 * item] = mean;
        stats[2 * item + 1] = 1f / MathF.Sqrt(m2 / MathF.Max(count, 1f) + eps);
    }

    /// <summary>Elementwise: y = (x - mean) * rstd * gamma[c] + beta[c], then SiLU if asked.</summary>
    internal static void NormalizeKernel(Index1D tid, ElementRange r, int channels, int spatial, int perGroup, int silu,
        ArrayView<float> x, ArrayView<float> stats, ArrayView<float> gamma, ArrayView<float> beta, ArrayView<float> y)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            int nc = i / spatial;
            int c = nc % channels;
            int item = (nc - c) / perGroup + c / perGroup;   // n * groups + g
            float v = (x[i] - stats[2 * item]) * stats[2 * item + 1] * gamma[c] + beta[c];
            y[i] = silu != 0 ? Silu.Apply(v) : v;
        }
    }

    // ---- GPU variant: one thread group per (n, group), shared-memory reductions ----

    /// <summary>Largest thread group the GPU variant uses (shared memory is sized for it).</summary>
    internal const int MaxGroupThreads = 256;

    /// <summary>Sum of one value per thread of the group (Group.DimX a power of two); every thread gets it.</summary>
    private static float GroupSum(ArrayView<float> shared, float value)
    {
        int t = Group.IdxX;
        shared[t] = value;
        Group.Barrier();
        for (int s = Group.DimX / 2; s > 0; s >>= 1)
        {
            if (t < s) shared[t] += shared[t + s];
            Group.Barrier();
        }
        float result = shared[0];
        Group.Barrier();   // shared is reused by the next reduction
        return result;
    }

    internal static void FusedKernel(int groups, int perGroup, int spatial, float eps, int silu,
        ArrayView<float> x, ArrayView<float> gamma, ArrayView<float> beta, ArrayView<float> y)
    {
        var shared = SharedMemory.Allocate<float>(MaxGroupThreads);
        int item = Grid.IdxX;
        int t = Group.IdxX;
        int stride = Group.DimX;
        int length = perGroup * spatial;
        int offset = item * length;
        float sum = 0;
        for (int i = t; i < length; i += stride) sum += x[offset + i];
        float mean = GroupSum(shared, sum) / length;
        float sq = 0;
        for (int i = t; i < length; i += stride)
        {
            float d = x[offset + i] - mean;
            sq += d * d;
        }
        float rstd = 1f / MathF.Sqrt(GroupSum(shared, sq) / length + eps);
        int c0 = (item % groups) * perGroup;
        for (int i = t; i < length; i += stride)
        {
            int c = c0 + i / spatial;
            float v = (x[offset + i] - mean) * rstd * gamma[c] + beta[c];
            y[offset + i] = silu != 0 ? Silu.Apply(v) : v;
        }
    }

    /// <summary>Threads per group for the GPU variant on this device: a power of two up to 256.</summary>
    internal static int GroupThreads(GpuDevice device)
    {
        int limit = Math.Min(MaxGroupThreads, device.Accelerator.MaxNumThreadsPerGroup);
        int t = 1;
        while (t * 2 <= limit) t *= 2;
        return t;
    }

    /// <summary>y = GroupNorm(x) (then SiLU when <paramref name="silu"/>); x is [N, C, ...spatial],
    /// gamma and beta are [C], y has x's shape and may be x (in place).</summary>
    /// <exception cref="ArgumentException">Shapes do not fit, or C is not a multiple of groups.</exception>
    /// <exception cref="ArgumentOutOfRangeException">groups &lt; 1 or eps is negative or not finite.</exception>
    public static void Run(Tensor x, int groups, Tensor gamma, Tensor beta, float eps, Tensor y, bool silu = false)
    {
        if (x.Rank < 2)
            throw new ArgumentException($"group norm: expected x of rank >= 2 ([N, C, ...]) but got shape {Shape.Format(x.Shape)}");
        int batch = x.Shape[0], channels = x.Shape[1];
        if (groups < 1) throw new ArgumentOutOfRangeException(nameof(groups), groups, "group norm: groups must be >= 1");
        if (channels % groups != 0)
            throw new ArgumentException($"group norm: {channels} channels of x {Shape.Format(x.Shape)} do not split into {groups} groups");
        if (!(eps >= 0) || !float.IsFinite(eps)) throw new ArgumentOutOfRangeException(nameof(eps), eps, "group norm: eps must be finite and >= 0");
        Shape.Require("group norm", gamma, "gamma", channels);
        Shape.Require("group norm", beta, "beta", channels);
        Shape.RequireSame("group norm", x, "x", y, "y");
        Shape.RequireSameDevice("group norm", x, gamma);
        Shape.RequireSameDevice("group norm", x, beta);
        if (x.Length == 0) return;
        int spatial = x.Length / (batch * channels);
        int perGroup = channels / groups;
        var device = x.Device;
        if (!device.UsesGpuKernels) RunChunked(x, batch * groups, perGroup, spatial, gamma, beta, eps, y, silu);
        else if (GroupNormSlab.Fits(x, y, perGroup, spatial))
            GroupNormSlab.Run(x, batch * groups, GroupThreads(device), groups, perGroup, spatial, gamma, beta, eps, y, silu);
        else RunFused(x, batch * groups, GroupThreads(device), groups, perGroup, spatial, gamma, beta, eps, y, silu);
    }

    internal static void RunFused(Tensor x, int items, int groupThreads, int groups, int perGroup, int spatial,
        Tensor gamma, Tensor beta, float eps, Tensor y, bool silu)
    {
        var k = x.Device.Kernel("group-norm-fused", static acc => acc.LoadStreamKernel<int, int, int, float, int,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(FusedKernel));
        k(new KernelConfig(items, groupThreads), groups, perGroup, spatial, eps, silu ? 1 : 0, x.View, gamma.View, beta.View, y.View);
    }

    internal static void RunChunked(Tensor x, int items, int perGroup, int spatial, Tensor gamma, Tensor beta, float eps, Tensor y, bool silu)
    {
        var device = x.Device;
        int length = perGroup * spatial;
        int parts = device.IsCpu
            ? Math.Clamp((length + ElementRange.CpuMinChunk - 1) / ElementRange.CpuMinChunk, 1, Math.Max(1, ElementRange.CpuThreads / items))
            : Math.Clamp(length / 256, 1, 256);
        var plan = ElementRange.Explicit(length, parts, chunked: device.IsCpu);
        var scratch = device.Scratch(items * parts * 3 + items * 2);
        var partial = scratch.SubView(0, items * parts * 3);
        var stats = scratch.SubView(items * parts * 3, items * 2);
        var chunkStats = device.Kernel("group-norm-chunk-stats", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int, int,
            ArrayView<float>, ArrayView<float>>(ChunkStatsKernel));
        var merge = device.Kernel("group-norm-merge", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, int, float,
            ArrayView<float>, ArrayView<float>>(MergeKernel));
        var normalize = device.Kernel("group-norm-normalize", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int, int, int, int,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(NormalizeKernel));
        chunkStats(items * parts, plan, parts, length, x.View, partial);
        merge(items, parts, eps, partial, stats);
        var all = device.Plan(x.Length);
        normalize(all.Threads, all, gamma.Length, spatial, perGroup, silu ? 1 : 0, x.View, stats, gamma.View, beta.View, y.View);
    }
}

using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Activations;
using PosteriorGpu.Kernels.Gemm;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Norm;

/// <summary>
/// GroupNorm (+SiLU) on a GPU reading x once: one thread group per (n, group) copies the group's slab (its
/// C/groups channels x all positions, contiguous in NC... layout) into shared memory with 16-byte loads,
/// sums it while loading, takes the centred sum of squares from shared memory (the two-pass variance, no
/// E[x^2] - E[x]^2 cancellation), then normalises from shared memory and writes with 16-byte stores.
/// Group sums are warp shuffles, then one shared slot per warp, added in a fixed order (deterministic).
/// <see cref="GroupNorm.FusedKernel"/> (three reads of x, scalar loads, tree reductions) remains for slabs
/// that do not fit (<see cref="Fits"/>).
/// </summary>
internal static class GroupNormSlab
{
    /// <summary>Largest slab staged in shared memory: 40 KB of floats, under the 48 KB a group may use without
    /// opting in (the rest holds the per-warp partial sums).</summary>
    internal const int MaxSlab = 10 * 1024;

    /// <summary>Warps per group at most (partial-sum slots).</summary>
    internal const int MaxWarps = 32;

    /// <summary>Whether the one-read kernel serves this shape: positions a multiple of 4 (a 16-byte vector
    /// never straddles two channels), the slab fits <see cref="MaxSlab"/>, and x and y start 16-byte aligned.</summary>
    internal static bool Fits(Tensor x, Tensor y, int perGroup, int spatial) =>
        spatial % 4 == 0 && (long)perGroup * spatial <= MaxSlab && Aligned16(x) && Aligned16(y);

    /// <summary>Whether a tensor's view starts 16-byte aligned (its buffer does; a slice may not).</summary>
    internal static bool Aligned16(Tensor t) => ((IContiguousArrayView)t.View).IndexInBytes % 16 == 0;

    /// <summary>Sum over the warp, valid in its first lane (shuffles down).</summary>
    internal static float WarpSum(float value)
    {
        for (int delta = Warp.WarpSize / 2; delta > 0; delta /= 2)
            value += Warp.ShuffleDown(value, delta);
        return value;
    }

    /// <summary>Sum over the thread group (every thread gets it): warp shuffles, then the warps' partials in order.</summary>
    internal static float GroupSum(ArrayView<float> partials, float value)
    {
        value = WarpSum(value);
        if (Warp.IsFirstLane) partials[Warp.WarpIdx] = value;
        Group.Barrier();
        int warps = (Group.DimX + Warp.WarpSize - 1) / Warp.WarpSize;
        float total = 0;
        for (int w = 0; w < warps; w++) total += partials[w];
        Group.Barrier();   // the slots are reused by the next sum
        return total;
    }

    /// <summary>1 / sqrt(variance + eps) of a group's <paramref name="quads"/> float4s from their mean: the centred sum
    /// of squares (the two-pass variance), each thread over quads t, t + threads, ..., then <see cref="GroupSum"/>. Shared
    /// by this kernel (from its shared-memory copy) and <see cref="GroupNormTable"/> (from global memory), so the two
    /// give the same rstd bit for bit.</summary>
    internal static float Rstd(ArrayView<Float4> values, int quads, float mean, float eps, ArrayView<float> partials)
    {
        float sq = 0;
        for (int q = Group.IdxX; q < quads; q += Group.DimX)
        {
            var v = values[q];
            float a = v.X - mean, b = v.Y - mean, c = v.Z - mean, d = v.W - mean;
            sq += (a * a + b * b) + (c * c + d * d);
        }
        return 1f / MathF.Sqrt(GroupSum(partials, sq) / (quads * 4f) + eps);
    }

    internal static void Kernel(int groups, int perGroup, int spatial, float eps, int silu,
        ArrayView<float> x, ArrayView<float> gamma, ArrayView<float> beta, ArrayView<float> y)
    {
        var slab = SharedMemory.GetDynamic<Float4>();
        var partials = SharedMemory.Allocate<float>(MaxWarps);
        int item = Grid.IdxX, t = Group.IdxX, threads = Group.DimX;
        int quads = perGroup * spatial / 4, quadsPerChannel = spatial / 4;
        var x4 = x.AsAligned16().Cast<Float4>();
        var y4 = y.AsAligned16().Cast<Float4>();
        int first = item * quads;

        // The one read of x: into shared memory, summed on the way.
        float sum = 0;
        for (int q = t; q < quads; q += threads)
        {
            var v = x4[first + q];
            slab[q] = v;
            sum += (v.X + v.Y) + (v.Z + v.W);
        }
        float count = quads * 4f;
        float mean = GroupSum(partials, sum) / count;   // its barrier also publishes the slab

        float rstd = Rstd(slab, quads, mean, eps, partials);

        int c0 = (item % groups) * perGroup;
        for (int q = t; q < quads; q += threads)
        {
            int ch = c0 + q / quadsPerChannel;
            float scale = rstd * gamma[ch], shift = beta[ch] - mean * scale;
            var v = slab[q];
            Float4 o;
            o.X = v.X * scale + shift; o.Y = v.Y * scale + shift; o.Z = v.Z * scale + shift; o.W = v.W * scale + shift;
            if (silu != 0)
            {
                o.X = Silu.Apply(o.X); o.Y = Silu.Apply(o.Y); o.Z = Silu.Apply(o.Z); o.W = Silu.Apply(o.W);
            }
            y4[first + q] = o;
        }
    }

    /// <summary>Launches one group of <paramref name="groupThreads"/> (a multiple of the warp size) per
    /// (n, group); the caller has checked <see cref="Fits"/>.</summary>
    internal static void Run(Tensor x, int items, int groupThreads, int groups, int perGroup, int spatial,
        Tensor gamma, Tensor beta, float eps, Tensor y, bool silu)
    {
        var k = x.Device.Kernel("group-norm-slab", static acc => acc.LoadStreamKernel<int, int, int, float, int,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(Kernel));
        var config = new KernelConfig(new Index1D(items), new Index1D(groupThreads),
            SharedMemoryConfig.RequestDynamic<Float4>(perGroup * spatial / 4));
        k(config, groups, perGroup, spatial, eps, silu ? 1 : 0, x.View, gamma.View, beta.View, y.View);
    }
}

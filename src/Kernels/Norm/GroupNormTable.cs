using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Gemm;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Norm;

/// <summary>
/// GroupNorm as a per-(image, channel) affine map for a consumer that normalises while it loads (the convolution of
/// <see cref="Conv.Conv2dNormalized"/>): GroupNorm(x)[n, c, p] = x[n, c, p] scale[n, c] + shift[n, c] with
/// scale = gamma[c] rstd[n, g], shift = beta[c] - mean[n, g] scale. One thread group per (n, group) computes mean and
/// rstd exactly as <see cref="GroupNormSlab"/> does (the same 16-byte reads in the same thread order, the same warp
/// shuffles and fixed-order partials, the two-pass variance), but from global memory and without writing the
/// normalised tensor: the table is 2 floats per channel, so GroupNorm's output never goes through memory.
/// </summary>
internal static class GroupNormTable
{
    /// <summary>Whether the kernel serves this shape: positions a multiple of 4 and x 16-byte aligned (any slab size).</summary>
    internal static bool Fits(Tensor x, int spatial) => spatial % 4 == 0 && GroupNormSlab.Aligned16(x);

    /// <summary>The specification: table[2 (n C + c)] = scale, [+1] = shift from double-precision group statistics.</summary>
    internal static void Reference(ReadOnlySpan<float> x, int batch, int channels, int groups, int spatial,
        ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta, float eps, Span<float> table)
    {
        int perGroup = channels / groups, length = perGroup * spatial;
        for (int n = 0; n < batch; n++)
            for (int g = 0; g < groups; g++)
            {
                var slab = x.Slice((n * groups + g) * length, length);
                double mean = 0, sq = 0;
                foreach (float v in slab) mean += v;
                mean /= length;
                foreach (float v in slab) sq += (v - mean) * (v - mean);
                double rstd = 1 / Math.Sqrt(sq / length + eps);
                for (int c = g * perGroup; c < (g + 1) * perGroup; c++)
                {
                    double scale = gamma[c] * rstd;
                    table[2 * (n * channels + c)] = (float)scale;
                    table[2 * (n * channels + c) + 1] = (float)(beta[c] - mean * scale);
                }
            }
    }

    internal static void Kernel(int groups, int perGroup, int spatial, float eps,
        ArrayView<float> x, ArrayView<float> gamma, ArrayView<float> beta, ArrayView<float> table)
    {
        var partials = SharedMemory.Allocate<float>(GroupNormSlab.MaxWarps);
        int item = Grid.IdxX, t = Group.IdxX, threads = Group.DimX;
        int quads = perGroup * spatial / 4;
        var x4 = x.AsAligned16().Cast<Float4>();
        int first = item * quads;

        float sum = 0;
        for (int q = t; q < quads; q += threads)
        {
            var v = x4[first + q];
            sum += (v.X + v.Y) + (v.Z + v.W);
        }
        float count = quads * 4f;
        float mean = GroupNormSlab.GroupSum(partials, sum) / count;

        float rstd = GroupNormSlab.Rstd(x4.SubView(first, quads), quads, mean, eps, partials);

        // item = n groups + g, so channel c0 + j of image n is row item perGroup + j of the [N C, 2] table.
        int c0 = (item % groups) * perGroup;
        for (int j = t; j < perGroup; j += threads)
        {
            float scale = rstd * gamma[c0 + j];
            table[2 * (item * perGroup + j)] = scale;
            table[2 * (item * perGroup + j) + 1] = beta[c0 + j] - mean * scale;
        }
    }

    /// <summary>Fills <paramref name="table"/> (2 N C floats) for x [N, C, ...] with <paramref name="groups"/> groups; one
    /// group of <paramref name="groupThreads"/> threads (a multiple of the warp size) per (n, group). The caller has
    /// checked the shapes and <see cref="Fits"/>.</summary>
    internal static void Run(Tensor x, int groups, Tensor gamma, Tensor beta, float eps, ArrayView<float> table, int groupThreads)
    {
        int batch = x.Shape[0], channels = x.Shape[1], spatial = x.Length / Math.Max(1, batch * channels);
        var k = x.Device.Kernel("group-norm-table", static acc => acc.LoadStreamKernel<int, int, int, float,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(Kernel));
        k(new KernelConfig(batch * groups, groupThreads), groups, channels / groups, spatial, eps, x.View, gamma.View, beta.View, table);
    }
}

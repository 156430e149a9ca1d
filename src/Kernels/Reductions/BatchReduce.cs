using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Reductions;

/// <summary>
/// Reductions per batch item: sum, dot product and squared norm, each giving one number per item
/// in an [N] tensor. Two passes: P partial sums per item (strided on GPUs, chunked on the CPU),
/// then one thread per item adds its P partials in a fixed order, so the result does not depend on
/// thread timing. On a GPU an item of at most <see cref="GroupMaxLength"/> elements is reduced by one group of
/// threads in one launch instead (strided loads, a warp-shuffle group sum in a fixed order): the divergence checks of a
/// batch-1 sampler step reduce 3,072-element items, where the two-pass path cost two launches and a one-thread finish.
/// </summary>
public static class BatchReduce
{
    /// <summary>What is summed per element.</summary>
    public enum Op
    {
        /// <summary>x[i].</summary>
        Sum,
        /// <summary>x[i] * y[i].</summary>
        Dot,
        /// <summary>x[i]^2.</summary>
        SquaredNorm,
    }

    /// <summary>The specification: one double-precision loop per item.</summary>
    public static void Reference(Op op, ReadOnlySpan<float> x, ReadOnlySpan<float> y, int batch, Span<float> result)
    {
        int len = x.Length / batch;
        for (int n = 0; n < batch; n++)
        {
            double acc = 0;
            for (int i = n * len; i < (n + 1) * len; i++)
                acc += op switch { Op.Sum => x[i], Op.Dot => (double)x[i] * y[i], _ => (double)x[i] * x[i] };
            result[n] = (float)acc;
        }
    }

    internal static void PartialKernel(Index1D tid, ElementRange r, int parts, int itemLength, int op,
        ArrayView<float> x, ArrayView<float> y, ArrayView<float> partial)
    {
        int item = tid / parts;
        int p = tid - item * parts;
        int offset = item * itemLength;
        float acc = 0;
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(p, k);
            if (i >= r.Total) break;
            float a = x[offset + i];
            acc += op == 0 ? a : op == 1 ? a * y[offset + i] : a * a;
        }
        partial[tid] = acc;
    }

    /// <summary>Items up to this many elements take the one-launch group reduction on a GPU (one group per item).</summary>
    internal const int GroupMaxLength = 1 << 16;

    internal static void GroupKernel(int itemLength, int op, ArrayView<float> x, ArrayView<float> y, ArrayView<float> result)
    {
        var partials = SharedMemory.Allocate<float>(Norm.GroupNormSlab.MaxWarps);
        int item = Grid.IdxX, offset = item * itemLength;
        float acc = 0;
        for (int i = Group.IdxX; i < itemLength; i += Group.DimX)
        {
            float a = x[offset + i];
            acc += op == 0 ? a : op == 1 ? a * y[offset + i] : a * a;
        }
        float total = Norm.GroupNormSlab.GroupSum(partials, acc);
        if (Group.IdxX == 0) result[item] = total;
    }

    internal static void FinishKernel(Index1D item, int parts, ArrayView<float> partial, ArrayView<float> result)
    {
        float acc = 0;
        for (int p = 0; p < parts; p++) acc += partial[item * parts + p];
        result[item] = acc;
    }

    /// <summary>Per-item sum of x into <paramref name="result"/> ([N]).</summary>
    public static void Sum(Tensor x, Tensor result) => Run(Op.Sum, x, x, result);

    /// <summary>Per-item dot product of x and y into <paramref name="result"/> ([N]).</summary>
    public static void Dot(Tensor x, Tensor y, Tensor result)
    {
        Shape.RequireSame("dot", x, "x", y, "y");
        Run(Op.Dot, x, y, result);
    }

    /// <summary>Per-item squared L2 norm of x into <paramref name="result"/> ([N]).</summary>
    public static void SquaredNorm(Tensor x, Tensor result) => Run(Op.SquaredNorm, x, x, result);

    private static void Run(Op op, Tensor x, Tensor y, Tensor result)
    {
        int batch = x.N;
        Shape.Require("batch reduce", result, "result", batch);
        var device = x.Device;
        int len = x.ItemLength;
        if (device.UsesGpuKernels && len <= GroupMaxLength)
        {
            if (batch == 0) return;
            var group = device.Kernel("batch-reduce-group", static acc => acc.LoadStreamKernel<int, int, ArrayView<float>, ArrayView<float>,
                ArrayView<float>>(GroupKernel));
            group(new KernelConfig(batch, Norm.GroupNorm.GroupThreads(device)), len, (int)op, x.View, y.View, result.View);
            return;
        }
        int parts = device.IsCpu
            ? Math.Clamp((len + ElementRange.CpuMinChunk - 1) / ElementRange.CpuMinChunk, 1, Math.Max(1, ElementRange.CpuThreads / batch))
            : Math.Clamp(len / 64, 1, 1024);
        var plan = ElementRange.Explicit(len, parts, chunked: device.IsCpu);
        var partial = device.Scratch(batch * parts);
        var partialKernel = device.Kernel("batch-reduce-partial", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange,
            int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>>(PartialKernel));
        var finish = device.Kernel("batch-reduce-finish", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, int,
            ArrayView<float>, ArrayView<float>>(FinishKernel));
        partialKernel(batch * parts, plan, parts, len, (int)op, x.View, y.View, partial);
        finish(batch, parts, partial, result.View);
    }
}

using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Priors;

/// <summary>Responsibilities of a mixture: r[n, k] = softmax_k(logit[n, k]), with the row maximum
/// subtracted before exponentiating (a stable log-sum-exp), one row of K per batch item.</summary>
public static class MixtureSoftmax
{
    /// <summary>The specification, in double: logits and result are [N, K].</summary>
    public static void Reference(ReadOnlySpan<float> logits, int components, Span<float> result)
    {
        for (int row = 0; row < logits.Length / components; row++)
        {
            double max = double.NegativeInfinity, sum = 0;
            for (int k = 0; k < components; k++) max = Math.Max(max, logits[row * components + k]);
            for (int k = 0; k < components; k++) sum += Math.Exp(logits[row * components + k] - max);
            for (int k = 0; k < components; k++) result[row * components + k] = (float)(Math.Exp(logits[row * components + k] - max) / sum);
        }
    }

    internal static void Kernel(Index1D tid, ElementRange r, int components, ArrayView<float> logits, ArrayView<float> result)
    {
        for (int it = 0; it < r.Count; it++)
        {
            int row = r.Index(tid, it);
            if (row >= r.Total) return;
            int o = row * components;
            float max = logits[o];
            for (int k = 1; k < components; k++) max = MathF.Max(max, logits[o + k]);
            float sum = 0;
            for (int k = 0; k < components; k++)
            {
                float e = MathF.Exp(logits[o + k] - max);
                result[o + k] = e;
                sum += e;
            }
            float inv = 1f / sum;
            for (int k = 0; k < components; k++) result[o + k] *= inv;
        }
    }

    /// <summary>result = softmax of each row of logits ([N, K]); result may be logits.</summary>
    /// <exception cref="ArgumentException">The shapes differ or are not rank 2.</exception>
    public static void Run(Tensor logits, Tensor result)
    {
        const string op = "mixture softmax";
        Shape.RequireRank(op, logits, "logits", 2);
        Shape.RequireSame(op, logits, "logits", result, "result");
        int rows = logits.Shape[0], k = logits.Shape[1];
        if (rows == 0 || k == 0) return;
        var device = logits.Device;
        var plan = device.IsCpu
            ? ElementRange.Explicit(rows, (int)Math.Clamp((long)rows * k / ElementRange.CpuMinChunk, 1, Math.Min(rows, ElementRange.CpuThreads)), chunked: true)
            : device.Plan(rows);
        var kernel = device.Kernel("prior-mixture-softmax", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int,
            ArrayView<float>, ArrayView<float>>(Kernel));
        kernel(plan.Threads, plan, k, logits.View, result.View);
    }
}

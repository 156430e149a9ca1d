using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Attention;

/// <summary>
/// Multi-head softmax attention over spatial positions (Vaswani et al. 2017, eq. 1, as diffusers'
/// Attention with upcast_softmax): q, k, v, output are token tensors [N, P, C]; head h owns channels
/// [h d, (h + 1) d); output = softmax(scale q k^T) v with scale 1/sqrt(d) by default. One thread per
/// (item, head, query) runs an online softmax (running maximum and rescaled sums, as in
/// FlashAttention), so no P x P score matrix is ever stored.
/// </summary>
public static class SpatialAttention
{
    /// <summary>The specification: explicit scores, max-subtracted softmax, in double.</summary>
    public static void Reference(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, int n, int p, int c, int heads, float scale, Span<float> output)
    {
        int d = c / heads;
        var scores = new double[p];
        for (int b = 0; b < n; b++)
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < p; i++)
                {
                    double max = double.NegativeInfinity;
                    for (int j = 0; j < p; j++)
                    {
                        double s = 0;
                        for (int e = 0; e < d; e++) s += (double)q[(b * p + i) * c + h * d + e] * k[(b * p + j) * c + h * d + e];
                        scores[j] = s * scale;
                        max = Math.Max(max, scores[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < p; j++) sum += scores[j] = Math.Exp(scores[j] - max);
                    for (int e = 0; e < d; e++)
                    {
                        double acc = 0;
                        for (int j = 0; j < p; j++) acc += scores[j] * v[(b * p + j) * c + h * d + e];
                        output[(b * p + i) * c + h * d + e] = (float)(acc / sum);
                    }
                }
    }

    internal static void Kernel(Index1D tid, ElementRange r, int p, int c, int heads, float scale,
        ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> output)
    {
        int d = c / heads;
        for (int it = 0; it < r.Count; it++)
        {
            int task = r.Index(tid, it);     // ((b * heads) + h) * p + i
            if (task >= r.Total) return;
            int i = task % p;
            int bh = task / p;
            int h = bh % heads;
            int b = bh / heads;
            int qBase = (b * p + i) * c + h * d;
            // The output row belongs to this thread alone: accumulate in place.
            for (int e = 0; e < d; e++) output[qBase + e] = 0;
            float max = float.NegativeInfinity, sum = 0;
            for (int j = 0; j < p; j++)
            {
                int kBase = (b * p + j) * c + h * d;
                float s = 0;
                for (int e = 0; e < d; e++) s += q[qBase + e] * k[kBase + e];
                s *= scale;
                float newMax = s > max ? s : max;
                float correction = MathF.Exp(max - newMax);
                float weight = MathF.Exp(s - newMax);
                sum = sum * correction + weight;
                for (int e = 0; e < d; e++) output[qBase + e] = output[qBase + e] * correction + weight * v[kBase + e];
                max = newMax;
            }
            float inv = 1f / sum;
            for (int e = 0; e < d; e++) output[qBase + e] *= inv;
        }
    }

    /// <summary>output = softmax(scale q k^T) v per item and head; q, k, v, output [N, P, C], C divisible by heads.</summary>
    public static void Run(Tensor q, Tensor k, Tensor v, int heads, Tensor output, float? scale = null)
    {
        Shape.RequireRank("attention", q, "q", 3);
        Shape.RequireSame("attention", k, "k", q, "q");
        Shape.RequireSame("attention", v, "v", q, "q");
        Shape.RequireSame("attention", output, "output", q, "q");
        int n = q.Shape[0], p = q.Shape[1], c = q.Shape[2];
        if (heads < 1 || c % heads != 0)
            throw new ArgumentException($"attention: {c} channels of q {Shape.Format(q.Shape)} cannot be split into {heads} heads");
        float s = scale ?? 1f / MathF.Sqrt(c / heads);
        // Queries are independent tasks: on the CPU a chunk of them per thread, on a GPU one per thread.
        int tasks = n * heads * p;
        var plan = q.Device.IsCpu
            ? ElementRange.Explicit(tasks, Math.Min(tasks, ElementRange.CpuThreads), chunked: true)
            : q.Device.Plan(tasks);
        var kernel = q.Device.Kernel("spatial-attention", acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int, int, int, float,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(Kernel));
        kernel(plan.Threads, plan, p, c, heads, s, q.View, k.View, v.View, output.View);
    }
}

using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Activations;

/// <summary>
/// Softmax cross-entropy of a classifier (as torch.nn.functional.cross_entropy), fused with its
/// gradient: per row n of logits [N, K] with label c_n, loss[n] = logsumexp(z_n) - z_n[c_n] and
/// dLogits[n, k] = gradScale (softmax(z_n)[k] - [k = c_n]); gradScale = 1/N gives the gradient of the
/// batch mean. The row maximum is subtracted before exponentiating. Labels are class indices stored
/// as floats; a label outside [0, K) yields a NaN loss for that row rather than a silently wrong one.
/// </summary>
public static class SoftmaxCrossEntropy
{
    /// <summary>The specification, in double: logits [N, K], labels [N], loss [N], dLogits [N, K].</summary>
    /// <exception cref="ArgumentException">The lengths do not match N and K.</exception>
    public static void Reference(ReadOnlySpan<float> logits, ReadOnlySpan<float> labels, int classes, float gradScale,
        Span<float> loss, Span<float> dLogits)
    {
        int rows = labels.Length;
        if (classes < 1 || logits.Length != rows * classes || loss.Length != rows || dLogits.Length != logits.Length)
            throw new ArgumentException("softmax cross-entropy reference: logits, labels, loss or dLogits length does not match N and K");
        for (int n = 0; n < rows; n++)
        {
            int o = n * classes;
            double max = double.NegativeInfinity, sum = 0;
            for (int k = 0; k < classes; k++) max = Math.Max(max, logits[o + k]);
            for (int k = 0; k < classes; k++) sum += Math.Exp(logits[o + k] - max);
            int c = (int)labels[n];
            bool valid = c >= 0 && c < classes && c == labels[n];
            loss[n] = valid ? (float)(max + Math.Log(sum) - logits[o + c]) : float.NaN;
            for (int k = 0; k < classes; k++)
                dLogits[o + k] = (float)(gradScale * (Math.Exp(logits[o + k] - max) / sum - (k == c ? 1 : 0)));
        }
    }

    internal static void Kernel(Index1D tid, ElementRange r, int classes, float gradScale,
        ArrayView<float> logits, ArrayView<float> labels, ArrayView<float> loss, ArrayView<float> dLogits)
    {
        for (int it = 0; it < r.Count; it++)
        {
            int row = r.Index(tid, it);
            if (row >= r.Total) return;
            int o = row * classes;
            float max = logits[o];
            for (int k = 1; k < classes; k++) max = MathF.Max(max, logits[o + k]);
            float sum = 0;
            for (int k = 0; k < classes; k++) sum += MathF.Exp(logits[o + k] - max);
            float label = labels[row];
            int c = (int)label;
            bool valid = c >= 0 && c < classes && c == label;
            loss[row] = valid ? max + MathF.Log(sum) - logits[o + c] : float.NaN;
            float inv = 1f / sum;
            for (int k = 0; k < classes; k++)
                dLogits[o + k] = gradScale * (MathF.Exp(logits[o + k] - max) * inv - (k == c ? 1f : 0f));
        }
    }

    /// <summary>Per-row losses and the scaled gradient of their sum; dLogits may be logits (in place).</summary>
    /// <exception cref="ArgumentException">logits is not [N, K], or labels, loss or dLogits do not match it.</exception>
    public static void Run(Tensor logits, Tensor labels, float gradScale, Tensor loss, Tensor dLogits)
    {
        const string op = "softmax cross-entropy";
        Shape.RequireRank(op, logits, "logits", 2);
        Shape.RequireSame(op, logits, "logits", dLogits, "dLogits");
        int rows = logits.Shape[0], k = logits.Shape[1];
        if (labels.Length != rows || loss.Length != rows)
            throw new ArgumentException($"{op}: expected labels and loss of {rows} elements (one per row of logits {Shape.Format(logits.Shape)}) but got {labels.Length} and {loss.Length}");
        if (rows == 0 || k == 0) return;
        var device = logits.Device;
        var plan = device.IsCpu
            ? ElementRange.Explicit(rows, (int)Math.Clamp((long)rows * k / ElementRange.CpuMinChunk, 1, Math.Min(rows, ElementRange.CpuThreads)), chunked: true)
            : device.Plan(rows);
        var kernel = device.Kernel("softmax-cross-entropy", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int, float,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(Kernel));
        kernel(plan.Threads, plan, k, gradScale, logits.View, labels.View, loss.View, dLogits.View);
    }
}

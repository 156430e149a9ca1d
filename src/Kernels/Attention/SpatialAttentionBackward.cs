using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Attention;

/// <summary>
/// Gradients of <see cref="SpatialAttention"/>: with A = softmax(scale q k^T) per head and O = A v,
/// dv = A^T dO, dS = A * (dO v^T - rowsum(A * dO v^T)) (the softmax Jacobian), dq = scale dS k and
/// dk = scale dS^T q.
/// </summary>
/// <remarks>
/// On CUDA GPUs, for the head dimensions <see cref="FlashAttentionBackward"/> has configurations for, that runs
/// (two kernels, nothing P x P stored). Elsewhere, and on the CPU accelerator: unlike the forward pass this one stores the probabilities A and dS, [N, heads, Pq, Pk] each, in
/// the device scratch area: a U-Net applies attention only at its coarsest resolutions, where that
/// is small. Five barrier-free kernels, each writing one output element per thread iteration:
/// probabilities (a thread per query row), dv (a thread per key channel), dS (a thread per query
/// row), dq (a thread per query channel) and dk (a thread per key channel).
/// </remarks>
public static class SpatialAttentionBackward
{
    /// <summary>The specification, in double: dq, dk and dv are overwritten.</summary>
    public static void Reference(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, int batch, int queries, int keys,
        int channels, int heads, ReadOnlySpan<float> dOutput, Span<float> dq, Span<float> dk, Span<float> dv, float? scale = null)
    {
        int d = channels / heads;
        double s = scale ?? 1.0 / Math.Sqrt(d);
        dq.Clear();
        dk.Clear();
        dv.Clear();
        var a = new double[keys];
        var da = new double[keys];
        for (int n = 0; n < batch; n++)
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < queries; i++)
                {
                    int qa = (n * queries + i) * channels + h * d;
                    double max = double.NegativeInfinity;
                    for (int p = 0; p < keys; p++)
                    {
                        int ka = (n * keys + p) * channels + h * d;
                        double dot = 0;
                        for (int j = 0; j < d; j++) dot += (double)q[qa + j] * k[ka + j];
                        a[p] = s * dot;
                        max = Math.Max(max, a[p]);
                    }
                    double sum = 0;
                    for (int p = 0; p < keys; p++) sum += a[p] = Math.Exp(a[p] - max);
                    double rowDot = 0;
                    for (int p = 0; p < keys; p++)
                    {
                        a[p] /= sum;
                        int ka = (n * keys + p) * channels + h * d;
                        double dot = 0;
                        for (int j = 0; j < d; j++) dot += (double)dOutput[qa + j] * v[ka + j];
                        da[p] = dot;
                        rowDot += a[p] * dot;
                    }
                    for (int p = 0; p < keys; p++)
                    {
                        int ka = (n * keys + p) * channels + h * d;
                        double ds = a[p] * (da[p] - rowDot);
                        for (int j = 0; j < d; j++)
                        {
                            dv[ka + j] += (float)(a[p] * dOutput[qa + j]);
                            dq[qa + j] += (float)(s * ds * k[ka + j]);
                            dk[ka + j] += (float)(s * ds * q[qa + j]);
                        }
                    }
                }
    }

    /// <summary>Thread per (n, head, query): its row of A = softmax(scale q k^T).</summary>
    internal static void ProbabilitiesKernel(Index1D tid, int rows, int heads, int queries, int keys, int channels, float scale,
        ArrayView<float> q, ArrayView<float> k, ArrayView<float> probs)
    {
        if (tid >= rows) return;
        int d = channels / heads, i = tid % queries, nh = tid / queries, h = nh % heads, n = nh / heads;
        int qa = (n * queries + i) * channels + h * d, row = tid * keys;
        float max = float.NegativeInfinity;
        for (int p = 0; p < keys; p++)
        {
            int ka = (n * keys + p) * channels + h * d;
            float dot = 0;
            for (int j = 0; j < d; j++) dot += q[qa + j] * k[ka + j];
            dot *= scale;
            probs[row + p] = dot;
            max = MathF.Max(max, dot);
        }
        float sum = 0;
        for (int p = 0; p < keys; p++)
        {
            float e = MathF.Exp(probs[row + p] - max);
            probs[row + p] = e;
            sum += e;
        }
        float inv = 1f / sum;
        for (int p = 0; p < keys; p++) probs[row + p] *= inv;
    }

    /// <summary>Thread per (n, query, head): dS row = A * (dO v^T - rowsum(A * dO v^T)).</summary>
    internal static void ScoreGradientKernel(Index1D tid, int rows, int heads, int queries, int keys, int channels,
        ArrayView<float> dOutput, ArrayView<float> v, ArrayView<float> probs, ArrayView<float> dScores)
    {
        if (tid >= rows) return;
        int d = channels / heads, i = tid % queries, nh = tid / queries, h = nh % heads, n = nh / heads;
        int qa = (n * queries + i) * channels + h * d, row = tid * keys;
        float rowDot = 0;
        for (int p = 0; p < keys; p++)
        {
            int ka = (n * keys + p) * channels + h * d;
            float dot = 0;
            for (int j = 0; j < d; j++) dot += dOutput[qa + j] * v[ka + j];
            dScores[row + p] = dot;
            rowDot += probs[row + p] * dot;
        }
        for (int p = 0; p < keys; p++) dScores[row + p] = probs[row + p] * (dScores[row + p] - rowDot);
    }

    /// <summary>
    /// Thread per element of a [N, P, C] result: out[n, p, c] = factor * sum over the other side's
    /// positions r of M[n, h, .., ..] other[n, r, c], where M is read as [.., p, r] (rowsOfM = 1,
    /// for dq = dS k) or transposed as [.., r, p] (for dv = A^T dO and dk = dS^T q).
    /// </summary>
    internal static void ContractKernel(Index1D tid, int total, int heads, int positions, int others, int channels, int transposed,
        float factor, ArrayView<float> m, ArrayView<float> other, ArrayView<float> output)
    {
        if (tid >= total) return;
        int d = channels / heads, c = tid % channels, np = tid / channels, p = np % positions, n = np / positions, h = c / d;
        int plane = (n * heads + h) * positions * others;
        float acc = 0;
        for (int r = 0; r < others; r++)
        {
            float w = transposed != 0 ? m[plane + r * positions + p] : m[plane + p * others + r];
            acc += w * other[(n * others + r) * channels + c];
        }
        output[tid] = factor * acc;
    }

    /// <summary>dq, dk, dv = the gradients of SpatialAttention.Run(q, k, v, heads, output, scale) for the
    /// output gradient <paramref name="dOutput"/>; q and dq are [N, Pq, C], k, v, dk, dv [N, Pk, C].</summary>
    /// <exception cref="ArgumentException">Shapes do not fit or heads does not divide C.</exception>
    public static void Run(Tensor q, Tensor k, Tensor v, int heads, Tensor dOutput, Tensor dq, Tensor dk, Tensor dv, float? scale = null) =>
        Run(q, k, v, heads, dOutput, dq, dk, dv, scale, AttentionVariant.Auto);

    /// <summary><see cref="Run(Tensor, Tensor, Tensor, int, Tensor, Tensor, Tensor, Tensor, float?)"/> with the kernels pinned
    /// (<see cref="AttentionVariant.Flash"/>: <see cref="FlashAttentionBackward"/>; Auto picks as the forward does).</summary>
    internal static void Run(Tensor q, Tensor k, Tensor v, int heads, Tensor dOutput, Tensor dq, Tensor dk, Tensor dv, float? scale,
        AttentionVariant variant)
    {
        const string op = "attention backward";
        Shape.RequireRank(op, q, "q", 3);
        Shape.RequireRank(op, k, "k", 3);
        int batch = q.Shape[0], queries = q.Shape[1], channels = q.Shape[2], keys = k.Shape[1];
        if (heads < 1 || channels % heads != 0)
            throw new ArgumentException($"{op}: {heads} heads do not divide the {channels} channels of q {Shape.Format(q.Shape)}");
        Shape.Require(op, k, "k", batch, keys, channels);
        Shape.Require(op, v, "v", batch, keys, channels);
        Shape.Require(op, dOutput, "dOutput", batch, queries, channels);
        Shape.RequireSame(op, q, "q", dq, "dq");
        Shape.RequireSame(op, k, "k", dk, "dk");
        Shape.RequireSame(op, v, "v", dv, "dv");
        foreach (var t in new[] { k, v, dOutput, dq, dk, dv }) Shape.RequireSameDevice(op, q, t);
        float s = scale ?? 1f / MathF.Sqrt(channels / heads);
        var device = q.Device;
        if (SpatialAttention.Choose(device, channels / heads, batch, heads, variant) == AttentionVariant.Flash)
        {
            // What the kernels below give for no queries or no keys (no launch with an empty grid).
            if (q.Length == 0 || k.Length == 0)
            {
                dq.Clear();
                dk.Clear();
                dv.Clear();
                return;
            }
            FlashAttentionBackward.Launch(device, new SpatialAttention.Dims(heads, queries, keys, channels, s), batch,
                q.View, k.View, v.View, dOutput.View, dq.View, dk.View, dv.View);
            return;
        }
        int rows = batch * heads * queries;
        long plane = (long)rows * keys;
        if (2 * plane > int.MaxValue) throw new ArgumentException($"{op}: {rows} x {keys} attention scores are too many to store");
        var scratch = device.Scratch((int)(2 * plane));
        var probs = scratch.SubView(0, plane);
        var dScores = scratch.SubView(plane, plane);
        var probabilities = device.Kernel("attention-backward-probs", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, int, int, int, int, int, float,
            ArrayView<float>, ArrayView<float>, ArrayView<float>>(ProbabilitiesKernel));
        var scoreGradient = device.Kernel("attention-backward-dscores", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, int, int, int, int, int,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(ScoreGradientKernel));
        var contract = device.Kernel("attention-backward-contract", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, int, int, int, int, int, int, float,
            ArrayView<float>, ArrayView<float>, ArrayView<float>>(ContractKernel));
        probabilities(rows, rows, heads, queries, keys, channels, s, q.View, k.View, probs);
        scoreGradient(rows, rows, heads, queries, keys, channels, dOutput.View, v.View, probs, dScores);
        contract(dv.Length, dv.Length, heads, keys, queries, channels, 1, 1f, probs, dOutput.View, dv.View);
        contract(dq.Length, dq.Length, heads, queries, keys, channels, 0, s, dScores, k.View, dq.View);
        contract(dk.Length, dk.Length, heads, keys, queries, channels, 1, s, dScores, q.View, dk.View);
    }
}

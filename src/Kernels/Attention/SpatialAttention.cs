using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Attention;

/// <summary>
/// Multi-head scaled dot-product attention over tokens (Vaswani et al. 2017), the core of diffusers'
/// Attention block with upcast_softmax: q [N,Pq,C], k and v [N,Pk,C], output [N,Pq,C]; head h owns
/// channels [h*d, (h+1)*d), d = C/heads, and
/// output[n,i,h*d+j] = sum_p softmax_p(scale * &lt;q[n,i,head h], k[n,p,head h]&gt;) * v[n,p,h*d+j].
/// </summary>
/// <remarks>
/// Two kernels. On CUDA GPUs, for head dimensions 8, 16, 32, 64, 128 and 256, <see cref="FlashAttention"/>
/// (v2: shared k/v tiles, query and accumulator in registers). Everywhere else, and always on the CPU
/// accelerator (where barriers cost milliseconds), v1 below: a barrier-free kernel in which
/// a thread per (n, head, query) streams over all keys once
/// with an online softmax (running max m and normaliser l, rescaling the accumulator by exp(m_old -
/// m_new) when the max grows; Milakov &amp; Gimelshein 2018), so no P x P score matrix is stored and no
/// exp overflows. The query and the accumulator live in per-thread local memory, for up to
/// <see cref="DimChunk"/> output channels at a time (wider heads loop over channel chunks, recomputing
/// the scores), and keys are taken four at a time so the accumulator is rescaled once per four keys.
/// On the CPU each thread takes a contiguous range of queries.
/// </remarks>
public static class SpatialAttention
{
    /// <summary>Output channels of a head one pass accumulates (the per-thread local arrays' size).</summary>
    internal const int DimChunk = 64;

    /// <summary>Widest head whose (scaled) query row a thread keeps in local memory.</summary>
    internal const int QueryLocal = 256;

    /// <summary>The specification: scores, a max-subtracted softmax and the weighted sum, in double.</summary>
    public static void Reference(ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, int batch,
        int queries, int keys, int channels, int heads, Span<float> output, float? scale = null)
    {
        int d = channels / heads;
        double s = scale ?? 1.0 / Math.Sqrt(d);
        var scores = new double[keys];
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
                        scores[p] = s * dot;
                        max = Math.Max(max, scores[p]);
                    }
                    double sum = 0;
                    for (int p = 0; p < keys; p++) sum += scores[p] = Math.Exp(scores[p] - max);
                    for (int j = 0; j < d; j++)
                    {
                        double acc = 0;
                        for (int p = 0; p < keys; p++) acc += scores[p] * v[(n * keys + p) * channels + h * d + j];
                        output[qa + j] = (float)(acc / sum);
                    }
                }
    }

    /// <summary>Attention geometry passed to the kernel (public because ILGPU's CPU backend must see kernel parameter types).</summary>
    public readonly struct Dims
    {
        /// <summary>Heads.</summary>
        public readonly int Heads;
        /// <summary>Query tokens per item.</summary>
        public readonly int Queries;
        /// <summary>Key/value tokens per item.</summary>
        public readonly int Keys;
        /// <summary>Channels of a token (all heads).</summary>
        public readonly int Channels;
        /// <summary>Channels per head.</summary>
        public readonly int HeadDim;
        /// <summary>Score scale.</summary>
        public readonly float Scale;

        /// <summary>Geometry of one attention call.</summary>
        public Dims(int heads, int queries, int keys, int channels, float scale)
        {
            Heads = heads;
            Queries = queries;
            Keys = keys;
            Channels = channels;
            HeadDim = channels / heads;
            Scale = scale;
        }
    }

    internal static void Kernel(Index1D tid, ElementRange r, Dims a, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v,
        ArrayView<float> output)
    {
        var qi = LocalMemory.Allocate<float>(QueryLocal);
        var acc = LocalMemory.Allocate<float>(DimChunk);
        int d = a.HeadDim;
        int stride = a.Channels;
        for (int it = 0; it < r.Count; it++)
        {
            int task = r.Index(tid, it);
            if (task >= r.Total) return;
            // task = (n * heads + h) * queries + i: neighbouring threads share a head and read the same keys.
            int i = task % a.Queries;
            int nh = task / a.Queries;
            int h = nh % a.Heads;
            int n = nh / a.Heads;
            int qBase = (n * a.Queries + i) * stride + h * d;
            int kBase = n * a.Keys * stride + h * d;
            // Heads up to QueryLocal wide keep the scaled query in local memory; wider ones read it from memory.
            bool local = d <= QueryLocal;
            if (local)
                for (int j = 0; j < d; j++) qi[j] = q[qBase + j] * a.Scale;
            for (int j0 = 0; j0 < d; j0 += DimChunk)
            {
                int width = d - j0 < DimChunk ? d - j0 : DimChunk;
                float max = float.NegativeInfinity, norm = 0f;
                for (int j = 0; j < width; j++) acc[j] = 0f;
                int p = 0;
                // Four keys per step: one rescale of the accumulator per four keys, and each query
                // element loaded once for four dot products.
                if (local)
                {
                    for (; p + 4 <= a.Keys; p += 4)
                    {
                        int r0 = kBase + p * stride, r1 = r0 + stride, r2 = r1 + stride, r3 = r2 + stride;
                        float s0 = 0f, s1 = 0f, s2 = 0f, s3 = 0f;
                        for (int j = 0; j < d; j++)
                        {
                            float qv = qi[j];
                            s0 += qv * k[r0 + j];
                            s1 += qv * k[r1 + j];
                            s2 += qv * k[r2 + j];
                            s3 += qv * k[r3 + j];
                        }
                        float newMax = MathF.Max(max, MathF.Max(MathF.Max(s0, s1), MathF.Max(s2, s3)));
                        float correction = MathF.Exp(max - newMax);   // exp(-inf) = 0 on the first keys
                        float w0 = MathF.Exp(s0 - newMax), w1 = MathF.Exp(s1 - newMax);
                        float w2 = MathF.Exp(s2 - newMax), w3 = MathF.Exp(s3 - newMax);
                        norm = norm * correction + ((w0 + w1) + (w2 + w3));
                        for (int j = 0; j < width; j++)
                        {
                            int c = j0 + j;
                            acc[j] = acc[j] * correction + (w0 * v[r0 + c] + w1 * v[r1 + c]) + (w2 * v[r2 + c] + w3 * v[r3 + c]);
                        }
                        max = newMax;
                    }
                }
                for (; p < a.Keys; p++)
                {
                    int kRow = kBase + p * stride;
                    float dot = 0f;
                    if (local)
                    {
                        for (int j = 0; j < d; j++) dot += qi[j] * k[kRow + j];
                    }
                    else
                    {
                        for (int j = 0; j < d; j++) dot += q[qBase + j] * k[kRow + j];
                        dot *= a.Scale;
                    }
                    float newMax = MathF.Max(max, dot);
                    float correction = MathF.Exp(max - newMax);
                    float weight = MathF.Exp(dot - newMax);
                    norm = norm * correction + weight;
                    for (int j = 0; j < width; j++) acc[j] = acc[j] * correction + weight * v[kRow + j0 + j];
                    max = newMax;
                }
                float inv = 1f / norm;
                for (int j = 0; j < width; j++) output[qBase + j0 + j] = acc[j] * inv;
            }
        }
    }

    /// <summary>Launch plan: one task per (n, head, query); on the CPU contiguous ranges of tasks per thread.</summary>
    internal static ElementRange PlanFor(GpuDevice device, int tasks) =>
        device.IsCpu ? ElementRange.Explicit(tasks, Math.Clamp(tasks, 1, ElementRange.CpuThreads), chunked: true) : device.Plan(tasks);

    /// <summary>output = softmax(scale * q k^T) v per head; q and output [N,Pq,C], k and v [N,Pk,C];
    /// <paramref name="scale"/> defaults to 1/sqrt(C/heads).</summary>
    /// <remarks><paramref name="output"/> must not share memory with q, k or v.</remarks>
    /// <exception cref="ArgumentException">Shapes do not fit (the message names them) or C is not a multiple of heads.</exception>
    /// <exception cref="ArgumentOutOfRangeException">heads &lt; 1 or scale not finite.</exception>
    public static void Run(Tensor q, Tensor k, Tensor v, int heads, Tensor output, float? scale = null) =>
        Run(q, k, v, heads, output, scale, AttentionVariant.Auto);

    /// <summary>Which kernel <see cref="Run(Tensor, Tensor, Tensor, int, Tensor, float?, AttentionVariant)"/> (and the
    /// backward) launches: Auto takes the flash kernels on CUDA devices whose groups and warps fit every configuration
    /// (128 threads, warps of 32), for the head dimensions they have and at most 65,535 heads and items; OpenCL devices (whose shuffles depend on
    /// extensions) and the CPU accelerator keep v1.</summary>
    internal static AttentionVariant Choose(GpuDevice device, int headDim, int batch, int heads, AttentionVariant variant) =>
        Choose(device.Kind == DeviceKind.Cuda && device.Accelerator.WarpSize % 16 == 0 && device.Accelerator.MaxNumThreadsPerGroup >= 128
               && batch <= MaxGridYZ && heads <= MaxGridYZ, headDim, variant);

    /// <summary>CUDA's limit on a grid's y and z extents, which the flash kernels give heads and batch items.</summary>
    private const int MaxGridYZ = 65535;

    /// <summary><see cref="Choose(GpuDevice, int, int, int, AttentionVariant)"/> for a device that can (<paramref name="flashCapable"/>) or cannot run the flash kernels.</summary>
    internal static AttentionVariant Choose(bool flashCapable, int headDim, AttentionVariant variant) => variant switch
    {
        AttentionVariant.Auto => flashCapable && FlashAttention.ConfigFor(headDim) != 0 ? AttentionVariant.Flash : AttentionVariant.PerQuery,
        _ => variant,
    };

    /// <summary><see cref="Run(Tensor, Tensor, Tensor, int, Tensor, float?)"/> with the kernel pinned (tests and benchmarks).</summary>
    internal static void Run(Tensor q, Tensor k, Tensor v, int heads, Tensor output, float? scale, AttentionVariant variant)
    {
        Shape.RequireRank("attention", q, "q", 3);
        Shape.RequireRank("attention", k, "k", 3);
        Shape.RequireSame("attention", k, "k", v, "v");
        Shape.RequireSame("attention", q, "q", output, "output");
        Shape.RequireSameDevice("attention", q, k);
        if (k.Shape[0] != q.Shape[0] || k.Shape[2] != q.Shape[2])
            throw new ArgumentException(
                $"attention: q has shape {Shape.Format(q.Shape)} but k has shape {Shape.Format(k.Shape)}; batch and channels must match");
        if (heads < 1) throw new ArgumentOutOfRangeException(nameof(heads), heads, "attention: heads must be >= 1");
        int channels = q.Shape[2];
        if (channels % heads != 0)
            throw new ArgumentException($"attention: {channels} channels of q {Shape.Format(q.Shape)} do not split into {heads} heads");
        float s = scale ?? 1f / MathF.Sqrt(channels / heads);
        if (!float.IsFinite(s)) throw new ArgumentOutOfRangeException(nameof(scale), scale, "attention: scale must be finite");
        int batch = q.Shape[0], queries = q.Shape[1], keys = k.Shape[1];
        if (q.Length == 0) return;
        if (keys == 0) throw new ArgumentException($"attention: k {Shape.Format(k.Shape)} has no keys to attend to");
        var device = q.Device;
        var dims = new Dims(heads, queries, keys, channels, s);
        if (Choose(device, channels / heads, batch, heads, variant) == AttentionVariant.Flash)
        {
            FlashAttention.Launch(device, dims, batch, q.View, k.View, v.View, output.View);
            return;
        }
        var plan = PlanFor(device, batch * heads * queries);
        var kernel = device.Kernel("spatial-attention", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, Dims,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(Kernel));
        kernel(plan.Threads, plan, dims, q.View, k.View, v.View, output.View);
    }
}

/// <summary>Which attention kernel runs (tests and benchmarks pin one).</summary>
internal enum AttentionVariant
{
    /// <summary><see cref="FlashAttention"/> on CUDA GPUs for the head dimensions it has a configuration for, else <see cref="PerQuery"/>.</summary>
    Auto,
    /// <summary>v1, <see cref="SpatialAttention.Kernel"/>: barrier-free, a thread per query (the CPU accelerator's path).</summary>
    PerQuery,
    /// <summary>v2, <see cref="FlashAttention"/>: shared k/v tiles, registers, shuffles (throws for other head dimensions).</summary>
    Flash,
}

using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Gemm;

namespace PosteriorGpu.Kernels.Attention;

/// <summary>
/// A configuration of <see cref="FlashAttention"/>, fixed at compile time: ILGPU specialises the kernel
/// for each implementing struct, so the head dimension, the lanes per query and the shared-memory
/// extents fold to constants and every per-channel loop unrolls into named registers.
/// </summary>
internal interface IFlashAttentionConfig
{
    /// <summary>Channels per head (d).</summary>
    int HeadDim { get; }

    /// <summary>Threads that share one query (1, 2, 4 or 8, adjacent in a warp): each holds HeadDim / Lanes
    /// (8, 16 or 32) channels of the query and of the accumulator, and the partial dot products are summed
    /// by warp shuffles.</summary>
    int Lanes { get; }

    /// <summary>Threads per group: Queries x Lanes (queries per group = Threads / Lanes).</summary>
    int Threads { get; }

    /// <summary>Groups that must fit on one SM at once (the kernel is loaded with this specialization, so ptxas caps
    /// the registers at 64K / (Threads x this), as the GEMM tiles do). Chosen with kernel-report as the tightest
    /// bound without spills: d = 8 at 14 (72 registers; 16 spilled 12-16 B), 16 and 32 at 8, 64 at 4 (128
    /// registers); d = 128 and 256 at 1 (182 registers; 3 spilled 12-24 B, 4 spilled 70-110 B).</summary>
    int MinGroupsPerSM { get; }
}

/// <summary>d = 8 (the project's U-Nets: attention_head_dim 8): a thread per query, 64 queries per group.</summary>
internal readonly struct FlashD8 : IFlashAttentionConfig
{
    /// <inheritdoc/>
    public int HeadDim => 8;
    /// <inheritdoc/>
    public int Lanes => 1;
    /// <inheritdoc/>
    public int Threads => 64;
    /// <inheritdoc/>
    public int MinGroupsPerSM => 14;
}

/// <summary>d = 16: a thread per query, 64 queries per group.</summary>
internal readonly struct FlashD16 : IFlashAttentionConfig
{
    /// <inheritdoc/>
    public int HeadDim => 16;
    /// <inheritdoc/>
    public int Lanes => 1;
    /// <inheritdoc/>
    public int Threads => 64;
    /// <inheritdoc/>
    public int MinGroupsPerSM => 8;
}

/// <summary>d = 32: two threads of 16 channels per query, 32 queries per group.</summary>
internal readonly struct FlashD32 : IFlashAttentionConfig
{
    /// <inheritdoc/>
    public int HeadDim => 32;
    /// <inheritdoc/>
    public int Lanes => 2;
    /// <inheritdoc/>
    public int Threads => 64;
    /// <inheritdoc/>
    public int MinGroupsPerSM => 8;
}

/// <summary>d = 64: four threads of 16 channels per query, 32 queries per group.</summary>
internal readonly struct FlashD64 : IFlashAttentionConfig
{
    /// <inheritdoc/>
    public int HeadDim => 64;
    /// <inheritdoc/>
    public int Lanes => 4;
    /// <inheritdoc/>
    public int Threads => 128;
    /// <inheritdoc/>
    public int MinGroupsPerSM => 4;
}

/// <summary>d = 128 (the attention benchmark's one head): four threads of 32 channels per query, 32 queries per group.</summary>
internal readonly struct FlashD128 : IFlashAttentionConfig
{
    /// <inheritdoc/>
    public int HeadDim => 128;
    /// <inheritdoc/>
    public int Lanes => 4;
    /// <inheritdoc/>
    public int Threads => 128;
    /// <inheritdoc/>
    public int MinGroupsPerSM => 1;
}

/// <summary>d = 256 (diffusers' DDPM CIFAR-10: one head over 256 channels): eight threads of 32 channels per query, 16 queries per group.</summary>
internal readonly struct FlashD256 : IFlashAttentionConfig
{
    /// <inheritdoc/>
    public int HeadDim => 256;
    /// <inheritdoc/>
    public int Lanes => 8;
    /// <inheritdoc/>
    public int Threads => 128;
    /// <inheritdoc/>
    public int MinGroupsPerSM => 1;
}

/// <summary>Up to 32 floats in named registers (a thread's slice of a query row or of its accumulator);
/// a configuration with 8 or 16 channels per thread never touches the later fields, so they vanish.</summary>
internal struct Float32Slice
{
    /// <summary>Channels 4i .. 4i+3 of the slice, i = 0..7.</summary>
    public Float4 A, B, C, D, E, F, G, H;
}

/// <summary>
/// Flash-style attention for GPUs (Dao et al. 2022, on CUDA cores): v2 of <see cref="SpatialAttention"/>.
/// <list type="bullet">
/// <item>v1 (<see cref="SpatialAttention.Kernel"/>, kept for the CPU accelerator and other head sizes): a
/// thread per query, k and v read from global memory, one load per FMA, the query and accumulator in a
/// 1,280-byte local-memory stack frame.</item>
/// <item>v2 (this): a group of Threads / Lanes queries of one (item, head) walks the keys in tiles of
/// <see cref="KeyTile"/>: the tile's k and v rows are staged in shared memory once for all its queries; the
/// query (pre-scaled) and the output accumulator stay in registers, HeadDim / Lanes channels per thread,
/// the dot product summed over a query's lanes by warp shuffles; the online softmax (running max and
/// sum; Milakov &amp; Gimelshein 2018) rescales the accumulator once per four keys. Shared rows are
/// stored lane-interleaved (float4 i of lane l at i Lanes + l), so a query's lanes read consecutive
/// 16-byte vectors and queries of a warp read the same ones (broadcast): no bank conflicts.</item>
/// </list>
/// </summary>
internal static class FlashAttention
{
    /// <summary>Keys per shared tile (a multiple of 4).</summary>
    public const int KeyTile = 16;

    /// <summary>The configuration for head dimension <paramref name="headDim"/>, or 0 when none fits.</summary>
    internal static int ConfigFor(int headDim) => headDim switch
    {
        8 or 16 or 32 or 64 or 128 or 256 => headDim,
        _ => 0,
    };

    /// <summary>Group (x, y, z) = (query block, head, item); thread t serves query x Queries + t / Lanes with
    /// channels (t % Lanes) W .. + W of the head, W = HeadDim / Lanes.</summary>
    internal static void Kernel<TConfig>(SpatialAttention.Dims a, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v,
        ArrayView<float> output) where TConfig : struct, IFlashAttentionConfig
    {
        var cfg = default(TConfig);
        int d = cfg.HeadDim, lanes = cfg.Lanes, threads = cfg.Threads;
        int d4 = d / 4, w = d / lanes, w4 = w / 4, queries = threads / lanes;
        var sk = SharedMemory.Allocate<Float4>(KeyTile * cfg.HeadDim / 4);
        var sv = SharedMemory.Allocate<Float4>(KeyTile * cfg.HeadDim / 4);

        int tid = Group.IdxX;
        int lane = tid % lanes;
        int i = Grid.IdxX * queries + tid / lanes;
        int h = Grid.IdxY, n = Grid.IdxZ;
        int stride = a.Channels;
        // Rows past the end compute on the last query (every thread takes part in barriers and shuffles) and store nothing.
        int row = (n * a.Queries + Math.Min(i, a.Queries - 1)) * stride + h * d + lane * w;
        var qs = LoadScaled(q, row, w4, a.Scale);
        var acc = default(Float32Slice);
        float max = float.NegativeInfinity, norm = 0f;
        int kv = n * a.Keys * stride + h * d;
        // This thread's float4 of each shared row starts at its lane: below, every read is base + a constant.
        var kl = sk.SubView(lane, sk.Length - lane);
        var vl = sv.SubView(lane, sv.Length - lane);

        for (int p0 = 0; p0 < a.Keys; p0 += KeyTile)
        {
            // The previous tile is read by everyone before it is overwritten; keys past the end stage zeros
            // (their weight is exp(-inf) = 0, and 0 x 0 adds nothing).
            Group.Barrier();
            Stage(sk, sv, k, v, kv, p0, a.Keys, stride, tid, threads, d4, lanes, w);
            Group.Barrier();
            int valid = a.Keys - p0;
            Keys4(ref acc, ref max, ref norm, qs, kl, vl, 0, valid, d4, lanes, w4);
            if (4 < valid) Keys4(ref acc, ref max, ref norm, qs, kl, vl, 4, valid, d4, lanes, w4);
            if (8 < valid) Keys4(ref acc, ref max, ref norm, qs, kl, vl, 8, valid, d4, lanes, w4);
            if (12 < valid) Keys4(ref acc, ref max, ref norm, qs, kl, vl, 12, valid, d4, lanes, w4);
        }

        if (i >= a.Queries) return;
        StoreSlice(output, row, acc, w4, 1f / norm);
    }

    /// <summary>
    /// Stages rows p0 .. p0 + KeyTile - 1 (of <paramref name="count"/>) of one head of two [.., P, C] tensors
    /// (k and v, or q and dO) in shared memory, lane-interleaved: float4 f = (row r, float4 i of lane l) at
    /// r d/4 + i Lanes + l holds channels l W + 4i .. + 3. Rows past the end are zeros.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Stage(ArrayView<Float4> sa, ArrayView<Float4> sb, ArrayView<float> a, ArrayView<float> b, int head,
        int p0, int count, int stride, int tid, int threads, int d4, int lanes, int w)
    {
        for (int f = tid; f < KeyTile * d4; f += threads)
        {
            int r = f / d4, rem = f - r * d4, l = rem % lanes, c = l * w + rem / lanes * 4;
            Float4 af = default, bf = default;
            if (p0 + r < count)
            {
                int g = head + (p0 + r) * stride + c;
                af.X = a[g]; af.Y = a[g + 1]; af.Z = a[g + 2]; af.W = a[g + 3];
                bf.X = b[g]; bf.Y = b[g + 1]; bf.Z = b[g + 2]; bf.W = b[g + 3];
            }
            sa[f] = af;
            sb[f] = bf;
        }
    }

    /// <summary>dst[at ..] = scale x (a thread's slice).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void StoreSlice(ArrayView<float> dst, int at, Float32Slice x, int w4, float scale)
    {
        Store4(dst, at, x.A, scale);
        Store4(dst, at + 4, x.B, scale);
        if (w4 > 2)
        {
            Store4(dst, at + 8, x.C, scale);
            Store4(dst, at + 12, x.D, scale);
        }
        if (w4 > 4)
        {
            Store4(dst, at + 16, x.E, scale);
            Store4(dst, at + 20, x.F, scale);
            Store4(dst, at + 24, x.G, scale);
            Store4(dst, at + 28, x.H, scale);
        }
    }

    /// <summary>Keys j .. j+3 of the staged tile (j &lt; valid; those at or past valid are masked): four scores,
    /// one rescale of the accumulator by exp(max_old - max_new), four weighted v rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Keys4(ref Float32Slice acc, ref float max, ref float norm, Float32Slice qs, ArrayView<Float4> kl,
        ArrayView<Float4> vl, int j, int valid, int d4, int lanes, int w4)
    {
        int b0 = j * d4, b1 = b0 + d4, b2 = b1 + d4, b3 = b2 + d4;
        float s0 = LaneSum(Dot(qs, kl, b0, lanes, w4), lanes);
        float s1 = LaneSum(Dot(qs, kl, b1, lanes, w4), lanes);
        float s2 = LaneSum(Dot(qs, kl, b2, lanes, w4), lanes);
        float s3 = LaneSum(Dot(qs, kl, b3, lanes, w4), lanes);
        if (j + 1 >= valid) s1 = float.NegativeInfinity;
        if (j + 2 >= valid) s2 = float.NegativeInfinity;
        if (j + 3 >= valid) s3 = float.NegativeInfinity;
        float newMax = MathF.Max(max, MathF.Max(MathF.Max(s0, s1), MathF.Max(s2, s3)));
        float correction = MathF.Exp(max - newMax);   // exp(-inf) = 0 on the first keys
        float w0 = MathF.Exp(s0 - newMax), w1 = MathF.Exp(s1 - newMax);
        float w2 = MathF.Exp(s2 - newMax), w3 = MathF.Exp(s3 - newMax);
        norm = norm * correction + ((w0 + w1) + (w2 + w3));
        max = newMax;
        acc.A = Mad(acc.A, correction, w0, w1, w2, w3, vl[b0], vl[b1], vl[b2], vl[b3]);
        acc.B = Mad(acc.B, correction, w0, w1, w2, w3, vl[b0 + lanes], vl[b1 + lanes], vl[b2 + lanes], vl[b3 + lanes]);
        if (w4 > 2)
        {
            int o = 2 * lanes, p = 3 * lanes;
            acc.C = Mad(acc.C, correction, w0, w1, w2, w3, vl[b0 + o], vl[b1 + o], vl[b2 + o], vl[b3 + o]);
            acc.D = Mad(acc.D, correction, w0, w1, w2, w3, vl[b0 + p], vl[b1 + p], vl[b2 + p], vl[b3 + p]);
        }
        if (w4 > 4)
        {
            int o4 = 4 * lanes, o5 = 5 * lanes, o6 = 6 * lanes, o7 = 7 * lanes;
            acc.E = Mad(acc.E, correction, w0, w1, w2, w3, vl[b0 + o4], vl[b1 + o4], vl[b2 + o4], vl[b3 + o4]);
            acc.F = Mad(acc.F, correction, w0, w1, w2, w3, vl[b0 + o5], vl[b1 + o5], vl[b2 + o5], vl[b3 + o5]);
            acc.G = Mad(acc.G, correction, w0, w1, w2, w3, vl[b0 + o6], vl[b1 + o6], vl[b2 + o6], vl[b3 + o6]);
            acc.H = Mad(acc.H, correction, w0, w1, w2, w3, vl[b0 + o7], vl[b1 + o7], vl[b2 + o7], vl[b3 + o7]);
        }
    }

    /// <summary>This thread's part of &lt;q, k row&gt;: its W channels against the staged row starting at b, as two
    /// FMA chains (float4s A, C, E, G and B, D, F, H) so that four keys give eight independent chains.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Dot(Float32Slice x, ArrayView<Float4> t, int b, int lanes, int w4)
    {
        float s0 = Mul4(x.A, t[b]), s1 = Mul4(x.B, t[b + lanes]);
        if (w4 > 2)
        {
            s0 = Fma4(s0, x.C, t[b + 2 * lanes]);
            s1 = Fma4(s1, x.D, t[b + 3 * lanes]);
        }
        if (w4 > 4)
        {
            s0 = Fma4(s0, x.E, t[b + 4 * lanes]);
            s1 = Fma4(s1, x.F, t[b + 5 * lanes]);
            s0 = Fma4(s0, x.G, t[b + 6 * lanes]);
            s1 = Fma4(s1, x.H, t[b + 7 * lanes]);
        }
        return s0 + s1;
    }

    /// <summary>Sum over a row's lanes (up to 16; a butterfly: every lane gets the whole dot product).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float LaneSum(float s, int lanes)
    {
        if (lanes > 1) s += Warp.ShuffleXor(s, 1);
        if (lanes > 2) s += Warp.ShuffleXor(s, 2);
        if (lanes > 4) s += Warp.ShuffleXor(s, 4);
        if (lanes > 8) s += Warp.ShuffleXor(s, 8);
        return s;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Fma4(float s, Float4 a, Float4 b) => s + a.X * b.X + a.Y * b.Y + a.Z * b.Z + a.W * b.W;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Mul4(Float4 a, Float4 b) => a.X * b.X + a.Y * b.Y + a.Z * b.Z + a.W * b.W;

    /// <summary>a correction + w0 v0 + w1 v1 + w2 v2 + w3 v3, per component (one multiply and four FMAs).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Float4 Mad(Float4 a, float c, float w0, float w1, float w2, float w3, Float4 v0, Float4 v1, Float4 v2, Float4 v3)
    {
        Float4 r;
        r.X = a.X * c + w0 * v0.X + w1 * v1.X + w2 * v2.X + w3 * v3.X;
        r.Y = a.Y * c + w0 * v0.Y + w1 * v1.Y + w2 * v2.Y + w3 * v3.Y;
        r.Z = a.Z * c + w0 * v0.Z + w1 * v1.Z + w2 * v2.Z + w3 * v3.Z;
        r.W = a.W * c + w0 * v0.W + w1 * v1.W + w2 * v2.W + w3 * v3.W;
        return r;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Float4 Load4(ArrayView<float> src, int at, float scale)
    {
        Float4 r;
        r.X = src[at] * scale;
        r.Y = src[at + 1] * scale;
        r.Z = src[at + 2] * scale;
        r.W = src[at + 3] * scale;
        return r;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Float32Slice LoadScaled(ArrayView<float> src, int at, int w4, float scale)
    {
        var r = default(Float32Slice);
        r.A = Load4(src, at, scale);
        r.B = Load4(src, at + 4, scale);
        if (w4 > 2)
        {
            r.C = Load4(src, at + 8, scale);
            r.D = Load4(src, at + 12, scale);
        }
        if (w4 > 4)
        {
            r.E = Load4(src, at + 16, scale);
            r.F = Load4(src, at + 20, scale);
            r.G = Load4(src, at + 24, scale);
            r.H = Load4(src, at + 28, scale);
        }
        return r;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Store4(ArrayView<float> dst, int at, Float4 x, float scale)
    {
        dst[at] = x.X * scale;
        dst[at + 1] = x.Y * scale;
        dst[at + 2] = x.Z * scale;
        dst[at + 3] = x.W * scale;
    }

    /// <summary>Runs the configuration for <paramref name="a"/>'s head dimension (which <see cref="ConfigFor"/> must accept).</summary>
    internal static void Launch(GpuDevice device, SpatialAttention.Dims a, int batch, ArrayView<float> q, ArrayView<float> k,
        ArrayView<float> v, ArrayView<float> output)
    {
        switch (ConfigFor(a.HeadDim))
        {
            case 8: Run<FlashD8>(device, a, batch, q, k, v, output); break;
            case 16: Run<FlashD16>(device, a, batch, q, k, v, output); break;
            case 32: Run<FlashD32>(device, a, batch, q, k, v, output); break;
            case 64: Run<FlashD64>(device, a, batch, q, k, v, output); break;
            case 128: Run<FlashD128>(device, a, batch, q, k, v, output); break;
            case 256: Run<FlashD256>(device, a, batch, q, k, v, output); break;
            default:
                throw new ArgumentException($"flash attention: no configuration for head dimension {a.HeadDim} (supported: 8, 16, 32, 64, 128, 256)");
        }
    }

    private static void Run<TConfig>(GpuDevice device, SpatialAttention.Dims a, int batch, ArrayView<float> q, ArrayView<float> k,
        ArrayView<float> v, ArrayView<float> output) where TConfig : struct, IFlashAttentionConfig
    {
        var cfg = default(TConfig);
        if (cfg.Threads > device.Accelerator.MaxNumThreadsPerGroup || device.Accelerator.WarpSize % cfg.Lanes != 0)
            throw new InvalidOperationException(
                $"flash attention: {typeof(TConfig).Name} needs groups of {cfg.Threads} threads and warps of a multiple of {cfg.Lanes} " +
                $"but {device.Description} allows {device.Accelerator.MaxNumThreadsPerGroup} and has warps of {device.Accelerator.WarpSize}");
        int queries = cfg.Threads / cfg.Lanes;
        var kernel = device.Kernel(KernelKey<TConfig>.Of("flash-attention"), static acc =>
            acc.LoadStreamKernel<SpatialAttention.Dims, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(
                Kernel<TConfig>, Specialization<TConfig>()));
        var config = new KernelConfig(new Index3D((a.Queries + queries - 1) / queries, a.Heads, batch), new Index3D(cfg.Threads, 1, 1));
        kernel(config, a, q, k, v, output);
    }

    private static KernelSpecialization Specialization<TConfig>() where TConfig : struct, IFlashAttentionConfig =>
        new(default(TConfig).Threads, default(TConfig).MinGroupsPerSM);
}

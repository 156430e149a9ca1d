using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Gemm;

namespace PosteriorGpu.Kernels.Attention;

/// <summary>A configuration of <see cref="FlashAttentionBackward"/> (as <see cref="IFlashAttentionConfig"/>, but at
/// most 16 channels per thread: the key kernel holds four slices, k, v, dk and dv, in registers).</summary>
internal interface IFlashBackwardConfig
{
    /// <summary>Channels per head (d).</summary>
    int HeadDim { get; }

    /// <summary>Threads that share one row (1-16, adjacent in a warp), HeadDim / Lanes = 8 or 16 channels each.</summary>
    int Lanes { get; }

    /// <summary>Threads per group: rows per group x Lanes.</summary>
    int Threads { get; }

    /// <summary>Groups that must fit on one SM at once (the register bound given to ptxas).</summary>
    int MinGroupsPerSM { get; }
}

/// <summary>d = 8: a thread per row, 64 rows per group.</summary>
internal readonly struct FlashBackD8 : IFlashBackwardConfig
{
    /// <inheritdoc/>
    public int HeadDim => 8;
    /// <inheritdoc/>
    public int Lanes => 1;
    /// <inheritdoc/>
    public int Threads => 64;
    /// <inheritdoc/>
    public int MinGroupsPerSM => 1;
}

/// <summary>d = 16: a thread per row, 64 rows per group.</summary>
internal readonly struct FlashBackD16 : IFlashBackwardConfig
{
    /// <inheritdoc/>
    public int HeadDim => 16;
    /// <inheritdoc/>
    public int Lanes => 1;
    /// <inheritdoc/>
    public int Threads => 64;
    /// <inheritdoc/>
    public int MinGroupsPerSM => 1;
}

/// <summary>d = 32: two threads per row, 32 rows per group.</summary>
internal readonly struct FlashBackD32 : IFlashBackwardConfig
{
    /// <inheritdoc/>
    public int HeadDim => 32;
    /// <inheritdoc/>
    public int Lanes => 2;
    /// <inheritdoc/>
    public int Threads => 64;
    /// <inheritdoc/>
    public int MinGroupsPerSM => 1;
}

/// <summary>d = 64: four threads per row, 32 rows per group.</summary>
internal readonly struct FlashBackD64 : IFlashBackwardConfig
{
    /// <inheritdoc/>
    public int HeadDim => 64;
    /// <inheritdoc/>
    public int Lanes => 4;
    /// <inheritdoc/>
    public int Threads => 128;
    /// <inheritdoc/>
    public int MinGroupsPerSM => 1;
}

/// <summary>d = 128: eight threads per row, 16 rows per group.</summary>
internal readonly struct FlashBackD128 : IFlashBackwardConfig
{
    /// <inheritdoc/>
    public int HeadDim => 128;
    /// <inheritdoc/>
    public int Lanes => 8;
    /// <inheritdoc/>
    public int Threads => 128;
    /// <inheritdoc/>
    public int MinGroupsPerSM => 1;
}

/// <summary>d = 256: sixteen threads per row, 8 rows per group.</summary>
internal readonly struct FlashBackD256 : IFlashBackwardConfig
{
    /// <inheritdoc/>
    public int HeadDim => 256;
    /// <inheritdoc/>
    public int Lanes => 16;
    /// <inheritdoc/>
    public int Threads => 128;
    /// <inheritdoc/>
    public int MinGroupsPerSM => 1;
}

/// <summary>
/// Flash-style gradients of attention for GPUs (FlashAttention-2's backward, Dao 2023, on CUDA cores), in two
/// kernels that store no P x P matrix and need no atomics (results do not depend on timing):
/// <list type="number">
/// <item><see cref="QueryKernel{TConfig}"/>, query-major like the forward: pass 1 recomputes the forward (online
/// softmax over k/v tiles in shared memory) to get each row's log-sum-exp L_i and D_i = dO_i . O_i; pass 2
/// walks the keys again: P_ij = exp(s_ij - L_i), dS_ij = P_ij (dO_i . v_j - D_i), dq_i = scale sum_j dS_ij k_j.
/// L and D go to scratch for kernel 2.</item>
/// <item><see cref="KeyKernel{TConfig}"/>, key-major: a thread's slices of k_j, v_j, dk_j and dv_j stay in
/// registers while q/dO tiles (and their L, D) pass through shared memory: dv_j = sum_i P_ij dO_i,
/// dk_j = scale sum_i dS_ij q_i.</item>
/// </list>
/// </summary>
internal static class FlashAttentionBackward
{
    private const int Tile = FlashAttention.KeyTile;

    /// <summary>Group (x, y, z) = (query block, head, item): dq, and L and D of each query into <paramref name="stats"/>
    /// ([rows] L then [rows] D, rows = N heads Pq, row (n heads + h) Pq + i).</summary>
    internal static void QueryKernel<TConfig>(SpatialAttention.Dims a, int rows, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v,
        ArrayView<float> dOutput, ArrayView<float> dq, ArrayView<float> stats) where TConfig : struct, IFlashBackwardConfig
    {
        var cfg = default(TConfig);
        int d = cfg.HeadDim, lanes = cfg.Lanes, threads = cfg.Threads;
        int d4 = d / 4, w = d / lanes, w4 = w / 4, perGroup = threads / lanes;
        var sk = SharedMemory.Allocate<Float4>(Tile * cfg.HeadDim / 4);
        var sv = SharedMemory.Allocate<Float4>(Tile * cfg.HeadDim / 4);

        int tid = Group.IdxX, lane = tid % lanes;
        int i = Grid.IdxX * perGroup + tid / lanes, h = Grid.IdxY, n = Grid.IdxZ;
        int stride = a.Channels, iq = Math.Min(i, a.Queries - 1);
        int row = (n * a.Queries + iq) * stride + h * d + lane * w;
        int kv = n * a.Keys * stride + h * d;
        var kl = sk.SubView(lane, sk.Length - lane);
        var vl = sv.SubView(lane, sv.Length - lane);
        var qs = FlashAttention.LoadScaled(q, row, w4, a.Scale);

        // Pass 1: the forward pass, for L_i = max + log(norm) and D_i = dO_i . O_i.
        var acc = default(Float32Slice);
        float max = float.NegativeInfinity, norm = 0f;
        for (int p0 = 0; p0 < a.Keys; p0 += Tile)
        {
            Group.Barrier();
            FlashAttention.Stage(sk, sv, k, v, kv, p0, a.Keys, stride, tid, threads, d4, lanes, w);
            Group.Barrier();
            int valid = a.Keys - p0;
            FlashAttention.Keys4(ref acc, ref max, ref norm, qs, kl, vl, 0, valid, d4, lanes, w4);
            if (4 < valid) FlashAttention.Keys4(ref acc, ref max, ref norm, qs, kl, vl, 4, valid, d4, lanes, w4);
            if (8 < valid) FlashAttention.Keys4(ref acc, ref max, ref norm, qs, kl, vl, 8, valid, d4, lanes, w4);
            if (12 < valid) FlashAttention.Keys4(ref acc, ref max, ref norm, qs, kl, vl, 12, valid, d4, lanes, w4);
        }
        var dos = FlashAttention.LoadScaled(dOutput, row, w4, 1f);
        float rowDot = FlashAttention.LaneSum(DotRegs(dos, acc, w4), lanes) / norm;
        float lse = max + MathF.Log(norm);
        int stat = (n * a.Heads + h) * a.Queries + iq;
        if (i < a.Queries && lane == 0)
        {
            stats[stat] = lse;
            stats[rows + stat] = rowDot;
        }

        // Pass 2: dq_i = sum_j P_ij (dO_i . v_j - D_i) k_j (times scale at the end).
        acc = default;
        for (int p0 = 0; p0 < a.Keys; p0 += Tile)
        {
            Group.Barrier();
            FlashAttention.Stage(sk, sv, k, v, kv, p0, a.Keys, stride, tid, threads, d4, lanes, w);
            Group.Barrier();
            int valid = a.Keys - p0;
            // Two keys per step (independent chains); valid is the same for the whole group, so the shuffles are
            // never divergent. The second key, when past the end, gets dS = 0 (a select: exp may overflow there).
            for (int j = 0; j < Tile && j < valid; j += 2)
            {
                int b0 = j * d4, b1 = b0 + d4;
                float s0 = FlashAttention.LaneSum(FlashAttention.Dot(qs, kl, b0, lanes, w4), lanes);
                float s1 = FlashAttention.LaneSum(FlashAttention.Dot(qs, kl, b1, lanes, w4), lanes);
                float dp0 = FlashAttention.LaneSum(FlashAttention.Dot(dos, vl, b0, lanes, w4), lanes);
                float dp1 = FlashAttention.LaneSum(FlashAttention.Dot(dos, vl, b1, lanes, w4), lanes);
                float ds0 = MathF.Exp(s0 - lse) * (dp0 - rowDot);
                float ds1 = j + 1 < valid ? MathF.Exp(s1 - lse) * (dp1 - rowDot) : 0f;
                Axpy2(ref acc, ds0, ds1, kl, b0, b1, lanes, w4);
            }
        }
        if (i < a.Queries) FlashAttention.StoreSlice(dq, row, acc, w4, a.Scale);
    }

    /// <summary>Group (x, y, z) = (key block, head, item): dk and dv from q, dO and the L and D of <see cref="QueryKernel{TConfig}"/>.</summary>
    internal static void KeyKernel<TConfig>(SpatialAttention.Dims a, int rows, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v,
        ArrayView<float> dOutput, ArrayView<float> stats, ArrayView<float> dk, ArrayView<float> dv) where TConfig : struct, IFlashBackwardConfig
    {
        var cfg = default(TConfig);
        int d = cfg.HeadDim, lanes = cfg.Lanes, threads = cfg.Threads;
        int d4 = d / 4, w = d / lanes, w4 = w / 4, perGroup = threads / lanes;
        var sq = SharedMemory.Allocate<Float4>(Tile * cfg.HeadDim / 4);
        var sdo = SharedMemory.Allocate<Float4>(Tile * cfg.HeadDim / 4);
        var sl = SharedMemory.Allocate<float>(Tile);
        var sd = SharedMemory.Allocate<float>(Tile);

        int tid = Group.IdxX, lane = tid % lanes;
        int j = Grid.IdxX * perGroup + tid / lanes, h = Grid.IdxY, n = Grid.IdxZ;
        int stride = a.Channels, jk = Math.Min(j, a.Keys - 1);
        int row = (n * a.Keys + jk) * stride + h * d + lane * w;
        int qo = n * a.Queries * stride + h * d;
        int statBase = (n * a.Heads + h) * a.Queries;
        var ql = sq.SubView(lane, sq.Length - lane);
        var dol = sdo.SubView(lane, sdo.Length - lane);
        // k pre-scaled: s_ij = (scale k_j) . q_i.
        var ks = FlashAttention.LoadScaled(k, row, w4, a.Scale);
        var vs = FlashAttention.LoadScaled(v, row, w4, 1f);
        var dkAcc = default(Float32Slice);
        var dvAcc = default(Float32Slice);
        for (int p0 = 0; p0 < a.Queries; p0 += Tile)
        {
            Group.Barrier();
            FlashAttention.Stage(sq, sdo, q, dOutput, qo, p0, a.Queries, stride, tid, threads, d4, lanes, w);
            if (tid < Tile)
            {
                bool ok = p0 + tid < a.Queries;
                sl[tid] = ok ? stats[statBase + p0 + tid] : 0f;
                sd[tid] = ok ? stats[rows + statBase + p0 + tid] : 0f;
            }
            Group.Barrier();
            int valid = a.Queries - p0;
            // Two queries per step, as in QueryKernel; a second query past the end gets P = 0.
            for (int r = 0; r < Tile && r < valid; r += 2)
            {
                int b0 = r * d4, b1 = b0 + d4;
                float s0 = FlashAttention.LaneSum(FlashAttention.Dot(ks, ql, b0, lanes, w4), lanes);
                float s1 = FlashAttention.LaneSum(FlashAttention.Dot(ks, ql, b1, lanes, w4), lanes);
                float dp0 = FlashAttention.LaneSum(FlashAttention.Dot(vs, dol, b0, lanes, w4), lanes);
                float dp1 = FlashAttention.LaneSum(FlashAttention.Dot(vs, dol, b1, lanes, w4), lanes);
                float pr0 = MathF.Exp(s0 - sl[r]);
                float pr1 = r + 1 < valid ? MathF.Exp(s1 - sl[r + 1]) : 0f;
                Axpy2(ref dvAcc, pr0, pr1, dol, b0, b1, lanes, w4);
                Axpy2(ref dkAcc, pr0 * (dp0 - sd[r]), pr1 * (dp1 - sd[r + 1]), ql, b0, b1, lanes, w4);
            }
        }
        if (j >= a.Keys) return;
        FlashAttention.StoreSlice(dk, row, dkAcc, w4, a.Scale);
        FlashAttention.StoreSlice(dv, row, dvAcc, w4, 1f);
    }

    /// <summary>acc += c0 (staged row at b0) + c1 (staged row at b1), this thread's float4s.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Axpy2(ref Float32Slice acc, float c0, float c1, ArrayView<Float4> t, int b0, int b1, int lanes, int w4)
    {
        acc.A = Axpy4(acc.A, c0, t[b0], c1, t[b1]);
        acc.B = Axpy4(acc.B, c0, t[b0 + lanes], c1, t[b1 + lanes]);
        if (w4 > 2)
        {
            acc.C = Axpy4(acc.C, c0, t[b0 + 2 * lanes], c1, t[b1 + 2 * lanes]);
            acc.D = Axpy4(acc.D, c0, t[b0 + 3 * lanes], c1, t[b1 + 3 * lanes]);
        }
        if (w4 > 4)
        {
            acc.E = Axpy4(acc.E, c0, t[b0 + 4 * lanes], c1, t[b1 + 4 * lanes]);
            acc.F = Axpy4(acc.F, c0, t[b0 + 5 * lanes], c1, t[b1 + 5 * lanes]);
            acc.G = Axpy4(acc.G, c0, t[b0 + 6 * lanes], c1, t[b1 + 6 * lanes]);
            acc.H = Axpy4(acc.H, c0, t[b0 + 7 * lanes], c1, t[b1 + 7 * lanes]);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Float4 Axpy4(Float4 a, float c0, Float4 x0, float c1, Float4 x1)
    {
        Float4 r;
        r.X = a.X + c0 * x0.X + c1 * x1.X;
        r.Y = a.Y + c0 * x0.Y + c1 * x1.Y;
        r.Z = a.Z + c0 * x0.Z + c1 * x1.Z;
        r.W = a.W + c0 * x0.W + c1 * x1.W;
        return r;
    }

    /// <summary>x . y over this thread's slices.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float DotRegs(Float32Slice x, Float32Slice y, int w4)
    {
        float s = FlashAttention.Mul4(x.A, y.A) + FlashAttention.Mul4(x.B, y.B);
        if (w4 > 2) s += FlashAttention.Mul4(x.C, y.C) + FlashAttention.Mul4(x.D, y.D);
        if (w4 > 4)
            s += (FlashAttention.Mul4(x.E, y.E) + FlashAttention.Mul4(x.F, y.F)) + (FlashAttention.Mul4(x.G, y.G) + FlashAttention.Mul4(x.H, y.H));
        return s;
    }

    /// <summary>Whether a configuration exists for <paramref name="headDim"/>.</summary>
    internal static bool Supports(int headDim) => FlashAttention.ConfigFor(headDim) != 0;

    /// <summary>dq, dk, dv (overwritten) for head dimension a.HeadDim, which <see cref="Supports"/> must accept.</summary>
    internal static void Launch(GpuDevice device, SpatialAttention.Dims a, int batch, ArrayView<float> q, ArrayView<float> k,
        ArrayView<float> v, ArrayView<float> dOutput, ArrayView<float> dq, ArrayView<float> dk, ArrayView<float> dv)
    {
        switch (FlashAttention.ConfigFor(a.HeadDim))
        {
            case 8: Run<FlashBackD8>(device, a, batch, q, k, v, dOutput, dq, dk, dv); break;
            case 16: Run<FlashBackD16>(device, a, batch, q, k, v, dOutput, dq, dk, dv); break;
            case 32: Run<FlashBackD32>(device, a, batch, q, k, v, dOutput, dq, dk, dv); break;
            case 64: Run<FlashBackD64>(device, a, batch, q, k, v, dOutput, dq, dk, dv); break;
            case 128: Run<FlashBackD128>(device, a, batch, q, k, v, dOutput, dq, dk, dv); break;
            case 256: Run<FlashBackD256>(device, a, batch, q, k, v, dOutput, dq, dk, dv); break;
            default:
                throw new ArgumentException($"flash attention backward: no configuration for head dimension {a.HeadDim} (supported: 8, 16, 32, 64, 128, 256)");
        }
    }

    private static void Run<TConfig>(GpuDevice device, SpatialAttention.Dims a, int batch, ArrayView<float> q, ArrayView<float> k,
        ArrayView<float> v, ArrayView<float> dOutput, ArrayView<float> dq, ArrayView<float> dk, ArrayView<float> dv)
        where TConfig : struct, IFlashBackwardConfig
    {
        var cfg = default(TConfig);
        if (cfg.Threads > device.Accelerator.MaxNumThreadsPerGroup || device.Accelerator.WarpSize % cfg.Lanes != 0)
            throw new InvalidOperationException(
                $"flash attention backward: {typeof(TConfig).Name} needs groups of {cfg.Threads} threads and warps of a multiple of {cfg.Lanes} " +
                $"but {device.Description} allows {device.Accelerator.MaxNumThreadsPerGroup} and has warps of {device.Accelerator.WarpSize}");
        long rows = (long)batch * a.Heads * a.Queries;
        if (2 * rows > int.MaxValue) throw new ArgumentException($"flash attention backward: {rows} query rows are too many");
        var stats = device.Scratch((int)(2 * rows));
        int perGroup = cfg.Threads / cfg.Lanes;
        var queryKernel = device.Kernel(KernelKey<TConfig>.Of("flash-attention-backward-q"), static acc =>
            acc.LoadStreamKernel<SpatialAttention.Dims, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ArrayView<float>>(QueryKernel<TConfig>, Specialization<TConfig>()));
        var keyKernel = device.Kernel(KernelKey<TConfig>.Of("flash-attention-backward-kv"), static acc =>
            acc.LoadStreamKernel<SpatialAttention.Dims, int, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ArrayView<float>, ArrayView<float>>(KeyKernel<TConfig>, Specialization<TConfig>()));
        var group = new Index3D(cfg.Threads, 1, 1);
        queryKernel(new KernelConfig(new Index3D((a.Queries + perGroup - 1) / perGroup, a.Heads, batch), group),
            a, (int)rows, q, k, v, dOutput, dq, stats);
        keyKernel(new KernelConfig(new Index3D((a.Keys + perGroup - 1) / perGroup, a.Heads, batch), group),
            a, (int)rows, q, k, v, dOutput, stats, dk, dv);
    }

    private static KernelSpecialization Specialization<TConfig>() where TConfig : struct, IFlashBackwardConfig =>
        new(default(TConfig).Threads, default(TConfig).MinGroupsPerSM);
}

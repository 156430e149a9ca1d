using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;

namespace PosteriorGpu.Kernels.Gemm;

/// <summary>
/// The GPU GEMM core shared by <see cref="Gemm"/>, <see cref="Linear"/> and the convolutions (forward,
/// input gradient, weight gradient) through <see cref="IGemmOperands"/>, in the style of CUTLASS's SGEMM:
/// <list type="bullet">
/// <item>v1 (TiledGemm, replaced): runtime 64x64 tiles, 4x4 accumulators, scalar shared loads, one global
/// round trip and two barriers per k step, im2col indices divided out per staged element: 21-26 % FFMA
/// per k step (kernel-report, sm_90; bench/RESULTS.md).</item>
/// <item>v2: the block tile is a compile-time <see cref="IGemmTile"/> (128x128 with 8x8
/// accumulators per thread, 64x64, 32x32), so loops unroll and offsets are constants; fragments are read
/// from shared memory as 16-byte vectors (rows and columns of a thread come in groups of 4, BM/2 apart,
/// so a warp's vector reads do not conflict); shared memory is double-buffered and the next k step is
/// loaded into registers while the current one is multiplied (one barrier per k step); split-K with a
/// reduction in a fixed order where the grid would not fill the GPU.</item>
/// <item>v3 (this): an element's address is a fixed row (column) part plus a depth part that each thread
/// keeps once and moves along k (its staged elements lie on one k), so a convolution decodes k once per
/// thread and step instead of once per element; a 64x32 tile (8 weights and 4 im2col elements staged per
/// thread) replaces 32x32 for small convolutions; staged elements are stored at immediate offsets from
/// one base: 78-85 % FFMA per k step with 128x128 tiles, 63-76 % with the others (kernel-report).</item>
/// </list>
/// </summary>
internal static partial class GemmCore
{
    /// <summary>Depth of one k step (every tile).</summary>
    public const int BK = 8;

    /// <summary>Problem size of one launch: k runs over [split KPerSplit, (split + 1) KPerSplit) per block.</summary>
    internal struct Dims
    {
        /// <summary>Sizes; Splits blocks share each output tile (partial sums when more than one).</summary>
        public int M, N, K, KPerSplit, Splits;
    }

    /// <summary>
    /// Block (x, y, z) computes tile (y, x) of C for batch item z / Splits over its k range; with more than
    /// one split the raw sums go to <paramref name="partial"/> [batch, split, M, N] and the last of a tile's
    /// blocks to finish adds them (<see cref="FinishSplits{TOps, TSink}"/>); with one, they go through the epilogue.
    /// <paramref name="tileCounters"/> holds one zero per output tile (batch, y, x) between launches.
    /// </summary>
    internal static void Kernel<TTile, TOps>(TOps ops, Dims d, ArrayView<float> partial, ArrayView<int> tileCounters)
        where TTile : struct, IGemmTile where TOps : struct, IGemmOperands
    {
        var t = default(TTile);
        // Rows padded by 4 floats: 16-byte alignment stays, staging stores along k spread over the banks.
        var sa4 = SharedMemory.Allocate<Float4>(2 * BK * (t.BM + 4) / 4);
        var sb4 = SharedMemory.Allocate<Float4>(2 * BK * (t.BN + 4) / 4);
        var at = Place<TTile>(d);
        int tid = at.Tid, tmIdx = at.TmIdx, tnIdx = at.TnIdx, z = at.Z, b = at.B, m0 = at.M0, n0 = at.N0, kBegin = at.KBegin, kEnd = at.KEnd;
        Float4 c0l = default, c0h = default, c1l = default, c1h = default, c2l = default, c2h = default, c3l = default, c3h = default;
        Float4 c4l = default, c4h = default, c5l = default, c5h = default, c6l = default, c6h = default, c7l = default, c7h = default;
        Accumulate<TTile, TOps>(ops, b, m0, n0, d.M - 1, d.N - 1, kBegin, kEnd, sa4, sb4, tid, tmIdx, tnIdx,
            ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h, ref c4l, ref c4h, ref c5l, ref c5h, ref c6l, ref c6h, ref c7l, ref c7h);
        Finish<TTile, TOps, NoTileSink>(ops, d, partial, tileCounters, z, b, m0, n0, tid, tmIdx, tnIdx, default,
            c0l, c0h, c1l, c1h, c2l, c2h, c3l, c3h, c4l, c4h, c5l, c5h, c6l, c6h, c7l, c7h);
    }

    /// <summary>
    /// C = A B + A2 B2 in one launch: k runs over [0, <paramref name="k1"/>) of the first product, then over the second's
    /// k (Dims.K = k1 + its depth), into the same accumulators; the epilogue is the first operands'. Split-K ranges may
    /// straddle the boundary. A resnet's conv2 with its 1x1 shortcut is one such sum (its input concatenated along k).
    /// </summary>
    internal static void KernelSum<TTile, TOps, TOps2>(TOps ops, TOps2 second, int k1, Dims d, ArrayView<float> partial,
        ArrayView<int> tileCounters) where TTile : struct, IGemmTile where TOps : struct, IGemmOperands where TOps2 : struct, IGemmOperands
    {
        var t = default(TTile);
        // Rows padded by 4 floats: 16-byte alignment stays, staging stores along k spread over the banks.
        var sa4 = SharedMemory.Allocate<Float4>(2 * BK * (t.BM + 4) / 4);
        var sb4 = SharedMemory.Allocate<Float4>(2 * BK * (t.BN + 4) / 4);
        var at = Place<TTile>(d);
        int tid = at.Tid, tmIdx = at.TmIdx, tnIdx = at.TnIdx, z = at.Z, b = at.B, m0 = at.M0, n0 = at.N0, kBegin = at.KBegin, kEnd = at.KEnd;
        Float4 c0l = default, c0h = default, c1l = default, c1h = default, c2l = default, c2h = default, c3l = default, c3h = default;
        Float4 c4l = default, c4h = default, c5l = default, c5h = default, c6l = default, c6h = default, c7l = default, c7h = default;
        Accumulate<TTile, TOps>(ops, b, m0, n0, d.M - 1, d.N - 1, kBegin, Math.Min(kEnd, k1), sa4, sb4, tid, tmIdx, tnIdx,
            ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h, ref c4l, ref c4h, ref c5l, ref c5h, ref c6l, ref c6h, ref c7l, ref c7h);
        Accumulate<TTile, TOps2>(second, b, m0, n0, d.M - 1, d.N - 1, Math.Max(kBegin - k1, 0), kEnd - k1, sa4, sb4, tid, tmIdx, tnIdx,
            ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h, ref c4l, ref c4h, ref c5l, ref c5h, ref c6l, ref c6h, ref c7l, ref c7h);
        Finish<TTile, TOps, NoTileSink>(ops, d, partial, tileCounters, z, b, m0, n0, tid, tmIdx, tnIdx, default,
            c0l, c0h, c1l, c1h, c2l, c2h, c3l, c3h, c4l, c4h, c5l, c5h, c6l, c6h, c7l, c7h);
    }

    /// <summary>This thread's place: its index and fragment (row, column) within the block, the grid's z, the batch item,
    /// the tile's first row and column, and the block's k range.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static BlockPlace Place<TTile>(Dims d) where TTile : struct, IGemmTile
    {
        var t = default(TTile);
        int tid = Group.IdxX, threadsN = t.BN / t.TN;
        int z = Grid.IdxZ, b = z / d.Splits, split = z - b * d.Splits;
        int kBegin = split * d.KPerSplit;
        return new BlockPlace
        {
            Tid = tid, TmIdx = tid / threadsN, TnIdx = tid % threadsN, Z = z, B = b, M0 = Grid.IdxY * t.BM, N0 = Grid.IdxX * t.BN,
            KBegin = kBegin, KEnd = Math.Min(d.K, kBegin + d.KPerSplit),
        };
    }

    /// <summary>What <see cref="Place{TTile}"/> returns (a plain struct: ILGPU does not compile a 9-tuple).</summary>
    internal struct BlockPlace
    {
        public int Tid, TmIdx, TnIdx, Z, B, M0, N0, KBegin, KEnd;
    }

    /// <summary>The block's k range [kBegin, kEnd) of one product into its accumulators (nothing when empty); ends on a
    /// barrier, so the shared stages may be refilled at once.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Accumulate<TTile, TOps>(TOps ops, int b, int m0, int n0, int mLast, int nLast, int kBegin, int kEnd,
        ArrayView<Float4> sa4, ArrayView<Float4> sb4, int tid, int tmIdx, int tnIdx,
        ref Float4 c0l, ref Float4 c0h, ref Float4 c1l, ref Float4 c1h, ref Float4 c2l, ref Float4 c2h, ref Float4 c3l, ref Float4 c3h,
        ref Float4 c4l, ref Float4 c4h, ref Float4 c5l, ref Float4 c5h, ref Float4 c6l, ref Float4 c6h, ref Float4 c7l, ref Float4 c7h) where TTile : struct, IGemmTile where TOps : struct, IGemmOperands
    {
        if (kBegin >= kEnd) return;
        var t = default(TTile);
        int bm = t.BM, bn = t.BN, tm = t.TM, tn = t.TN, threads = t.Threads;
        int lda = bm + 4, ldb = bn + 4;
        var sa = sa4.Cast<float>();
        var sb = sb4.Cast<float>();
        // A thread stages ea (eb) elements of A (B) per k step, 4 or 8 (the long side of a 64x32 tile), all on
        // one k (so it keeps one depth part per operand): k offset, first row (column) and the stride between
        // its rows (columns). Along k, consecutive threads take consecutive k; otherwise consecutive rows
        // (columns), so a warp's loads follow memory either way.
        bool aAlongK = ops.AContiguousInK, bAlongN = ops.BContiguousInN;
        int ea = bm * BK / threads, eb = bn * BK / threads;
        int aK, aM, aStride, bK, bN, bStride;
        if (aAlongK) { aK = tid % BK; aM = tid / BK; aStride = threads / BK; }
        else { aStride = bm / ea; aM = tid % aStride; aK = tid / aStride; }
        if (bAlongN) { bStride = bn / eb; bN = tid % bStride; bK = tid / bStride; }
        else { bK = tid % BK; bN = tid / BK; bStride = threads / BK; }

        var ra0c = ops.RowA(b, Math.Min(m0 + aM, mLast));
        var ra1c = ops.RowA(b, Math.Min(m0 + aM + aStride, mLast));
        var ra2c = ops.RowA(b, Math.Min(m0 + aM + 2 * aStride, mLast));
        var ra3c = ops.RowA(b, Math.Min(m0 + aM + 3 * aStride, mLast));
        var ra4c = ea == 8 ? ops.RowA(b, Math.Min(m0 + aM + 4 * aStride, mLast)) : default;
        var ra5c = ea == 8 ? ops.RowA(b, Math.Min(m0 + aM + 5 * aStride, mLast)) : default;
        var ra6c = ea == 8 ? ops.RowA(b, Math.Min(m0 + aM + 6 * aStride, mLast)) : default;
        var ra7c = ea == 8 ? ops.RowA(b, Math.Min(m0 + aM + 7 * aStride, mLast)) : default;
        var cb0c = ops.ColumnB(b, Math.Min(n0 + bN, nLast));
        var cb1c = ops.ColumnB(b, Math.Min(n0 + bN + bStride, nLast));
        var cb2c = ops.ColumnB(b, Math.Min(n0 + bN + 2 * bStride, nLast));
        var cb3c = ops.ColumnB(b, Math.Min(n0 + bN + 3 * bStride, nLast));
        var cb4c = eb == 8 ? ops.ColumnB(b, Math.Min(n0 + bN + 4 * bStride, nLast)) : default;
        var cb5c = eb == 8 ? ops.ColumnB(b, Math.Min(n0 + bN + 5 * bStride, nLast)) : default;
        var cb6c = eb == 8 ? ops.ColumnB(b, Math.Min(n0 + bN + 6 * bStride, nLast)) : default;
        var cb7c = eb == 8 ? ops.ColumnB(b, Math.Min(n0 + bN + 7 * bStride, nLast)) : default;
        var da = ops.DepthA(b, kBegin + aK);
        var db = ops.DepthB(b, kBegin + bK);

        // Shared offsets of the first staged element within one stage (the others are a stride apart).
        int sa0 = aK * lda + aM, sb0 = bK * ldb + bN;
        int stageA = BK * lda, stageB = BK * ldb;

        // Prologue: the first k step straight into stage 0.
        int k0 = kBegin;
        bool aIn = k0 + aK < kEnd, bIn = k0 + bK < kEnd, a8 = aIn && ea == 8, b8 = bIn && eb == 8;
        Stage(sa, sa0, aStride, ea,
            aIn ? ops.LoadA(ra0c, da) : 0f, aIn ? ops.LoadA(ra1c, da) : 0f, aIn ? ops.LoadA(ra2c, da) : 0f, aIn ? ops.LoadA(ra3c, da) : 0f,
            a8 ? ops.LoadA(ra4c, da) : 0f, a8 ? ops.LoadA(ra5c, da) : 0f, a8 ? ops.LoadA(ra6c, da) : 0f, a8 ? ops.LoadA(ra7c, da) : 0f);
        Stage(sb, sb0, bStride, eb,
            bIn ? ops.LoadB(db, cb0c) : 0f, bIn ? ops.LoadB(db, cb1c) : 0f, bIn ? ops.LoadB(db, cb2c) : 0f, bIn ? ops.LoadB(db, cb3c) : 0f,
            b8 ? ops.LoadB(db, cb4c) : 0f, b8 ? ops.LoadB(db, cb5c) : 0f, b8 ? ops.LoadB(db, cb6c) : 0f, b8 ? ops.LoadB(db, cb7c) : 0f);
        Group.Barrier();

        // Next k step into registers while this one is multiplied from shared memory.
        int stage = 0;
        int lda4 = lda / 4, ldb4 = ldb / 4, aHi = bm / 8, bHi = bn / 8;
        // The main loop: steps whose successor is whole (no bounds check, no branch but the loop's).
        for (; k0 + 2 * BK <= kEnd; k0 += BK)
        {
            da = ops.StepA(da);
            db = ops.StepB(db);
            // Rows past M and columns past N were clamped to the last one when their parts opened, so
            // these loads are in bounds; what they add lands only in accumulators that are never stored.
            float ra0 = ops.LoadA(ra0c, da), ra1 = ops.LoadA(ra1c, da), ra2 = ops.LoadA(ra2c, da), ra3 = ops.LoadA(ra3c, da);
            float rb0 = ops.LoadB(db, cb0c), rb1 = ops.LoadB(db, cb1c), rb2 = ops.LoadB(db, cb2c), rb3 = ops.LoadB(db, cb3c);
            float ra4 = 0, ra5 = 0, ra6 = 0, ra7 = 0, rb4 = 0, rb5 = 0, rb6 = 0, rb7 = 0;
            if (ea == 8) { ra4 = ops.LoadA(ra4c, da); ra5 = ops.LoadA(ra5c, da); ra6 = ops.LoadA(ra6c, da); ra7 = ops.LoadA(ra7c, da); }
            if (eb == 8) { rb4 = ops.LoadB(db, cb4c); rb5 = ops.LoadB(db, cb5c); rb6 = ops.LoadB(db, cb6c); rb7 = ops.LoadB(db, cb7c); }

            // Views at this thread's fragments of the stage: every read below is base + a constant.
            int fao = stage * BK * lda4 + tmIdx, fbo = stage * BK * ldb4 + tnIdx;
            var fa = sa4.SubView(fao, sa4.Length - fao);
            var fb = sb4.SubView(fbo, sb4.Length - fbo);
            Multiply(fa, fb, 0 * lda4, 0 * ldb4, aHi, bHi, tm, tn, ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h, ref c4l, ref c4h, ref c5l, ref c5h, ref c6l, ref c6h, ref c7l, ref c7h);
            Multiply(fa, fb, 1 * lda4, 1 * ldb4, aHi, bHi, tm, tn, ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h, ref c4l, ref c4h, ref c5l, ref c5h, ref c6l, ref c6h, ref c7l, ref c7h);
            Multiply(fa, fb, 2 * lda4, 2 * ldb4, aHi, bHi, tm, tn, ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h, ref c4l, ref c4h, ref c5l, ref c5h, ref c6l, ref c6h, ref c7l, ref c7h);
            Multiply(fa, fb, 3 * lda4, 3 * ldb4, aHi, bHi, tm, tn, ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h, ref c4l, ref c4h, ref c5l, ref c5h, ref c6l, ref c6h, ref c7l, ref c7h);
            Multiply(fa, fb, 4 * lda4, 4 * ldb4, aHi, bHi, tm, tn, ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h, ref c4l, ref c4h, ref c5l, ref c5h, ref c6l, ref c6h, ref c7l, ref c7h);
            Multiply(fa, fb, 5 * lda4, 5 * ldb4, aHi, bHi, tm, tn, ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h, ref c4l, ref c4h, ref c5l, ref c5h, ref c6l, ref c6h, ref c7l, ref c7h);
            Multiply(fa, fb, 6 * lda4, 6 * ldb4, aHi, bHi, tm, tn, ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h, ref c4l, ref c4h, ref c5l, ref c5h, ref c6l, ref c6h, ref c7l, ref c7h);
            Multiply(fa, fb, 7 * lda4, 7 * ldb4, aHi, bHi, tm, tn, ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h, ref c4l, ref c4h, ref c5l, ref c5h, ref c6l, ref c6h, ref c7l, ref c7h);

            int next = (1 - stage) * stageA, nextB = (1 - stage) * stageB;
            Stage(sa, next + sa0, aStride, ea, ra0, ra1, ra2, ra3, ra4, ra5, ra6, ra7);
            Stage(sb, nextB + sb0, bStride, eb, rb0, rb1, rb2, rb3, rb4, rb5, rb6, rb7);
            // One barrier per step: the other stage is written before it, this one is reread only after it.
            Group.Barrier();
            stage = 1 - stage;
        }

        // The last one or two steps: the next one may be partial, past k both factors are zero.
        for (; k0 < kEnd; k0 += BK)
        {
            int k1 = k0 + BK;
            bool more = k1 < kEnd;
            float ra0 = 0, ra1 = 0, ra2 = 0, ra3 = 0, rb0 = 0, rb1 = 0, rb2 = 0, rb3 = 0;
            float ra4 = 0, ra5 = 0, ra6 = 0, ra7 = 0, rb4 = 0, rb5 = 0, rb6 = 0, rb7 = 0;
            if (more)
            {
                da = ops.StepA(da);
                db = ops.StepB(db);
                if (k1 + aK < kEnd)
                {
                    ra0 = ops.LoadA(ra0c, da); ra1 = ops.LoadA(ra1c, da); ra2 = ops.LoadA(ra2c, da); ra3 = ops.LoadA(ra3c, da);
                    if (ea == 8) { ra4 = ops.LoadA(ra4c, da); ra5 = ops.LoadA(ra5c, da); ra6 = ops.LoadA(ra6c, da); ra7 = ops.LoadA(ra7c, da); }
                }
                if (k1 + bK < kEnd)
                {
                    rb0 = ops.LoadB(db, cb0c); rb1 = ops.LoadB(db, cb1c); rb2 = ops.LoadB(db, cb2c); rb3 = ops.LoadB(db, cb3c);
                    if (eb == 8) { rb4 = ops.LoadB(db, cb4c); rb5 = ops.LoadB(db, cb5c); rb6 = ops.LoadB(db, cb6c); rb7 = ops.LoadB(db, cb7c); }
                }
            }

            // Views at this thread's fragments of the stage: every read below is base + a constant.
            int fao = stage * BK * lda4 + tmIdx, fbo = stage * BK * ldb4 + tnIdx;
            var fa = sa4.SubView(fao, sa4.Length - fao);
            var fb = sb4.SubView(fbo, sb4.Length - fbo);
            Multiply(fa, fb, 0 * lda4, 0 * ldb4, aHi, bHi, tm, tn, ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h, ref c4l, ref c4h, ref c5l, ref c5h, ref c6l, ref c6h, ref c7l, ref c7h);
            Multiply(fa, fb, 1 * lda4, 1 * ldb4, aHi, bHi, tm, tn, ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h, ref c4l, ref c4h, ref c5l, ref c5h, ref c6l, ref c6h, ref c7l, ref c7h);
            Multiply(fa, fb, 2 * lda4, 2 * ldb4, aHi, bHi, tm, tn, ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h, ref c4l, ref c4h, ref c5l, ref c5h, ref c6l, ref c6h, ref c7l, ref c7h);
            Multiply(fa, fb, 3 * lda4, 3 * ldb4, aHi, bHi, tm, tn, ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h, ref c4l, ref c4h, ref c5l, ref c5h, ref c6l, ref c6h, ref c7l, ref c7h);
            Multiply(fa, fb, 4 * lda4, 4 * ldb4, aHi, bHi, tm, tn, ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h, ref c4l, ref c4h, ref c5l, ref c5h, ref c6l, ref c6h, ref c7l, ref c7h);
            Multiply(fa, fb, 5 * lda4, 5 * ldb4, aHi, bHi, tm, tn, ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h, ref c4l, ref c4h, ref c5l, ref c5h, ref c6l, ref c6h, ref c7l, ref c7h);
            Multiply(fa, fb, 6 * lda4, 6 * ldb4, aHi, bHi, tm, tn, ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h, ref c4l, ref c4h, ref c5l, ref c5h, ref c6l, ref c6h, ref c7l, ref c7h);
            Multiply(fa, fb, 7 * lda4, 7 * ldb4, aHi, bHi, tm, tn, ref c0l, ref c0h, ref c1l, ref c1h, ref c2l, ref c2h, ref c3l, ref c3h, ref c4l, ref c4h, ref c5l, ref c5h, ref c6l, ref c6h, ref c7l, ref c7h);

            if (more)
            {
                int next = (1 - stage) * stageA, nextB = (1 - stage) * stageB;
                Stage(sa, next + sa0, aStride, ea, ra0, ra1, ra2, ra3, ra4, ra5, ra6, ra7);
                Stage(sb, nextB + sb0, bStride, eb, rb0, rb1, rb2, rb3, rb4, rb5, rb6, rb7);
            }
            // One barrier per step: the other stage is written before it, this one is reread only after it.
            Group.Barrier();
            stage = 1 - stage;
        }
    }

    /// <summary>Stores the block's accumulators: through the epilogue, or as partial sums that the tile's last block adds.
    /// Returns whether this block stored the finished tile (always without split-K; the last of the tile's blocks with it);
    /// every value it stores also goes to <paramref name="sink"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static bool Finish<TTile, TOps, TSink>(TOps ops, Dims d, ArrayView<float> partial, ArrayView<int> tileCounters, int z, int b,
        int m0, int n0, int tid, int tmIdx, int tnIdx, TSink sink,
        Float4 c0l, Float4 c0h, Float4 c1l, Float4 c1h, Float4 c2l, Float4 c2h, Float4 c3l, Float4 c3h,
        Float4 c4l, Float4 c4h, Float4 c5l, Float4 c5h, Float4 c6l, Float4 c6h, Float4 c7l, Float4 c7h)
        where TTile : struct, IGemmTile where TOps : struct, IGemmOperands where TSink : struct, ITileSink
    {
        var t = default(TTile);
        int bm = t.BM, bn = t.BN, tm = t.TM, tn = t.TN, threads = t.Threads;
        int rm = m0 + tmIdx * 4, rn = n0 + tnIdx * 4, rmHi = rm + bm / 2, rnHi = rn + bn / 2;
        int s = d.Splits;
        StoreRow(ops, d, partial, z, b, s, rm, rn, rnHi, tn, sink, c0l, c0h);
        StoreRow(ops, d, partial, z, b, s, rm + 1, rn, rnHi, tn, sink, c1l, c1h);
        StoreRow(ops, d, partial, z, b, s, rm + 2, rn, rnHi, tn, sink, c2l, c2h);
        StoreRow(ops, d, partial, z, b, s, rm + 3, rn, rnHi, tn, sink, c3l, c3h);
        if (tm == 8)
        {
            StoreRow(ops, d, partial, z, b, s, rmHi, rn, rnHi, tn, sink, c4l, c4h);
            StoreRow(ops, d, partial, z, b, s, rmHi + 1, rn, rnHi, tn, sink, c5l, c5h);
            StoreRow(ops, d, partial, z, b, s, rmHi + 2, rn, rnHi, tn, sink, c6l, c6h);
            StoreRow(ops, d, partial, z, b, s, rmHi + 3, rn, rnHi, tn, sink, c7l, c7h);
        }
        return s <= 1 || FinishSplits(ops, d, partial, tileCounters, b, m0, n0, bm, bn, tid, threads, sink);
    }

    /// <summary>
    /// Split-K without a second launch: each block of a tile, once its partial sums are stored, takes a ticket
    /// from the tile's counter; the block that draws the last one adds the tile's partial sums, split by split
    /// in order (the same sum whichever block arrives last, so results do not depend on timing), stores them
    /// through the epilogue and puts the counter back to zero for the next launch. The CUDA programming guide's
    /// "last block" pattern: a device fence before the ticket makes every thread's stores visible to the
    /// block that reads them.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool FinishSplits<TOps, TSink>(TOps ops, Dims d, ArrayView<float> partial, ArrayView<int> tileCounters,
        int b, int m0, int n0, int bm, int bn, int tid, int threads, TSink sink) where TOps : struct, IGemmOperands where TSink : struct, ITileSink
    {
        MemoryFence.DeviceLevel();
        Group.Barrier();
        int tile = (b * Grid.DimY + Grid.IdxY) * Grid.DimX + Grid.IdxX;
        bool last = Group.BarrierOr(tid == 0 && Atomic.Add(ref tileCounters[tile], 1) == d.Splits - 1);
        if (!last) return false;
        MemoryFence.DeviceLevel();
        int mn = d.M * d.N, first = b * d.Splits * mn;
        // Consecutive threads take consecutive columns: the partial sums are read along memory.
        for (int e = tid; e < bm * bn; e += threads)
        {
            int m = m0 + e / bn, n = n0 + e % bn;
            if (m >= d.M || n >= d.N) continue;
            int o = first + m * d.N + n;
            float acc = 0;
            for (int split = 0; split < d.Splits; split++) acc += partial[o + split * mn];
            ops.Store(b, m, n, acc);
            if (sink.Wanted) sink.Put(b, m, n, acc);
        }
        if (tid == 0) tileCounters[tile] = 0;
        return true;
    }

    /// <summary>Where the finished tile's values go besides the epilogue (the statistics of a following GroupNorm);
    /// a type argument, so that <see cref="NoTileSink"/> compiles to nothing.</summary>
    internal interface ITileSink
    {
        /// <summary>False: <see cref="Put"/> is never called.</summary>
        bool Wanted { get; }

        /// <summary>Takes the finished dot product of row m and column n (before the epilogue).</summary>
        void Put(int b, int m, int n, float acc);
    }

    /// <summary>The sink of every plain launch: nothing.</summary>
    internal readonly struct NoTileSink : ITileSink
    {
        public bool Wanted => false;

        public void Put(int b, int m, int n, float acc) { }
    }

    /// <summary>Stores a thread's staged elements (4, or 8 when <paramref name="count"/> is 8), stride apart, from
    /// one base: with the stride a constant of the tile the stores take immediate offsets.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Stage(ArrayView<float> s, int at, int stride, int count,
        float v0, float v1, float v2, float v3, float v4, float v5, float v6, float v7)
    {
        var d = s.SubView(at, s.Length - at);
        d[0] = v0; d[stride] = v1; d[2 * stride] = v2; d[3 * stride] = v3;
        if (count == 8)
        {
            d[4 * stride] = v4; d[5 * stride] = v5; d[6 * stride] = v6; d[7 * stride] = v7;
        }
    }

    /// <summary>One kk of a k step: the thread's TM x TN outer product from two or four 16-byte shared reads
    /// at constant offsets from the fragment views.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Multiply(ArrayView<Float4> fa, ArrayView<Float4> fb, int pa, int pb, int aHi, int bHi, int tm, int tn,
        ref Float4 c0l, ref Float4 c0h, ref Float4 c1l, ref Float4 c1h, ref Float4 c2l, ref Float4 c2h, ref Float4 c3l, ref Float4 c3h,
        ref Float4 c4l, ref Float4 c4h, ref Float4 c5l, ref Float4 c5h, ref Float4 c6l, ref Float4 c6h, ref Float4 c7l, ref Float4 c7h)
    {
        var a0 = fa[pa];
        var b0 = fb[pb];
        var a1 = tm == 8 ? fa[pa + aHi] : default;
        var b1 = tn == 8 ? fb[pb + bHi] : default;
        Row(ref c0l, ref c0h, a0.X, b0, b1, tn);
        Row(ref c1l, ref c1h, a0.Y, b0, b1, tn);
        Row(ref c2l, ref c2h, a0.Z, b0, b1, tn);
        Row(ref c3l, ref c3h, a0.W, b0, b1, tn);
        if (tm == 8)
        {
            Row(ref c4l, ref c4h, a1.X, b0, b1, tn);
            Row(ref c5l, ref c5h, a1.Y, b0, b1, tn);
            Row(ref c6l, ref c6h, a1.Z, b0, b1, tn);
            Row(ref c7l, ref c7h, a1.W, b0, b1, tn);
        }
    }

    /// <summary>One row of the thread's accumulators: lo (+ hi when 8 wide) += a b.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Row(ref Float4 lo, ref Float4 hi, float a, Float4 b0, Float4 b1, int tn)
    {
        lo.X += a * b0.X; lo.Y += a * b0.Y; lo.Z += a * b0.Z; lo.W += a * b0.W;
        if (tn == 8)
        {
            hi.X += a * b1.X; hi.Y += a * b1.Y; hi.Z += a * b1.Z; hi.W += a * b1.W;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow<TOps, TSink>(TOps ops, Dims d, ArrayView<float> partial, int z, int b, int splits, int m, int n, int nHi, int tn,
        TSink sink, Float4 lo, Float4 hi) where TOps : struct, IGemmOperands where TSink : struct, ITileSink
    {
        if (m >= d.M) return;
        Store4(ops, d, partial, z, b, splits, m, n, sink, lo);
        if (tn == 8) Store4(ops, d, partial, z, b, splits, m, nHi, sink, hi);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store4<TOps, TSink>(TOps ops, Dims d, ArrayView<float> partial, int z, int b, int splits, int m, int n, TSink sink, Float4 v)
        where TOps : struct, IGemmOperands where TSink : struct, ITileSink
    {
        if (splits > 1)
        {
            int o = (z * d.M + m) * d.N + n;
            if (n < d.N) partial[o] = v.X;
            if (n + 1 < d.N) partial[o + 1] = v.Y;
            if (n + 2 < d.N) partial[o + 2] = v.Z;
            if (n + 3 < d.N) partial[o + 3] = v.W;
            return;
        }
        if (n < d.N) ops.Store(b, m, n, v.X);
        if (n + 1 < d.N) ops.Store(b, m, n + 1, v.Y);
        if (n + 2 < d.N) ops.Store(b, m, n + 2, v.Z);
        if (n + 3 < d.N) ops.Store(b, m, n + 3, v.W);
        if (!sink.Wanted) return;
        if (n < d.N) sink.Put(b, m, n, v.X);
        if (n + 1 < d.N) sink.Put(b, m, n + 1, v.Y);
        if (n + 2 < d.N) sink.Put(b, m, n + 2, v.Z);
        if (n + 3 < d.N) sink.Put(b, m, n + 3, v.W);
    }

    /// <summary>A launch plan: the block tile (128x128, 64x64, 64x32 or 32x32) and how many ways k is split.</summary>
    internal readonly record struct Plan(int TileM, int TileN, int Splits);

    /// <summary>The tiles <see cref="Choose"/> considers, largest first, with the FFMA share of their k step
    /// (kernel-report, sm_90, bench/RESULTS.md), for plain operands and for an im2col operand.</summary>
    private static readonly (int M, int N, int Threads, double Plain, double Im2Col)[] Tiles =
    [
        (128, 128, 256, 0.85, 0.79),
        (64, 64, 128, 0.76, 0.66),
        (64, 32, 64, 0.0, 0.63),
        (32, 32, 64, 0.63, 0.0),
    ];

    /// <summary>Whether tiles with <paramref name="tileM"/> rows serve operands of this kind: all but 32x32 with
    /// an im2col operand, whose k step is nearly half addressing (52-54 % FFMA); the others reach 63 % or more.</summary>
    internal static bool Serves(int tileM, bool im2col) => !(im2col && tileM == 32);

    /// <summary>For kernel-report: whether <see cref="Kernel{TTile, TOps}"/> (or KernelSum) closed over these type arguments
    /// is a kernel the library launches.</summary>
    internal static bool ServesTypeArguments(Type[] typeArguments)
    {
        if (typeArguments.Length < 2) return true;
        if (typeArguments.Length == 3 && !Sums.Contains((typeArguments[1], typeArguments[2]))) return false;
        bool im2col = typeArguments.Skip(1).Any(a => ((IGemmOperands)Activator.CreateInstance(a)!).Im2Col);
        return Serves(((IGemmTile)Activator.CreateInstance(typeArguments[0])!).BM, im2col);
    }

    /// <summary>The (first, second) operand pairs the library launches as sums (<see cref="LaunchSum{TOps, TOps2}"/>).</summary>
    private static readonly HashSet<(Type, Type)> Sums = [(typeof(Conv.Conv2dNormalized.Operands), typeof(Conv.Conv2d.Operands))];

    /// <summary>
    /// The heuristic. Among the tiles whose grid gives at least one block per SM (a grid that leaves SMs
    /// idle loses more than any tile gains), pick the one with the best (useful fraction of the padded
    /// tiles) x (FFMA share of its k step, from kernel-report). So a 64-channel convolution takes 64x64
    /// tiles (128 rows would be half padding). The small tile differs by operand kind: 32x32 for GEMM and
    /// Linear; 64x32 (64 output channels, 32 pixels) for convolutions, whose im2col loads cost about nine
    /// instructions each: a 32x32 tile spends nearly half its k step on them (52-54 % FFMA), a 64x32 tile
    /// stages 8 cheap weights (or dY values) and 4 im2col elements per thread for twice the FFMA (63-65 %).
    /// When no tile fills the GPU,
    /// the small tile, and k, when long (at least 256), is split into up to 8 ranges of at least 64 so that
    /// about one block per SM runs; the last block of each tile adds the partial sums in a fixed order (results
    /// do not depend on timing; no second launch).
    /// </summary>
    internal static Plan Choose(int m, int n, int k, int batch, int multiprocessors, int maxThreadsPerGroup, bool im2col)
    {
        long Blocks(int tm, int tn) => (long)((m + tm - 1) / tm) * ((n + tn - 1) / tn) * batch;
        double Useful(int tm, int tn) => m / ((m + tm - 1) / tm * (double)tm) * n / ((n + tn - 1) / tn * (double)tn);
        int sms = Math.Max(1, multiprocessors);
        var best = new Plan(0, 0, 1);
        double bestScore = -1;
        var small = new Plan(0, 0, 1);
        foreach (var (tm, tn, threads, plain, withIm2Col) in Tiles)
        {
            double share = im2col ? withIm2Col : plain;
            if (share <= 0 || threads > maxThreadsPerGroup) continue;
            small = new Plan(tm, tn, 1);
            if (Blocks(tm, tn) < sms) continue;
            double score = share * Useful(tm, tn);
            if (score > bestScore) (best, bestScore) = (new Plan(tm, tn, 1), score);
        }
        if (best.TileM != 0) return best;
        long blocks = Blocks(small.TileM, small.TileN);
        int splits = 1;
        if (k >= 256)
            splits = (int)Math.Min(Math.Min(8, (sms + blocks - 1) / blocks), k / 64);
        return small with { Splits = Math.Max(1, splits) };
    }

    /// <summary>
    /// Runs C = A B through <typeparamref name="TOps"/> for <paramref name="batch"/> items of M x N x K on a
    /// GPU-style device (or on a CPU accelerator simulating groups of at least the tile's threads, as tests do).
    /// </summary>
    /// <exception cref="ArgumentException">A pinned variant asks for a tile that does not serve these operands
    /// (32x32 with an im2col operand).</exception>
    public static void Launch<TOps>(GpuDevice device, string key, TOps ops, int m, int n, int k, int batch, GemmVariant variant)
        where TOps : struct, IGemmOperands
    {
        if (m == 0 || n == 0 || batch == 0) return;
        var plan = PlanFor(device, variant, m, n, k, batch, ops.Im2Col);
        switch (plan.TileM, plan.TileN)
        {
            case (128, 128): Run<Tile128x128, TOps>(device, key, ops, m, n, k, batch, plan.Splits); break;
            case (64, 64): Run<Tile64x64, TOps>(device, key, ops, m, n, k, batch, plan.Splits); break;
            case (64, 32): Run<Tile64x32, TOps>(device, key, ops, m, n, k, batch, plan.Splits); break;
            default: Run<Tile32x32, TOps>(device, key, ops, m, n, k, batch, plan.Splits); break;
        }
    }

    /// <summary>
    /// Runs C = A B + A2 B2 (<see cref="KernelSum{TTile, TOps, TOps2}"/>): <paramref name="k1"/> and <paramref name="k2"/>
    /// the two products' depths, planned as one GEMM of depth k1 + k2; the epilogue is <typeparamref name="TOps"/>'.
    /// </summary>
    /// <exception cref="ArgumentException">As <see cref="Launch{TOps}"/>.</exception>
    public static void LaunchSum<TOps, TOps2>(GpuDevice device, string key, TOps ops, TOps2 second, int m, int n, int k1, int k2, int batch,
        GemmVariant variant) where TOps : struct, IGemmOperands where TOps2 : struct, IGemmOperands
    {
        if (m == 0 || n == 0 || batch == 0) return;
        var plan = PlanFor(device, variant, m, n, k1 + k2, batch, ops.Im2Col || second.Im2Col);
        switch (plan.TileM, plan.TileN)
        {
            case (128, 128): RunSum<Tile128x128, TOps, TOps2>(device, key, ops, second, m, n, k1, k2, batch, plan.Splits); break;
            case (64, 64): RunSum<Tile64x64, TOps, TOps2>(device, key, ops, second, m, n, k1, k2, batch, plan.Splits); break;
            case (64, 32): RunSum<Tile64x32, TOps, TOps2>(device, key, ops, second, m, n, k1, k2, batch, plan.Splits); break;
            default: RunSum<Tile32x32, TOps, TOps2>(device, key, ops, second, m, n, k1, k2, batch, plan.Splits); break;
        }
    }

    internal static Plan PlanFor(GpuDevice device, GemmVariant variant, int m, int n, int k, int batch, bool im2col)
    {
        var plan = variant switch
        {
            GemmVariant.Tile128 => new Plan(128, 128, 1),
            GemmVariant.Tile64 => new Plan(64, 64, 1),
            GemmVariant.Tile64x32 => new Plan(64, 32, 1),
            GemmVariant.Tile32 => new Plan(32, 32, 1),
            GemmVariant.Tile32SplitK => new Plan(32, 32, Math.Max(1, Math.Min(3, (k + BK - 1) / BK))),
            GemmVariant.Tile64x32SplitK => new Plan(64, 32, Math.Max(1, Math.Min(3, (k + BK - 1) / BK))),
            _ => Choose(m, n, k, batch, device.Multiprocessors, device.Accelerator.MaxNumThreadsPerGroup, im2col),
        };
        if (!Serves(plan.TileM, im2col))
            throw new ArgumentException($"gemm core: {plan.TileM}x{plan.TileN} tiles do not serve convolutions (their small tile is 64x32)");
        return plan;
    }

    private static void Run<TTile, TOps>(GpuDevice device, string key, TOps ops, int m, int n, int k, int batch, int splits)
        where TTile : struct, IGemmTile where TOps : struct, IGemmOperands
    {
        var (dims, config, partial, counters) = Prepare<TTile>(device, m, n, k, batch, splits);
        var kernel = device.Kernel(KernelKey<TTile>.Of(key), static acc => acc.LoadStreamKernel<TOps, Dims, ArrayView<float>, ArrayView<int>>(
            Kernel<TTile, TOps>, GemmTiles.Specialization<TTile>()));
        kernel(config, ops, dims, partial, counters);
    }

    private static void RunSum<TTile, TOps, TOps2>(GpuDevice device, string key, TOps ops, TOps2 second, int m, int n, int k1, int k2,
        int batch, int splits) where TTile : struct, IGemmTile where TOps : struct, IGemmOperands where TOps2 : struct, IGemmOperands
    {
        var (dims, config, partial, counters) = Prepare<TTile>(device, m, n, k1 + k2, batch, splits);
        var kernel = device.Kernel(KernelKey<TTile>.Of(key), static acc => acc.LoadStreamKernel<TOps, TOps2, int, Dims, ArrayView<float>, ArrayView<int>>(
            KernelSum<TTile, TOps, TOps2>, GemmTiles.Specialization<TTile>()));
        kernel(config, ops, second, k1, dims, partial, counters);
    }

    /// <summary>The launch's dimensions and grid, and the split-K scratch (partial sums, tile counters) it needs.</summary>
    internal static (Dims Dims, KernelConfig Config, ArrayView<float> Partial, ArrayView<int> Counters) Prepare<TTile>(GpuDevice device,
        int m, int n, int k, int batch, int splits, bool launchTicket = false) where TTile : struct, IGemmTile
    {
        var t = default(TTile);
        if (t.Threads > device.Accelerator.MaxNumThreadsPerGroup)
            throw new InvalidOperationException(
                $"gemm core: the {typeof(TTile).Name} tile needs groups of {t.Threads} threads but {device.Description} allows {device.Accelerator.MaxNumThreadsPerGroup}");
        // Each split's range is a whole number of k steps.
        int kPer = splits > 1 ? ((k + splits - 1) / splits + BK - 1) / BK * BK : Math.Max(k, 1);
        if (splits > 1) splits = (k + kPer - 1) / kPer;
        var dims = new Dims { M = m, N = n, K = k, KPerSplit = kPer, Splits = Math.Max(splits, 1) };
        long partialLength = splits > 1 ? (long)batch * splits * m * n : 1;
        if (partialLength > int.MaxValue)
            throw new ArgumentException($"gemm core: {batch}x{splits}x{m}x{n} partial sums do not fit one buffer");
        var partial = device.SplitKScratch((int)partialLength);
        int tilesN = (n + t.BN - 1) / t.BN, tilesM = (m + t.BM - 1) / t.BM;
        long tiles = (long)batch * tilesM * tilesN;
        if ((splits > 1 || launchTicket) && tiles >= int.MaxValue)
            throw new ArgumentException($"gemm core: {batch}x{tilesM}x{tilesN} split-K tiles do not fit one counter table");
        // With launchTicket, one more counter after the tiles': a ticket for the whole launch (see GemmCoreNormStats).
        var counters = device.SplitKTileCounters(launchTicket ? (int)tiles + 1 : dims.Splits > 1 ? (int)tiles : 1);
        var config = new KernelConfig(new Index3D(tilesN, tilesM, batch * dims.Splits), new Index3D(t.Threads, 1, 1));
        return (dims, config, partial, counters);
    }
}

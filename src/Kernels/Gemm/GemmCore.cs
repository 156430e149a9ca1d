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
/// <item>v2 (this): the block tile is a compile-time <see cref="IGemmTile"/> (128x128 with 8x8
/// accumulators per thread, 64x64, 32x32), so loops unroll and offsets are constants; fragments are read
/// from shared memory as 16-byte vectors (rows and columns of a thread come in groups of 4, BM/2 apart,
/// so a warp's vector reads do not conflict); shared memory is double-buffered and the next k step is
/// loaded into registers while the current one is multiplied (one barrier per k step); operands move
/// along k through cursors (no division in the loop); split-K with a reduction in a fixed order where
/// the grid would not fill the GPU: 72-84 % FFMA per k step with 128x128 tiles.</item>
/// </list>
/// </summary>
internal static class GemmCore
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
    /// one split the raw sums go to <paramref name="partial"/> [batch, split, M, N], else through the epilogue.
    /// </summary>
    internal static void Kernel<TTile, TOps>(TOps ops, Dims d, ArrayView<float> partial)
        where TTile : struct, IGemmTile where TOps : struct, IGemmOperands
    {
        var t = default(TTile);
        int bm = t.BM, bn = t.BN, tm = t.TM, tn = t.TN, threads = t.Threads;
        // Rows padded by 4 floats: 16-byte alignment stays, staging stores along k spread over the banks.
        int lda = bm + 4, ldb = bn + 4;
        var sa4 = SharedMemory.Allocate<Float4>(2 * BK * (t.BM + 4) / 4);
        var sb4 = SharedMemory.Allocate<Float4>(2 * BK * (t.BN + 4) / 4);
        var sa = sa4.Cast<float>();
        var sb = sb4.Cast<float>();

        int tid = Group.IdxX;
        int threadsN = bn / tn;
        int tnIdx = tid % threadsN, tmIdx = tid / threadsN;
        int z = Grid.IdxZ, b = z / d.Splits, split = z - b * d.Splits;
        int m0 = Grid.IdxY * bm, n0 = Grid.IdxX * bn;
        int kBegin = split * d.KPerSplit, kEnd = Math.Min(d.K, kBegin + d.KPerSplit);
        bool aAlongK = ops.AContiguousInK, bAlongN = ops.BContiguousInN;

        // The four A and four B elements this thread stages per k step: (row, k offset) of each.
        int aStep = aAlongK ? threads / BK : 0, aKStep = aAlongK ? 0 : threads / bm;
        int am0 = aAlongK ? tid / BK : tid % bm, ak0 = aAlongK ? tid % BK : tid / bm;
        int bStep = bAlongN ? 0 : threads / BK, bKStep = bAlongN ? threads / bn : 0;
        int bn0 = bAlongN ? tid % bn : tid / BK, bk0 = bAlongN ? tid / bn : tid % BK;

        int am1 = am0 + aStep, am2 = am1 + aStep, am3 = am2 + aStep;
        int ak1 = ak0 + aKStep, ak2 = ak1 + aKStep, ak3 = ak2 + aKStep;
        int bn1 = bn0 + bStep, bn2 = bn1 + bStep, bn3 = bn2 + bStep;
        int bk1 = bk0 + bKStep, bk2 = bk1 + bKStep, bk3 = bk2 + bKStep;
        int mLast = d.M - 1, nLast = d.N - 1;
        var ca0 = ops.OpenA(b, Math.Min(m0 + am0, mLast), kBegin + ak0);
        var ca1 = ops.OpenA(b, Math.Min(m0 + am1, mLast), kBegin + ak1);
        var ca2 = ops.OpenA(b, Math.Min(m0 + am2, mLast), kBegin + ak2);
        var ca3 = ops.OpenA(b, Math.Min(m0 + am3, mLast), kBegin + ak3);
        var cb0 = ops.OpenB(b, kBegin + bk0, Math.Min(n0 + bn0, nLast));
        var cb1 = ops.OpenB(b, kBegin + bk1, Math.Min(n0 + bn1, nLast));
        var cb2 = ops.OpenB(b, kBegin + bk2, Math.Min(n0 + bn2, nLast));
        var cb3 = ops.OpenB(b, kBegin + bk3, Math.Min(n0 + bn3, nLast));

        // Shared offsets of the staged elements within one stage.
        int sa0 = ak0 * lda + am0, sa1 = ak1 * lda + am1, sa2 = ak2 * lda + am2, sa3 = ak3 * lda + am3;
        int sb0 = bk0 * ldb + bn0, sb1 = bk1 * ldb + bn1, sb2 = bk2 * ldb + bn2, sb3 = bk3 * ldb + bn3;
        int stageA = BK * lda, stageB = BK * ldb;

        // Prologue: the first k step straight into stage 0.
        int k0 = kBegin;
        sa[sa0] = k0 + ak0 < kEnd ? ops.LoadA(ca0) : 0f;
        sa[sa1] = k0 + ak1 < kEnd ? ops.LoadA(ca1) : 0f;
        sa[sa2] = k0 + ak2 < kEnd ? ops.LoadA(ca2) : 0f;
        sa[sa3] = k0 + ak3 < kEnd ? ops.LoadA(ca3) : 0f;
        sb[sb0] = k0 + bk0 < kEnd ? ops.LoadB(cb0) : 0f;
        sb[sb1] = k0 + bk1 < kEnd ? ops.LoadB(cb1) : 0f;
        sb[sb2] = k0 + bk2 < kEnd ? ops.LoadB(cb2) : 0f;
        sb[sb3] = k0 + bk3 < kEnd ? ops.LoadB(cb3) : 0f;
        Group.Barrier();

        Float4 c0l = default, c0h = default, c1l = default, c1h = default, c2l = default, c2h = default, c3l = default, c3h = default;
        Float4 c4l = default, c4h = default, c5l = default, c5h = default, c6l = default, c6h = default, c7l = default, c7h = default;
        // Next k step into registers while this one is multiplied from shared memory.
        int stage = 0;
        int lda4 = lda / 4, ldb4 = ldb / 4, aHi = bm / 8, bHi = bn / 8;
        // The main loop: steps whose successor is whole (no bounds check, no branch but the loop's).
        for (; k0 + 2 * BK <= kEnd; k0 += BK)
        {
            ca0 = ops.StepA(ca0); ca1 = ops.StepA(ca1); ca2 = ops.StepA(ca2); ca3 = ops.StepA(ca3);
            cb0 = ops.StepB(cb0); cb1 = ops.StepB(cb1); cb2 = ops.StepB(cb2); cb3 = ops.StepB(cb3);
            // Rows past M and columns past N were clamped to the last one when the cursors opened, so
            // these loads are in bounds; what they add lands only in accumulators that are never stored.
            float ra0 = ops.LoadA(ca0), ra1 = ops.LoadA(ca1), ra2 = ops.LoadA(ca2), ra3 = ops.LoadA(ca3);
            float rb0 = ops.LoadB(cb0), rb1 = ops.LoadB(cb1), rb2 = ops.LoadB(cb2), rb3 = ops.LoadB(cb3);

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
            sa[next + sa0] = ra0; sa[next + sa1] = ra1; sa[next + sa2] = ra2; sa[next + sa3] = ra3;
            sb[nextB + sb0] = rb0; sb[nextB + sb1] = rb1; sb[nextB + sb2] = rb2; sb[nextB + sb3] = rb3;
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
            if (more)
            {
                ca0 = ops.StepA(ca0); ca1 = ops.StepA(ca1); ca2 = ops.StepA(ca2); ca3 = ops.StepA(ca3);
                cb0 = ops.StepB(cb0); cb1 = ops.StepB(cb1); cb2 = ops.StepB(cb2); cb3 = ops.StepB(cb3);
                if (k1 + ak0 < kEnd) ra0 = ops.LoadA(ca0);
                if (k1 + ak1 < kEnd) ra1 = ops.LoadA(ca1);
                if (k1 + ak2 < kEnd) ra2 = ops.LoadA(ca2);
                if (k1 + ak3 < kEnd) ra3 = ops.LoadA(ca3);
                if (k1 + bk0 < kEnd) rb0 = ops.LoadB(cb0);
                if (k1 + bk1 < kEnd) rb1 = ops.LoadB(cb1);
                if (k1 + bk2 < kEnd) rb2 = ops.LoadB(cb2);
                if (k1 + bk3 < kEnd) rb3 = ops.LoadB(cb3);
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
                sa[next + sa0] = ra0; sa[next + sa1] = ra1; sa[next + sa2] = ra2; sa[next + sa3] = ra3;
                sb[nextB + sb0] = rb0; sb[nextB + sb1] = rb1; sb[nextB + sb2] = rb2; sb[nextB + sb3] = rb3;
            }
            // One barrier per step: the other stage is written before it, this one is reread only after it.
            Group.Barrier();
            stage = 1 - stage;
        }

        int rm = m0 + tmIdx * 4, rn = n0 + tnIdx * 4, rmHi = rm + bm / 2, rnHi = rn + bn / 2;
        int s = d.Splits;
        StoreRow(ops, d, partial, z, b, s, rm, rn, rnHi, tn, c0l, c0h);
        StoreRow(ops, d, partial, z, b, s, rm + 1, rn, rnHi, tn, c1l, c1h);
        StoreRow(ops, d, partial, z, b, s, rm + 2, rn, rnHi, tn, c2l, c2h);
        StoreRow(ops, d, partial, z, b, s, rm + 3, rn, rnHi, tn, c3l, c3h);
        if (tm == 8)
        {
            StoreRow(ops, d, partial, z, b, s, rmHi, rn, rnHi, tn, c4l, c4h);
            StoreRow(ops, d, partial, z, b, s, rmHi + 1, rn, rnHi, tn, c5l, c5h);
            StoreRow(ops, d, partial, z, b, s, rmHi + 2, rn, rnHi, tn, c6l, c6h);
            StoreRow(ops, d, partial, z, b, s, rmHi + 3, rn, rnHi, tn, c7l, c7h);
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
    private static void StoreRow<TOps>(TOps ops, Dims d, ArrayView<float> partial, int z, int b, int splits, int m, int n, int nHi, int tn,
        Float4 lo, Float4 hi) where TOps : struct, IGemmOperands
    {
        if (m >= d.M) return;
        Store4(ops, d, partial, z, b, splits, m, n, lo);
        if (tn == 8) Store4(ops, d, partial, z, b, splits, m, nHi, hi);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store4<TOps>(TOps ops, Dims d, ArrayView<float> partial, int z, int b, int splits, int m, int n, Float4 v)
        where TOps : struct, IGemmOperands
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
    }

    /// <summary>C(b, m, n) = epilogue(sum over splits s, in order, of partial[b, s, m, n]): deterministic split-K.</summary>
    internal static void ReduceKernel<TOps>(Index1D i, TOps ops, Dims d, int total, ArrayView<float> partial)
        where TOps : struct, IGemmOperands
    {
        if (i >= total) return;
        int mn = d.M * d.N;
        int b = i / mn, r = i - b * mn, m = r / d.N, n = r - m * d.N;
        int o = b * d.Splits * mn + r;
        float acc = 0;
        for (int s = 0; s < d.Splits; s++) acc += partial[o + s * mn];
        ops.Store(b, m, n, acc);
    }

    /// <summary>A launch plan: the block tile's edge (128, 64 or 32) and how many ways k is split.</summary>
    internal readonly record struct Plan(int Tile, int Splits);

    /// <summary>
    /// The heuristic. Among the tiles whose grid gives at least one block per SM (a grid that leaves SMs
    /// idle loses more than any tile gains), pick the one with the best (useful fraction of the padded
    /// tiles) x (FFMA share of its k step): 0.8, 0.7 and 0.5 for 128x128, 64x64 and 32x32, rounded from
    /// kernel-report's sm_90 table in bench/RESULTS.md. So a 64-channel convolution takes 64x64 tiles
    /// (128 rows would be half padding), a 3-channel one 32x32. When no tile fills the GPU, 32x32 tiles,
    /// and k, when long (at least 256), is split into up to 8 ranges of at least 64 so that about one
    /// block per SM runs; a second kernel adds the partial sums in a fixed order (results do not depend
    /// on timing).
    /// </summary>
    internal static Plan Choose(int m, int n, int k, int batch, int multiprocessors, int maxThreadsPerGroup)
    {
        long Blocks(int tile) => (long)((m + tile - 1) / tile) * ((n + tile - 1) / tile) * batch;
        double Score(int tile, double ffmaShare) =>
            ffmaShare * m / ((m + tile - 1) / tile * (double)tile) * n / ((n + tile - 1) / tile * (double)tile);
        int sms = Math.Max(1, multiprocessors);
        var best = new Plan(0, 1);
        double bestScore = -1;
        foreach (var (tile, share, threads) in new[] { (128, 0.8, 256), (64, 0.7, 128), (32, 0.5, 64) })
        {
            if (threads > maxThreadsPerGroup || Blocks(tile) < sms) continue;
            double score = Score(tile, share);
            if (score > bestScore) (best, bestScore) = (new Plan(tile, 1), score);
        }
        if (best.Tile != 0) return best;
        long blocks = Blocks(32);
        int splits = 1;
        if (k >= 256)
            splits = (int)Math.Min(Math.Min(8, (sms + blocks - 1) / blocks), k / 64);
        return new Plan(32, Math.Max(1, splits));
    }

    /// <summary>
    /// Runs C = A B through <typeparamref name="TOps"/> for <paramref name="batch"/> items of M x N x K on a
    /// GPU-style device (or on a CPU accelerator simulating groups of at least the tile's threads, as tests do).
    /// </summary>
    public static void Launch<TOps>(GpuDevice device, string key, TOps ops, int m, int n, int k, int batch, GemmVariant variant)
        where TOps : struct, IGemmOperands
    {
        if (m == 0 || n == 0 || batch == 0) return;
        var plan = variant switch
        {
            GemmVariant.Tile128 => new Plan(128, 1),
            GemmVariant.Tile64 => new Plan(64, 1),
            GemmVariant.Tile32 => new Plan(32, 1),
            GemmVariant.Tile32SplitK => new Plan(32, Math.Max(1, Math.Min(3, (k + BK - 1) / BK))),
            _ => Choose(m, n, k, batch, device.Accelerator.NumMultiprocessors, device.Accelerator.MaxNumThreadsPerGroup),
        };
        switch (plan.Tile)
        {
            case 128: Run<Tile128x128, TOps>(device, key, ops, m, n, k, batch, plan.Splits); break;
            case 64: Run<Tile64x64, TOps>(device, key, ops, m, n, k, batch, plan.Splits); break;
            default: Run<Tile32x32, TOps>(device, key, ops, m, n, k, batch, plan.Splits); break;
        }
    }

    private static void Run<TTile, TOps>(GpuDevice device, string key, TOps ops, int m, int n, int k, int batch, int splits)
        where TTile : struct, IGemmTile where TOps : struct, IGemmOperands
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
        var kernel = device.Kernel($"{key}-{typeof(TTile).Name}", acc => acc.LoadStreamKernel<TOps, Dims, ArrayView<float>>(Kernel<TTile, TOps>,
            new KernelSpecialization(t.Threads, t.MinGroupsPerSM)));
        var config = new KernelConfig(
            new Index3D((n + t.BN - 1) / t.BN, (m + t.BM - 1) / t.BM, batch * dims.Splits),
            new Index3D(t.Threads, 1, 1));
        kernel(config, ops, dims, partial);
        if (dims.Splits > 1)
        {
            var reduce = device.Kernel($"{key}-split-k-sum", acc =>
                acc.LoadAutoGroupedStreamKernel<Index1D, TOps, Dims, int, ArrayView<float>>(ReduceKernel<TOps>));
            int total = batch * m * n;
            reduce(total, ops, dims, total, partial);
        }
    }
}

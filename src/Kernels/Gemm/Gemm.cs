using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Gemm;

/// <summary>
/// Batched matrix product (BLAS sgemm with a column bias): C[b] = alpha op(A[b]) op(B[b]) + beta C[b]
/// (+ bias[j] on every row j-th column). Row-major; A is [M, K] ([K, M] when transposed) or
/// [batch, M, K], B likewise with [K, N] / [N, K]; a rank-2 operand with a rank-3 C is shared by all
/// items. Two variants of the same math: barrier-free 4x4 register tiles for ILGPU's CPU accelerator
/// and the shared-memory GEMM core (<see cref="GemmCore"/>) for GPUs.
/// </summary>
public static class Gemm
{
    /// <summary>
    /// The specification: one double-precision dot product per element. <paramref name="a"/> holds
    /// batch*m*k values, or m*k shared by every item (likewise <paramref name="b"/>); an empty
    /// <paramref name="biasPerColumn"/> means no bias. With beta = 0, C is not read.
    /// </summary>
    public static void Reference(ReadOnlySpan<float> a, bool transA, ReadOnlySpan<float> b, bool transB, Span<float> c,
        int batch, int m, int n, int k, float alpha = 1f, float beta = 0f, ReadOnlySpan<float> biasPerColumn = default)
    {
        if (c.Length != batch * m * n) throw new ArgumentException($"gemm reference: C holds {c.Length} values, expected {batch}x{m}x{n}");
        if (a.Length != m * k && a.Length != batch * m * k) throw new ArgumentException($"gemm reference: A holds {a.Length} values, expected {m}x{k} or {batch}x{m}x{k}");
        if (b.Length != k * n && b.Length != batch * k * n) throw new ArgumentException($"gemm reference: B holds {b.Length} values, expected {k}x{n} or {batch}x{k}x{n}");
        if (!biasPerColumn.IsEmpty && biasPerColumn.Length != n) throw new ArgumentException($"gemm reference: bias holds {biasPerColumn.Length} values, expected {n}");
        for (int item = 0; item < batch; item++)
        {
            int ao = a.Length == m * k ? 0 : item * m * k, bo = b.Length == k * n ? 0 : item * k * n;
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    double acc = 0;
                    for (int p = 0; p < k; p++)
                        acc += (double)a[ao + (transA ? p * m + i : i * k + p)] * b[bo + (transB ? j * k + p : p * n + j)];
                    int ci = (item * m + i) * n + j;
                    double v = alpha * acc + (beta != 0 ? (double)beta * c[ci] : 0) + (biasPerColumn.IsEmpty ? 0 : biasPerColumn[j]);
                    c[ci] = (float)v;
                }
        }
    }

    /// <summary>A strided GEMM problem: element (b, m, k) of A is A[i aBatch + g aGroup + m aM + k aK], and so
    /// on, where batch item b = g items + i (groups of items: several weight matrices over the same images, as
    /// an attention block's q, k and v projections; one group unless <see cref="Grouped"/> says otherwise);
    /// group g's C (C, C1 or C2) is dense [items, M, N]. The epilogue is (alpha acc + beta C (C unread when
    /// beta = 0) + bias[g biasGroup + n] (or + m with a per-row bias) + residual[same place as C]) outScale,
    /// then SiLU when asked.</summary>
    internal readonly struct Operands : IGemmOperands, GemmNormStats.IFinalValue
    {
        public readonly ArrayView<float> A, B, C, Bias, Residual, C1, C2;
        public readonly int ABatch, AM, AK, BBatch, BK, BN, M, N, HasBias;
        public readonly float Alpha, Beta;
        public readonly int Items, AGroup, BGroup, BiasGroup, BiasPerRow, HasResidual, Silu;
        public readonly float OutScale;

        public Operands(ArrayView<float> a, int aBatch, int aM, int aK, ArrayView<float> b, int bBatch, int bK, int bN,
            ArrayView<float> c, int m, int n, float alpha, float beta, ArrayView<float> bias, bool hasBias)
            : this(a, aBatch, aM, aK, b, bBatch, bK, bN, c, m, n, alpha, beta, bias, hasBias,
                int.MaxValue, 0, 0, 0, c, c, false, c, false, 1f, false)
        {
        }

        private Operands(ArrayView<float> a, int aBatch, int aM, int aK, ArrayView<float> b, int bBatch, int bK, int bN,
            ArrayView<float> c, int m, int n, float alpha, float beta, ArrayView<float> bias, bool hasBias,
            int items, int aGroup, int bGroup, int biasGroup, ArrayView<float> c1, ArrayView<float> c2,
            bool biasPerRow, ArrayView<float> residual, bool hasResidual, float outScale, bool silu)
        {
            A = a; B = b; C = c; Bias = bias; Residual = residual; C1 = c1; C2 = c2;
            ABatch = aBatch; AM = aM; AK = aK; BBatch = bBatch; BK = bK; BN = bN; M = m; N = n;
            HasBias = hasBias ? 1 : 0;
            Alpha = alpha; Beta = beta;
            Items = items; AGroup = aGroup; BGroup = bGroup; BiasGroup = biasGroup; BiasPerRow = biasPerRow ? 1 : 0;
            HasResidual = hasResidual ? 1 : 0; OutScale = outScale; Silu = silu ? 1 : 0;
        }

        /// <summary>The same problem with batch items in up to three groups of <paramref name="items"/>: group g of
        /// A, B and the bias start g aGroup, g bGroup and g biasGroup further, and writes C, c1 or c2 (beta must
        /// be 0: only C is read).</summary>
        public Operands Grouped(int items, int aGroup, int bGroup, int biasGroup, ArrayView<float> c1, ArrayView<float> c2) =>
            new(A, ABatch, AM, AK, B, BBatch, BK, BN, C, M, N, Alpha, Beta, Bias, HasBias != 0,
                items, aGroup, bGroup, biasGroup, c1, c2, BiasPerRow != 0, Residual, HasResidual != 0, OutScale, Silu != 0);

        /// <summary>The same problem with the bias added per row (m) instead of per column, a residual laid out
        /// as C added, and the sum scaled.</summary>
        public Operands WithEpilogue(bool biasPerRow, ArrayView<float> residual, bool hasResidual, float outScale) =>
            new(A, ABatch, AM, AK, B, BBatch, BK, BN, C, M, N, Alpha, Beta, Bias, HasBias != 0,
                Items, AGroup, BGroup, BiasGroup, C1, C2, biasPerRow, hasResidual ? residual : C, hasResidual, outScale, Silu != 0);

        /// <summary>The same problem with SiLU applied to each result as it is stored.</summary>
        public Operands WithSilu() =>
            new(A, ABatch, AM, AK, B, BBatch, BK, BN, C, M, N, Alpha, Beta, Bias, HasBias != 0,
                Items, AGroup, BGroup, BiasGroup, C1, C2, BiasPerRow != 0, Residual, HasResidual != 0, OutScale, true);

        /// <summary>Offsets of batch item b's A and B (its group's and its own).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public (int A, int B) ItemOffsets(int b)
        {
            int g = b / Items, i = b - g * Items;
            return (i * ABatch + g * AGroup, i * BBatch + g * BGroup);
        }

        public bool AContiguousInK => AK == 1;
        public bool BContiguousInN => BN == 1;
        public bool Im2Col => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GemmCursor RowA(int b, int m) => new() { P = ItemOffsets(b).A + m * AM };

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GemmCursor DepthA(int b, int k) => new() { P = k * AK };

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GemmCursor StepA(GemmCursor depth) => new() { P = depth.P + GemmCore.BK * AK };

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float LoadA(GemmCursor row, GemmCursor depth) => A[row.P + depth.P];

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GemmCursor ColumnB(int b, int n) => new() { P = ItemOffsets(b).B + n * BN };

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GemmCursor DepthB(int b, int k) => new() { P = k * BK };

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GemmCursor StepB(GemmCursor depth) => new() { P = depth.P + GemmCore.BK * BK };

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float LoadB(GemmCursor depth, GemmCursor column) => B[depth.P + column.P];

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Store(int b, int m, int n, float acc)
        {
            int g = b / Items, i = ((b - g * Items) * M + m) * N + n;
            float v = Final(b, m, n, acc);
            if (g == 0) C[i] = v;
            else if (g == 1) C1[i] = v;
            else C2[i] = v;
        }

        /// <summary>The value <see cref="Store"/> writes for the dot product <paramref name="acc"/> of row m and column n
        /// (read before the store: with beta it reads C).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float Final(int b, int m, int n, float acc)
        {
            int g = b / Items, i = ((b - g * Items) * M + m) * N + n;
            float v = Alpha * acc;
            if (Beta != 0) v += Beta * C[i];
            if (HasBias != 0) v += Bias[g * BiasGroup + (BiasPerRow != 0 ? m : n)];
            if (HasResidual != 0) v += Residual[i];
            v *= OutScale;
            if (Silu != 0) v = Activations.Silu.Apply(v);
            return v;
        }
    }

    /// <summary>
    /// CPU variant: thread tid computes the 4x4 tiles [tid chunk, (tid + 1) chunk) of the
    /// batch x ceil(M/4) x ceil(N/4) tiles, reading A and B straight from memory with running offsets.
    /// Rows and columns past the edge repeat the last one (computed, never stored), so the k loop has
    /// no branch. No barriers: on ILGPU's CPU accelerator each thread is an OS thread.
    /// </summary>
    internal static void RegisterTileKernel(Index1D tid, Operands o, int k, int batch, int chunk)
    {
        int m = o.M, n = o.N;
        int tilesN = (n + 3) / 4, perItem = (m + 3) / 4 * tilesN;
        int start = tid * chunk, end = Math.Min(batch * perItem, start + chunk);
        var a = o.A;
        var bm = o.B;
        int ak = o.AK, bk = o.BK;
        for (int t = start; t < end; t++)
        {
            int b = t / perItem, r = t - b * perItem, mt = r / tilesN;
            int i0 = mt * 4, j0 = (r - mt * tilesN) * 4;
            var (ab, bb) = o.ItemOffsets(b);
            int pa0 = ab + i0 * o.AM, pa1 = ab + Math.Min(i0 + 1, m - 1) * o.AM;
            int pa2 = ab + Math.Min(i0 + 2, m - 1) * o.AM, pa3 = ab + Math.Min(i0 + 3, m - 1) * o.AM;
            int pb0 = bb + j0 * o.BN, pb1 = bb + Math.Min(j0 + 1, n - 1) * o.BN;
            int pb2 = bb + Math.Min(j0 + 2, n - 1) * o.BN, pb3 = bb + Math.Min(j0 + 3, n - 1) * o.BN;
            float c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
            float c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;
            for (int p = 0; p < k; p++)
            {
                float a0 = a[pa0], a1 = a[pa1], a2 = a[pa2], a3 = a[pa3];
                float b0 = bm[pb0], b1 = bm[pb1], b2 = bm[pb2], b3 = bm[pb3];
                c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
                c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
                c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
                c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
                pa0 += ak; pa1 += ak; pa2 += ak; pa3 += ak;
                pb0 += bk; pb1 += bk; pb2 += bk; pb3 += bk;
            }
            StoreRow(o, b, i0, j0, c00, c01, c02, c03);
            StoreRow(o, b, i0 + 1, j0, c10, c11, c12, c13);
            StoreRow(o, b, i0 + 2, j0, c20, c21, c22, c23);
            StoreRow(o, b, i0 + 3, j0, c30, c31, c32, c33);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow(Operands o, int b, int i, int j, float v0, float v1, float v2, float v3)
    {
        if (i >= o.M) return;
        o.Store(b, i, j, v0);
        if (j + 1 < o.N) o.Store(b, i, j + 1, v1);
        if (j + 2 < o.N) o.Store(b, i, j + 2, v2);
        if (j + 3 < o.N) o.Store(b, i, j + 3, v3);
    }

    /// <summary>C = alpha op(A) op(B) + beta C (+ bias per column) on the device of <paramref name="c"/>.</summary>
    /// <exception cref="ArgumentException">Ranks or dimensions do not fit together (the message names the shapes).</exception>
    public static void Run(Tensor a, bool transA, Tensor b, bool transB, Tensor c, float alpha = 1f, float beta = 0f, Tensor? biasPerColumn = null) =>
        Run(a, transA, b, transB, c, alpha, beta, biasPerColumn, GemmVariant.Auto);

    internal static void Run(Tensor a, bool transA, Tensor b, bool transB, Tensor c, float alpha, float beta, Tensor? biasPerColumn, GemmVariant variant)
    {
        const string op = "gemm";
        Shape.RequireSameDevice(op, a, c);
        Shape.RequireSameDevice(op, b, c);
        if (c.Rank is not (2 or 3))
            throw new ArgumentException($"{op}: expected C of rank 2 or 3 but got shape {Shape.Format(c.Shape)}");
        int batch = c.Rank == 3 ? c.Shape[0] : 1, m = c.Shape[^2], n = c.Shape[^1];
        var (am, ak, aBatched) = Operand(op, "A", a, transA, c);
        var (bk, bn, bBatched) = Operand(op, "B", b, transB, c);
        if (ak != bk)
            throw new ArgumentException(
                $"{op}: {Describe("A", a, transA)} is {am}x{ak} but {Describe("B", b, transB)} is {bk}x{bn}; the inner dimensions must match");
        if (am != m || bn != n)
            throw new ArgumentException(
                $"{op}: {Describe("A", a, transA)} times {Describe("B", b, transB)} is {am}x{bn}, so expected C of shape " +
                $"{Shape.Format(c.Rank == 3 ? [batch, am, bn] : [am, bn])} but got {Shape.Format(c.Shape)}");
        if (biasPerColumn is not null)
        {
            Shape.Require(op, biasPerColumn, "bias", n);
            Shape.RequireSameDevice(op, biasPerColumn, c);
        }
        var ops = new Operands(
            a.View, aBatched ? m * ak : 0, transA ? 1 : ak, transA ? m : 1,
            b.View, bBatched ? ak * n : 0, transB ? 1 : n, transB ? ak : 1,
            c.View, m, n, alpha, beta, (biasPerColumn ?? c).View, biasPerColumn is not null);
        Launch(c.Device, ops, ak, batch, variant);
    }

    /// <summary>op(X)'s (rows, cols) and whether X has its own batch dimension.</summary>
    private static (int Rows, int Cols, bool Batched) Operand(string op, string name, Tensor x, bool trans, Tensor c)
    {
        bool batched = x.Rank == 3;
        if (x.Rank is not (2 or 3) || (batched && (c.Rank != 3 || x.Shape[0] != c.Shape[0])))
            throw new ArgumentException(
                $"{op}: {name} has shape {Shape.Format(x.Shape)} but C has shape {Shape.Format(c.Shape)}; " +
                $"{name} must be rank 2 (shared) or rank 3 with C's batch size");
        int r = x.Shape[^2], q = x.Shape[^1];
        return trans ? (q, r, batched) : (r, q, batched);
    }

    private static string Describe(string name, Tensor x, bool trans) =>
        $"{(trans ? "transposed " : "")}{name} {Shape.Format(x.Shape)}";

    /// <summary>Runs a checked strided problem with the chosen variant (shared by <see cref="Linear"/>).</summary>
    internal static void Launch(GpuDevice device, in Operands ops, int k, int batch, GemmVariant variant)
    {
        if (ops.M == 0 || ops.N == 0 || batch == 0) return;
        if (UsesCore(device, variant))
        {
            GemmCore.Launch(device, "gemm-core", ops, ops.M, ops.N, k, batch, variant);
            return;
        }
        long tiles = (long)batch * ((ops.M + 3) / 4) * ((ops.N + 3) / 4);
        int threads = (int)Math.Min(tiles, RegisterTileThreads);
        int chunk = (int)((tiles + threads - 1) / threads);
        threads = (int)((tiles + chunk - 1) / chunk);
        var kernel = device.Kernel("gemm-register-tile", static acc =>
            acc.LoadAutoGroupedStreamKernel<Index1D, Operands, int, int, int>(RegisterTileKernel));
        kernel(threads, ops, k, batch, chunk);
    }

    /// <summary>True when <paramref name="variant"/> means the GEMM core on <paramref name="device"/> (Auto: any device
    /// but ILGPU's CPU accelerator, whose barrier-free register tiles are 1000x faster there, unless that accelerator was
    /// opened to take the GPU's paths: <see cref="GpuDevice.UsesGpuKernels"/>).</summary>
    internal static bool UsesCore(GpuDevice device, GemmVariant variant) =>
        variant is not (GemmVariant.Auto or GemmVariant.RegisterTile) || (variant == GemmVariant.Auto && device.UsesGpuKernels);

    /// <summary>Threads a CPU launch uses at most (a few per core keeps the cores busy).</summary>
    internal const int RegisterTileThreads = 64;
}

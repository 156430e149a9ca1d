using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;

namespace PosteriorGpu.Kernels.Gemm;

/// <summary>
/// The shared-memory tiled GEMM core (the GPU variant) that GEMM, Linear and Conv2d share through
/// <see cref="IGemmOperands"/>. A group of ThreadsX x ThreadsY threads computes a
/// (4 ThreadsY) x (4 ThreadsX) block of C: per step of <see cref="BK"/> along k the group stages the A and
/// B slabs in shared memory (loads running along whichever index is contiguous, so they coalesce),
/// then each thread accumulates a 4x4 register tile whose rows and columns are strided by the thread
/// counts (conflict-free shared reads, coalesced stores). 16x16 threads (64x64 blocks) on GPUs;
/// 4x4 threads on ILGPU's CPU accelerator, which allows only 16 threads per group.
/// </summary>
internal static class TiledGemm
{
    /// <summary>Depth of one k step.</summary>
    public const int BK = 16;

    /// <summary>Largest block edge (4 x 16 threads).</summary>
    public const int MaxBlock = 64;

    /// <summary>Problem size and thread layout of one launch.</summary>
    internal struct Dims
    {
        public int M, N, K, ThreadsX, ThreadsY;
    }

    internal static void Kernel<TOps>(TOps ops, Dims d) where TOps : struct, IGemmOperands
    {
        // Rows padded by one float so that loads running along k write distinct banks.
        var sa = SharedMemory.Allocate<float>(BK * (MaxBlock + 1));
        var sb = SharedMemory.Allocate<float>(BK * (MaxBlock + 1));
        int tx = d.ThreadsX, ty = d.ThreadsY, threads = tx * ty;
        int tid = Group.IdxX;
        int col = tid % tx, row = tid / tx;
        int bm = 4 * ty, bn = 4 * tx, lda = bm + 1, ldb = bn + 1;
        int m0 = Grid.IdxY * bm, n0 = Grid.IdxX * bn, b = Grid.IdxZ;
        bool aAlongK = ops.AContiguousInK, bAlongN = ops.BContiguousInN;

        float c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
        float c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;

        for (int k0 = 0; k0 < d.K; k0 += BK)
        {
            if (aAlongK)
            {
                int kk = tid % BK, k = k0 + kk;
                for (int mm = tid / BK; mm < bm; mm += threads / BK)
                {
                    int m = m0 + mm;
                    float v = 0;
                    if (m < d.M && k < d.K) v = ops.LoadA(b, m, k);
                    sa[kk * lda + mm] = v;
                }
            }
            else
            {
                int mm = tid % bm, m = m0 + mm;
                for (int kk = tid / bm; kk < BK; kk += threads / bm)
                {
                    int k = k0 + kk;
                    float v = 0;
                    if (m < d.M && k < d.K) v = ops.LoadA(b, m, k);
                    sa[kk * lda + mm] = v;
                }
            }
            if (bAlongN)
            {
                int nn = tid % bn, n = n0 + nn;
                for (int kk = tid / bn; kk < BK; kk += threads / bn)
                {
                    int k = k0 + kk;
                    float v = 0;
                    if (n < d.N && k < d.K) v = ops.LoadB(b, k, n);
                    sb[kk * ldb + nn] = v;
                }
            }
            else
            {
                int kk = tid % BK, k = k0 + kk;
                for (int nn = tid / BK; nn < bn; nn += threads / BK)
                {
                    int n = n0 + nn;
                    float v = 0;
                    if (n < d.N && k < d.K) v = ops.LoadB(b, k, n);
                    sb[kk * ldb + nn] = v;
                }
            }
            Group.Barrier();

            for (int kk = 0; kk < BK; kk++)
            {
                int ra = kk * lda + row, rb = kk * ldb + col;
                float a0 = sa[ra], a1 = sa[ra + ty], a2 = sa[ra + 2 * ty], a3 = sa[ra + 3 * ty];
                float b0 = sb[rb], b1 = sb[rb + tx], b2 = sb[rb + 2 * tx], b3 = sb[rb + 3 * tx];
                c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
                c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
                c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
                c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
            }
            Group.Barrier();
        }

        int n00 = n0 + col;
        StoreRow(ops, d, b, m0 + row, n00, tx, c00, c01, c02, c03);
        StoreRow(ops, d, b, m0 + row + ty, n00, tx, c10, c11, c12, c13);
        StoreRow(ops, d, b, m0 + row + 2 * ty, n00, tx, c20, c21, c22, c23);
        StoreRow(ops, d, b, m0 + row + 3 * ty, n00, tx, c30, c31, c32, c33);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow<TOps>(TOps ops, Dims d, int b, int m, int n, int step, float v0, float v1, float v2, float v3)
        where TOps : struct, IGemmOperands
    {
        if (m >= d.M) return;
        if (n < d.N) ops.Store(b, m, n, v0);
        if (n + step < d.N) ops.Store(b, m, n + step, v1);
        if (n + 2 * step < d.N) ops.Store(b, m, n + 2 * step, v2);
        if (n + 3 * step < d.N) ops.Store(b, m, n + 3 * step, v3);
    }

    /// <summary>
    /// Launches the tiled kernel for a batch of M x N x K problems (the kernel is loaded once per
    /// operand type and cached under <paramref name="key"/>).
    /// </summary>
    public static void Launch<TOps>(GpuDevice device, string key, TOps ops, int m, int n, int k, int batch)
        where TOps : struct, IGemmOperands
    {
        if (m == 0 || n == 0 || batch == 0) return;
        // 16x16 threads where a group may hold 256 (every CUDA/OpenCL GPU); 4x4 on the CPU accelerator.
        int threadsPerSide = device.Accelerator.MaxNumThreadsPerGroup >= 256 ? 16 : 4;
        var dims = new Dims { M = m, N = n, K = k, ThreadsX = threadsPerSide, ThreadsY = threadsPerSide };
        int block = 4 * threadsPerSide;
        var kernel = device.Kernel(key, acc => acc.LoadStreamKernel<TOps, Dims>(Kernel<TOps>));
        var config = new KernelConfig(
            new Index3D((n + block - 1) / block, (m + block - 1) / block, batch),
            new Index3D(threadsPerSide * threadsPerSide, 1, 1));
        kernel(config, ops, dims);
    }
}

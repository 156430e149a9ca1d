namespace PosteriorGpu.Kernels.Gemm;

/// <summary>
/// What the GEMM core needs to know about a problem C[b] = A[b] B[b] (b: the grid's batch items; a
/// convolution folds its images into N instead): how to reach A(b, m, k) and B(b, k, n) and what to do
/// with a finished C(b, m, n). A thread opens a cursor once per staged element (division allowed there),
/// then moves it <see cref="GemmCore.BK"/> along k per step without division or modulo (the im2col
/// coordinates of a convolution carry like digits). GEMM, Linear and the convolutions implement it as
/// blittable structs, and ILGPU specialises the generic kernels for each, so the calls inline.
/// </summary>
/// <remarks>The core only loads through cursors opened at m &lt; M (n &lt; N) and k &lt; K.</remarks>
internal interface IGemmOperands
{
    /// <summary>True when A(b, m, k) and A(b, m, k + 1) are neighbours in memory (loads then run along k).</summary>
    bool AContiguousInK { get; }

    /// <summary>True when B(b, k, n) and B(b, k, n + 1) are neighbours in memory (loads then run along n).</summary>
    bool BContiguousInN { get; }

    /// <summary>A cursor at A(b, m, k).</summary>
    GemmCursor OpenA(int b, int m, int k);

    /// <summary>The cursor <see cref="GemmCore.BK"/> further along k.</summary>
    GemmCursor StepA(GemmCursor c);

    /// <summary>The element of A under the cursor.</summary>
    float LoadA(GemmCursor c);

    /// <summary>A cursor at B(b, k, n).</summary>
    GemmCursor OpenB(int b, int k, int n);

    /// <summary>The cursor <see cref="GemmCore.BK"/> further along k.</summary>
    GemmCursor StepB(GemmCursor c);

    /// <summary>The element of B under the cursor.</summary>
    float LoadB(GemmCursor c);

    /// <summary>Writes the finished dot product of row m and column n (the epilogue: scaling, bias, ...).</summary>
    void Store(int b, int m, int n, float acc);
}

/// <summary>Which implementation of a GEMM-shaped launcher runs (tests and benchmarks pin one).</summary>
internal enum GemmVariant
{
    /// <summary>Barrier-free register tiles on ILGPU's CPU accelerator, <see cref="GemmCore"/> elsewhere.</summary>
    Auto,
    /// <summary>Barrier-free: each thread computes a 4x4 register tile straight from global memory.</summary>
    RegisterTile,
    /// <summary><see cref="GemmCore"/> with the tile and split-K chosen by <see cref="GemmCore.Choose"/>.</summary>
    Tiled,
    /// <summary><see cref="GemmCore"/> with 128x128 tiles, no split.</summary>
    Tile128,
    /// <summary><see cref="GemmCore"/> with 64x64 tiles, no split.</summary>
    Tile64,
    /// <summary><see cref="GemmCore"/> with 32x32 tiles, no split.</summary>
    Tile32,
    /// <summary><see cref="GemmCore"/> with 32x32 tiles and k split in three (the deterministic reduction).</summary>
    Tile32SplitK,
}

namespace PosteriorGpu.Kernels.Gemm;

/// <summary>
/// What the GEMM core needs to know about a problem C[b] = A[b] B[b] (b: the grid's batch items; a
/// convolution folds its images into N instead): how to reach A(b, m, k) and B(b, k, n) and what to do
/// with a finished C(b, m, n). An element's address is split in two parts, as CUTLASS's implicit-GEMM
/// iterators do: a part that depends only on m (or n), opened once per staged row (column) and fixed for
/// the whole loop, and a part that depends only on k, which every thread keeps once (the four elements a
/// thread stages per k step lie on one k) and moves <see cref="GemmCore.BK"/> along k per step without
/// division or modulo (the im2col coordinates of a convolution carry like digits). So a convolution
/// decodes k once per thread and step, not once per element. GEMM, Linear and the convolutions implement
/// it as blittable structs, and ILGPU specialises the generic kernels for each, so the calls inline.
/// </summary>
/// <remarks>The core opens row parts only at m &lt; M (columns at n &lt; N) and loads only at k &lt; K.</remarks>
internal interface IGemmOperands
{
    /// <summary>True when A(b, m, k) and A(b, m, k + 1) are neighbours in memory (a warp's loads then run
    /// along k; otherwise along m).</summary>
    bool AContiguousInK { get; }

    /// <summary>True when B(b, k, n) and B(b, k, n + 1) are neighbours in memory (a warp's loads then run
    /// along n; otherwise along k).</summary>
    bool BContiguousInN { get; }

    /// <summary>True when an operand is an im2col view of a convolution's input (its loads cost a padding test
    /// each): <see cref="GemmCore"/> then uses 64x32 tiles, not 32x32, for small problems.</summary>
    bool Im2Col { get; }

    /// <summary>The part of A(b, m, k)'s address that depends on row m.</summary>
    GemmCursor RowA(int b, int m);

    /// <summary>The part of A(b, m, k)'s address that depends on k.</summary>
    GemmCursor DepthA(int b, int k);

    /// <summary>The depth part <see cref="GemmCore.BK"/> further along k.</summary>
    GemmCursor StepA(GemmCursor depth);

    /// <summary>The element of A at a row part and a depth part.</summary>
    float LoadA(GemmCursor row, GemmCursor depth);

    /// <summary>The part of B(b, k, n)'s address that depends on column n.</summary>
    GemmCursor ColumnB(int b, int n);

    /// <summary>The part of B(b, k, n)'s address that depends on k.</summary>
    GemmCursor DepthB(int b, int k);

    /// <summary>The depth part <see cref="GemmCore.BK"/> further along k.</summary>
    GemmCursor StepB(GemmCursor depth);

    /// <summary>The element of B at a depth part and a column part.</summary>
    float LoadB(GemmCursor depth, GemmCursor column);

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
    /// <summary><see cref="GemmCore"/> with 64x32 tiles, no split.</summary>
    Tile64x32,
    /// <summary><see cref="GemmCore"/> with 64x32 tiles and k split in three.</summary>
    Tile64x32SplitK,
    /// <summary><see cref="GemmCore"/> with 32x32 tiles, no split.</summary>
    Tile32,
    /// <summary><see cref="GemmCore"/> with 32x32 tiles and k split in three (the deterministic reduction).</summary>
    Tile32SplitK,
}

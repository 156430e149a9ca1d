namespace PosteriorGpu.Kernels.Gemm;

/// <summary>
/// What a GEMM-shaped kernel needs to know about a problem C[b] = A[b] * B[b]: how to read A(b, m, k)
/// and B(b, k, n) and what to do with a finished C(b, m, n). GEMM, Linear and the implicit-GEMM
/// convolution implement it as blittable structs, and ILGPU specialises the generic kernel
/// <see cref="TiledGemm.Kernel{TOps}"/> for each, so the calls inline like hand-written indexing.
/// </summary>
/// <remarks>Callers only ask for m &lt; M, n &lt; N and k &lt; K.</remarks>
internal interface IGemmOperands
{
    /// <summary>True when A(b, m, k) and A(b, m, k + 1) are neighbours in memory (loads then run along k).</summary>
    bool AContiguousInK { get; }

    /// <summary>True when B(b, k, n) and B(b, k, n + 1) are neighbours in memory (loads then run along n).</summary>
    bool BContiguousInN { get; }

    /// <summary>Element (m, k) of A for batch item b.</summary>
    float LoadA(int b, int m, int k);

    /// <summary>Element (k, n) of B for batch item b.</summary>
    float LoadB(int b, int k, int n);

    /// <summary>Writes the finished dot product of row m and column n (the epilogue: scaling, bias, ...).</summary>
    void Store(int b, int m, int n, float acc);
}

/// <summary>Which of the two implementations of a GEMM-shaped launcher runs.</summary>
internal enum GemmVariant
{
    /// <summary>Barrier-free register tiles on ILGPU's CPU accelerator, shared-memory tiles elsewhere.</summary>
    Auto,
    /// <summary>Barrier-free: each thread computes a 4x4 register tile straight from global memory.</summary>
    RegisterTile,
    /// <summary>Shared-memory tiles with group barriers (the GPU variant).</summary>
    Tiled,
}

using ILGPU.Runtime;

namespace PosteriorGpu.Kernels.Gemm;

/// <summary>
/// A block tile of <see cref="GemmCore"/>, fixed at compile time: ILGPU specialises the kernel for each
/// implementing struct, so the properties fold to constants (shared-memory extents, unrolled loops,
/// constant offsets). Every tile has K depth <see cref="GemmCore.BK"/>, and each thread stages four or eight
/// elements of A and of B per k step (BM BK / Threads and BN BK / Threads).
/// </summary>
internal interface IGemmTile
{
    /// <summary>Rows of C per block.</summary>
    int BM { get; }

    /// <summary>Columns of C per block.</summary>
    int BN { get; }

    /// <summary>Rows per thread: 4 or 8 (two groups of 4, BM/2 apart, so shared reads are 16-byte vectors).</summary>
    int TM { get; }

    /// <summary>Columns per thread: 4 or 8 (likewise).</summary>
    int TN { get; }

    /// <summary>Threads per group: (BM / TM) (BN / TN).</summary>
    int Threads { get; }

    /// <summary>Groups that must fit on one SM at once (the kernel is loaded with this specialization, so ptxas
    /// caps the registers at 64K / (Threads x this)). 1 for every tile: kernel-report measured 2 (128
    /// registers) on 128x128 spilling 1.1 KB per thread, and 4 on 64x64 spilling 0.3 KB.</summary>
    int MinGroupsPerSM { get; }
}

/// <summary>Helpers over the tile configurations.</summary>
internal static class GemmTiles
{
    /// <summary>How a kernel on <typeparamref name="TTile"/> is loaded: its threads and the groups that must fit on an SM
    /// (ptxas caps the registers accordingly).</summary>
    internal static KernelSpecialization Specialization<TTile>() where TTile : struct, IGemmTile =>
        new(default(TTile).Threads, default(TTile).MinGroupsPerSM);
}

/// <summary>128x128 blocks, 8x8 accumulators per thread, 256 threads: the large-problem tile (CUTLASS's SGEMM shape).</summary>
internal readonly struct Tile128x128 : IGemmTile
{
    /// <inheritdoc/>
    public int BM => 128;
    /// <inheritdoc/>
    public int BN => 128;
    /// <inheritdoc/>
    public int TM => 8;
    /// <inheritdoc/>
    public int TN => 8;
    /// <inheritdoc/>
    public int Threads => 256;
    /// <inheritdoc/>
    public int MinGroupsPerSM => 1;
}

/// <summary>64x64 blocks, 8x4 accumulators per thread, 128 threads: four times the blocks of 128x128.</summary>
internal readonly struct Tile64x64 : IGemmTile
{
    /// <inheritdoc/>
    public int BM => 64;
    /// <inheritdoc/>
    public int BN => 64;
    /// <inheritdoc/>
    public int TM => 8;
    /// <inheritdoc/>
    public int TN => 4;
    /// <inheritdoc/>
    public int Threads => 128;
    /// <inheritdoc/>
    public int MinGroupsPerSM => 1;
}

/// <summary>64x32 blocks (64 rows of A, 32 columns of B), 8x4 accumulators per thread, 64 threads: the
/// convolutions' small-problem tile (each thread stages 8 weights, which are cheap, and 4 im2col elements).</summary>
internal readonly struct Tile64x32 : IGemmTile
{
    /// <inheritdoc/>
    public int BM => 64;
    /// <inheritdoc/>
    public int BN => 32;
    /// <inheritdoc/>
    public int TM => 8;
    /// <inheritdoc/>
    public int TN => 4;
    /// <inheritdoc/>
    public int Threads => 64;
    /// <inheritdoc/>
    public int MinGroupsPerSM => 1;
}

/// <summary>32x32 blocks, 4x4 accumulators per thread, 64 threads: small GEMM and Linear problems (1-row products).</summary>
internal readonly struct Tile32x32 : IGemmTile
{
    /// <inheritdoc/>
    public int BM => 32;
    /// <inheritdoc/>
    public int BN => 32;
    /// <inheritdoc/>
    public int TM => 4;
    /// <inheritdoc/>
    public int TN => 4;
    /// <inheritdoc/>
    public int Threads => 64;
    /// <inheritdoc/>
    public int MinGroupsPerSM => 1;
}

/// <summary>Four floats loaded or stored as one 16-byte vector (ld.shared.v4.f32).</summary>
internal struct Float4
{
    /// <summary>Components.</summary>
    public float X, Y, Z, W;
}

/// <summary>Where an operand element lives, carried along k by <see cref="IGemmOperands"/> without division
/// (each operand gives its fields its own meaning: a flat offset, or image base and im2col coordinates).</summary>
internal struct GemmCursor
{
    /// <summary>Operand-defined state.</summary>
    public int P, Q, R, S, T;
}

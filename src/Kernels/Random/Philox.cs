using ILGPU.Runtime.Cuda;

namespace PosteriorGpu.Kernels.Random;

/// <summary>
/// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011): a
/// counter-based generator, i.e. a pure function from (key, counter) to four 32-bit words. Kernels
/// call it with key = seed and counter = (element / 4, stream, step), so every random number is a
/// function of (seed, stream, step, element index) alone: the same on every device and for every
/// launch configuration, and never written to memory just to be read once.
/// </summary>
public static class Philox
{
    private const uint M0 = 0xD2511F53, M1 = 0xCD9E8D57;
    private const uint W0 = 0x9E3779B9, W1 = 0xBB67AE85;

    /// <summary>The four output words for one (counter, key); the 10-round bijection.</summary>
    public static void Block(uint c0, uint c1, uint c2, uint c3, uint k0, uint k1,
        out uint r0, out uint r1, out uint r2, out uint r3)
    {
        // The ten rounds written out (ILGPU does not unroll the loop): no loop counter or branch per round.
        Round(ref c0, ref c1, ref c2, ref c3, k0, k1);
        Round(ref c0, ref c1, ref c2, ref c3, k0 + W0, k1 + W1);
        Round(ref c0, ref c1, ref c2, ref c3, k0 + unchecked(2 * W0), k1 + unchecked(2 * W1));
        Round(ref c0, ref c1, ref c2, ref c3, k0 + unchecked(3 * W0), k1 + unchecked(3 * W1));
        Round(ref c0, ref c1, ref c2, ref c3, k0 + unchecked(4 * W0), k1 + unchecked(4 * W1));
        Round(ref c0, ref c1, ref c2, ref c3, k0 + unchecked(5 * W0), k1 + unchecked(5 * W1));
        Round(ref c0, ref c1, ref c2, ref c3, k0 + unchecked(6 * W0), k1 + unchecked(6 * W1));
        Round(ref c0, ref c1, ref c2, ref c3, k0 + unchecked(7 * W0), k1 + unchecked(7 * W1));
        Round(ref c0, ref c1, ref c2, ref c3, k0 + unchecked(8 * W0), k1 + unchecked(8 * W1));
        Round(ref c0, ref c1, ref c2, ref c3, k0 + unchecked(9 * W0), k1 + unchecked(9 * W1));
        r0 = c0;
        r1 = c1;
        r2 = c2;
        r3 = c3;
    }

    /// <summary>One Philox round with the round's key (the key bumped by the Weyl constants once per round).</summary>
    private static void Round(ref uint c0, ref uint c1, ref uint c2, ref uint c3, uint k0, uint k1)
    {
        ulong p0 = (ulong)M0 * c0;
        ulong p1 = (ulong)M1 * c2;
        uint hi0 = (uint)(p0 >> 32), lo0 = (uint)p0;
        uint hi1 = (uint)(p1 >> 32), lo1 = (uint)p1;
        uint n0 = hi1 ^ c1 ^ k0;
        uint n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
    }

    /// <summary>Maps a word to a float in (0, 1]: 24 random bits, never 0 (safe for log).</summary>
    public static float ToUnitOpenZero(uint u) => ((u >> 8) + 1) * (1.0f / 16777216.0f);

    /// <summary>Maps a word to a float in [0, 1).</summary>
    public static float ToUnit(uint u) => (u >> 8) * (1.0f / 16777216.0f);

    /// <summary>A standard normal number for element <paramref name="index"/> of draw
    /// (<paramref name="seed"/>, <paramref name="stream"/>, <paramref name="step"/>): Box-Muller on
    /// the block of index / 4, taking cos or sin of one of its two pairs by index % 4.</summary>
    public static float Normal(ulong seed, uint stream, ulong step, long index)
    {
        Block((uint)(index >> 2), (uint)((ulong)index >> 34) ^ stream, (uint)step, (uint)(step >> 32),
            (uint)seed, (uint)(seed >> 32), out uint r0, out uint r1, out uint r2, out uint r3);
        int j = (int)(index & 3);
        uint a = j < 2 ? r0 : r2;
        uint b = j < 2 ? r1 : r3;
        float radius = MathF.Sqrt(-2.0f * MathF.Log(ToUnitOpenZero(a)));
        float angle = 6.28318530717958647692f * ToUnit(b);
        return (j & 1) == 0 ? radius * MathF.Cos(angle) : radius * MathF.Sin(angle);
    }

    /// <summary>The four standard normals of Philox block <paramref name="quad"/> (elements 4 quad .. 4 quad + 3 of the draw),
    /// bitwise <see cref="Normal"/> of each: one block and two Box-Muller pairs serve four elements, where calling
    /// <see cref="Normal"/> per element computes the block four times and a pair twice.</summary>
    public static void Normal4(ulong seed, uint stream, ulong step, long quad, out float n0, out float n1, out float n2, out float n3)
    {
        // The counter of Normal's block for index 4 quad, without the round trip through the index: (index >> 2) is
        // quad's low word and (ulong)index >> 34 its bits 32..61.
        Block((uint)quad, ((uint)((ulong)quad >> 32) & 0x3FFFFFFFu) ^ stream, (uint)step, (uint)(step >> 32),
            (uint)seed, (uint)(seed >> 32), out uint r0, out uint r1, out uint r2, out uint r3);
        BoxMuller4(r0, r1, r2, r3, out n0, out n1, out n2, out n3);
    }

    /// <summary>Box-Muller on a block's two pairs: (r0, r1) gives n0 (cos) and n1 (sin), (r2, r3) gives n2 and n3.</summary>
    public static void BoxMuller4(uint r0, uint r1, uint r2, uint r3, out float n0, out float n1, out float n2, out float n3)
    {
        float radius = Radius(r0);
        float angle = 6.28318530717958647692f * ToUnit(r1);
        n0 = radius * MathF.Cos(angle);
        n1 = radius * MathF.Sin(angle);
        radius = Radius(r2);
        angle = 6.28318530717958647692f * ToUnit(r3);
        n2 = radius * MathF.Cos(angle);
        n3 = radius * MathF.Sin(angle);
    }

    /// <summary>Box-Muller's radius sqrt(-2 ln u). On CUDA, ILGPU's fast-math ln is lg2.approx(u) * (float)ln 2, and
    /// (a * c) * -2 is bitwise a * (-2 c) (scaling by 2 is exact; lg2 of u in (0, 1] is 0 or a normal number), so the
    /// -2 folds into the constant there: the same bits with one multiply fewer. Elsewhere the plain expression.</summary>
    private static float Radius(uint u)
    {
        if (CudaAsm.IsSupported) return MathF.Sqrt(ILGPU.Algorithms.XMath.Log2(ToUnitOpenZero(u)) * MinusTwoLn2);
        return MathF.Sqrt(-2.0f * MathF.Log(ToUnitOpenZero(u)));
    }

    private const float MinusTwoLn2 = -2.0f * 0.693147182f;

    /// <summary>A uniform number in [0, 1) for element <paramref name="index"/> of draw
    /// (<paramref name="seed"/>, <paramref name="stream"/>, <paramref name="step"/>).</summary>
    public static float Uniform(ulong seed, uint stream, ulong step, long index)
    {
        // A different stream tag than Normal's so uniforms and normals of one draw are independent.
        Block((uint)(index >> 2), (uint)((ulong)index >> 34) ^ stream ^ 0x55555555u, (uint)step, (uint)(step >> 32),
            (uint)seed, (uint)(seed >> 32), out uint r0, out uint r1, out uint r2, out uint r3);
        int j = (int)(index & 3);
        uint u = j == 0 ? r0 : j == 1 ? r1 : j == 2 ? r2 : r3;
        return ToUnit(u);
    }
}

/// <summary>Identifies one draw of random numbers: a seed, a stream (what the numbers are for), a
/// step counter, and an element offset. Passed by value into kernels. The offset makes noise a
/// function of a sample's global index rather than its position in a batch: a batch that starts at
/// sample s of a run uses Offset = s * (elements per sample), so sample i gets the same noise
/// whether it is drawn alone or among 64.</summary>
public readonly record struct RandomDraw(ulong Seed, uint Stream, ulong Step, long Offset = 0)
{
    /// <summary>The standard normal number of element <paramref name="index"/> (plus <see cref="Offset"/>).</summary>
    public float Normal(long index) => Philox.Normal(Seed, Stream, Step, index + Offset);

    /// <summary>The uniform [0, 1) number of element <paramref name="index"/> (plus <see cref="Offset"/>).</summary>
    public float Uniform(long index) => Philox.Uniform(Seed, Stream, Step, index + Offset);

    /// <summary>Philox blocks covering elements [0, <paramref name="total"/>) of this draw: element i is lane
    /// (i + Offset) % 4 of block (i + Offset) / 4, so a fused kernel that takes one block per thread iteration
    /// (<see cref="NormalQuad"/>) draws exactly the numbers <see cref="Normal"/> gives.</summary>
    public int Quads(int total) => total <= 0 ? 0 : (int)(((Offset & 3) + total + 3) >> 2);

    /// <summary>The element (local index, before <see cref="Offset"/>) in lane 0 of quad <paramref name="quad"/>; negative
    /// for the first quad when Offset is not a multiple of 4 (those lanes lie before the range).</summary>
    public int QuadStart(int quad) => 4 * quad - (int)(Offset & 3);

    /// <summary>The four normals of quad <paramref name="quad"/> (of <see cref="Quads"/>), elements
    /// <see cref="QuadStart"/> + 0..3: bitwise <see cref="Normal"/> of each.</summary>
    public void NormalQuad(int quad, out float n0, out float n1, out float n2, out float n3) =>
        Philox.Normal4(Seed, Stream, Step, (Offset >> 2) + quad, out n0, out n1, out n2, out n3);

    /// <summary>This draw for a batch whose first item is sample <paramref name="firstSample"/> of the run.</summary>
    public RandomDraw ForBatch(long firstSample, int elementsPerSample) => this with { Offset = firstSample * elementsPerSample };
}

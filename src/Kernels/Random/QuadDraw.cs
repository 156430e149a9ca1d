namespace PosteriorGpu.Kernels.Random;

/// <summary>
/// A <see cref="RandomDraw"/> as a fused kernel consumes it: one Philox block per quad of 4 elements, its words split
/// on the host (no 64-bit shifts in the kernel). Element i of the range is lane
/// (i + Offset) % 4 of quad (i + Offset) / 4, numbered locally from the quad holding element 0; every normal is bitwise
/// <see cref="RandomDraw.Normal"/> of its element.
/// </summary>
public readonly struct QuadDraw
{
    /// <summary>The seed's low and high words (the key).</summary>
    public readonly uint SeedLo, SeedHi;
    /// <summary>Absolute Philox quad of local quad 0: Offset / 4.</summary>
    public readonly long QuadBase;
    /// <summary>Offset % 4: lanes of local quad 0 that lie before element 0.</summary>
    public readonly int Head;
    /// <summary>The stream (the counter's second word is the quad's high bits xor it).</summary>
    public readonly uint Stream;
    /// <summary>The step's low and high words (the counter's third and fourth words).</summary>
    public readonly uint StepLo, StepHi;

    /// <summary>The kernel form of <paramref name="draw"/>.</summary>
    public QuadDraw(RandomDraw draw)
    {
        SeedLo = (uint)draw.Seed;
        SeedHi = (uint)(draw.Seed >> 32);
        QuadBase = draw.Offset >> 2;
        Head = (int)(draw.Offset & 3);
        Stream = draw.Stream;
        StepLo = (uint)draw.Step;
        StepHi = (uint)(draw.Step >> 32);
    }

    private QuadDraw(QuadDraw d, ulong step)
    {
        (SeedLo, SeedHi, QuadBase, Head, Stream) = (d.SeedLo, d.SeedHi, d.QuadBase, d.Head, d.Stream);
        StepLo = (uint)step;
        StepHi = (uint)(step >> 32);
    }

    /// <summary>This draw <paramref name="steps"/> steps later (the step word plus <paramref name="steps"/>): in a kernel, what
    /// <c>new QuadDraw(draw with { Step = draw.Step + steps })</c> gives on the host, for steps counted on the device.</summary>
    public QuadDraw Later(uint steps) => new(this, ((ulong)StepHi << 32 | StepLo) + steps);

    /// <summary>The element (local index) in lane 0 of local quad <paramref name="quad"/> (negative for quad 0 when Head > 0).</summary>
    public int QuadStart(int quad) => 4 * quad - Head;

    /// <summary>The four normals of local quad <paramref name="quad"/>: bitwise <see cref="Philox.Normal4"/>.</summary>
    public void Normal4(int quad, out float n0, out float n1, out float n2, out float n3)
    {
        long q = QuadBase + quad;
        Philox.Block((uint)q, ((uint)((ulong)q >> 32) & 0x3FFFFFFFu) ^ Stream, StepLo, StepHi, SeedLo, SeedHi,
            out uint r0, out uint r1, out uint r2, out uint r3);
        Philox.BoxMuller4(r0, r1, r2, r3, out n0, out n1, out n2, out n3);
    }
}

using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Gemm;
using PosteriorGpu.Kernels.Random;

namespace PosteriorGpu.Kernels.Elementwise;

/// <summary>
/// How a fused update splits [0, total) into Philox quads (<see cref="RandomDraw.Quads"/>): a partial head quad of
/// <see cref="Lead"/> elements when the draw's offset is not a multiple of 4, <see cref="Full"/> whole quads, and a
/// partial tail quad of <see cref="Tail"/> elements. The whole quads are the main loop (no bounds check, one index and
/// one Philox block per 4 elements, 16-byte loads where <see cref="Aligned"/>); the at most two partial quads are
/// done lane by lane by thread 0 outside the loop, so they cost the loop nothing.
/// </summary>
internal readonly struct QuadSplit
{
    /// <summary>Elements of the range.</summary>
    public readonly int Total;
    /// <summary>Elements before the first whole quad (the head quad's lanes in range; 0 when the offset is a multiple of 4).</summary>
    public readonly int Lead;
    /// <summary>Whole quads: elements Lead + 4 j .. Lead + 4 j + 3 for j in [0, Full).</summary>
    public readonly int Full;
    /// <summary>Elements after the whole quads (0..3).</summary>
    public readonly int Tail;
    /// <summary>The draw's local quad of whole quad 0 (<see cref="QuadDraw.Normal4"/>): 1 when there is a head quad.</summary>
    public readonly int FirstQuad;

    private QuadSplit(int total, int lead, int full, int firstQuad)
    {
        Total = total;
        Lead = lead;
        Full = full;
        Tail = total - lead - 4 * full;
        FirstQuad = firstQuad;
    }

    /// <summary>The split of <paramref name="total"/> elements of <paramref name="draw"/>.</summary>
    public static QuadSplit For(int total, RandomDraw draw)
    {
        int head = (int)(draw.Offset & 3);
        int lead = Math.Min((4 - head) & 3, Math.Max(total, 0));
        int full = Math.Max(total - lead, 0) / 4;
        return new QuadSplit(Math.Max(total, 0), lead, full, head == 0 ? 0 : 1);
    }

    /// <summary>The split of <paramref name="total"/> elements without noise (quads from element 0).</summary>
    public static QuadSplit For(int total) => For(total, default);

    /// <summary>Whether 16-byte loads and stores of the whole quads are legal for every view: element Lead of each sits
    /// at a multiple of 16 bytes from its buffer's start (buffers start 256-byte aligned on CUDA; ILGPU's CPU
    /// accelerator reads unaligned memory, but the cast of a view needs its index to be a multiple of 4 there too).</summary>
    public bool Aligned(params ArrayView<float>[] views)
    {
        foreach (var v in views)
            if (((((IContiguousArrayView)v).Index + Lead) & 3) != 0) return false;
        return true;
    }
}

/// <summary>Loads and stores the four elements of a whole quad: as one 16-byte vector (<see cref="VectorIO"/>) or as four
/// floats (<see cref="ScalarIO"/>, for views whose quads are not 16-byte aligned). A fused kernel is generic over it, so
/// each variant compiles to its own straight-line loop.</summary>
internal interface IQuadIO
{
    /// <summary>Elements <paramref name="e"/> .. <paramref name="e"/> + 3 of <paramref name="v"/>.</summary>
    Float4 Load(ArrayView<float> v, int e);

    /// <summary>Writes elements <paramref name="e"/> .. <paramref name="e"/> + 3 of <paramref name="v"/>.</summary>
    void Store(ArrayView<float> v, int e, Float4 value);
}

/// <summary>One 16-byte load or store (ld.global.v4.f32); element <c>e</c> must be 16-byte aligned (<see cref="QuadSplit.Aligned"/>).</summary>
internal readonly struct VectorIO : IQuadIO
{
    /// <inheritdoc/>
    public Float4 Load(ArrayView<float> v, int e) => v.SubView(e, 4).AsAligned(16).Cast<Float4>()[0];

    /// <inheritdoc/>
    public void Store(ArrayView<float> v, int e, Float4 value) => v.SubView(e, 4).AsAligned(16).Cast<Float4>()[0] = value;
}

/// <summary>Four 4-byte loads or stores: any alignment.</summary>
internal readonly struct ScalarIO : IQuadIO
{
    /// <inheritdoc/>
    public Float4 Load(ArrayView<float> v, int e)
    {
        // One address for the four (a sub-view), not four 32-bit indices each widened on its own.
        var q = v.SubView(e, 4);
        return new() { X = q[0], Y = q[1], Z = q[2], W = q[3] };
    }

    /// <inheritdoc/>
    public void Store(ArrayView<float> v, int e, Float4 value)
    {
        var q = v.SubView(e, 4);
        q[0] = value.X;
        q[1] = value.Y;
        q[2] = value.Z;
        q[3] = value.W;
    }
}

/// <summary>The partial quads at the ends of a range: lanes outside [0, total) are neither read (they load as 0) nor
/// written, so a kernel runs its four-lane update on them unchanged.</summary>
internal static class QuadEdge
{
    /// <summary>Elements <paramref name="i0"/> .. <paramref name="i0"/> + 3 of <paramref name="v"/>, 0 where outside [0, total).</summary>
    public static Float4 Load(ArrayView<float> v, int i0, int total) => new()
    {
        X = In(i0, total) ? v[i0] : 0f,
        Y = In(i0 + 1, total) ? v[i0 + 1] : 0f,
        Z = In(i0 + 2, total) ? v[i0 + 2] : 0f,
        W = In(i0 + 3, total) ? v[i0 + 3] : 0f,
    };

    /// <summary>Writes the lanes of <paramref name="value"/> that lie in [0, total).</summary>
    public static void Store(ArrayView<float> v, int i0, int total, Float4 value)
    {
        if (In(i0, total)) v[i0] = value.X;
        if (In(i0 + 1, total)) v[i0 + 1] = value.Y;
        if (In(i0 + 2, total)) v[i0 + 2] = value.Z;
        if (In(i0 + 3, total)) v[i0 + 3] = value.W;
    }

    private static bool In(int i, int total) => i >= 0 && i < total;
}

/// <summary>
/// Division of an element index by an item length without a division instruction (a runtime integer division is some
/// 25 instructions on a GPU): for 0 &lt;= i &lt; 2^31, i / Length = (i * Magic) >> Shift with l = ceil(log2 Length),
/// Magic = floor(2^(31 + l) / Length) + 1 (below 2^32) and Shift = 31 + l (Granlund and Montgomery 1994; Hacker's
/// Delight 10-8): the product overshoots i / Length by less than 1 / Length, which never reaches the next integer.
/// </summary>
internal readonly struct ItemDivisor
{
    /// <summary>The divisor (at least 1).</summary>
    public readonly int Length;
    /// <summary>The multiplier.</summary>
    public readonly uint Magic;
    /// <summary>The right shift after the multiply.</summary>
    public readonly int Shift;

    /// <summary>The divisor <paramref name="length"/> (at least 1).</summary>
    public ItemDivisor(int length)
    {
        if (length < 1) throw new ArgumentOutOfRangeException(nameof(length), length, "item length must be at least 1");
        int l = 0;
        while ((1L << l) < length) l++;
        Length = length;
        Magic = (uint)((1UL << (31 + l)) / (ulong)length + 1);
        Shift = 31 + l;
    }

    /// <summary>i / Length for 0 &lt;= i &lt; 2^31.</summary>
    public int Of(int i) => (int)(((ulong)(uint)i * Magic) >> Shift);
}

/// <summary>Whether a loop draws noise, fixed at compile time: a kernel branches once on its noise coefficient and runs
/// one of two loops, so the drawing loop has no branch around its Philox block (ptxas then keeps the round keys in
/// uniform registers across iterations) and the deterministic one no Philox code at all.</summary>
internal interface INoiseFlag
{
    /// <summary>True: the loop draws (its noise coefficient is non-zero).</summary>
    bool Draws { get; }
}

/// <summary>The loop draws noise.</summary>
internal readonly struct Noisy : INoiseFlag
{
    /// <inheritdoc/>
    public bool Draws => true;
}

/// <summary>The loop draws none (coefficient zero).</summary>
internal readonly struct Quiet : INoiseFlag
{
    /// <inheritdoc/>
    public bool Draws => false;
}

/// <summary>A quad's normals for a loop fixed by <see cref="INoiseFlag"/>, for a kernel that draws before it loads: the
/// Philox block's integer work then runs while no loaded value is live (DenoisingUpdate, with 16 loaded values a quad:
/// 215 -> 198 instructions a quad unaligned and 193 -> 177 aligned on sm_90). ClippedDiffusionStep measured worse that
/// way (clip to range 164 -> 186) and DiffusionStep the same, so they draw after their loads.</summary>
internal static class QuadNoise
{
    /// <summary>The four normals of local quad <paramref name="q"/>, or zeros when the loop draws none.</summary>
    public static Float4 Of<TNoise>(int q, QuadDraw draw) where TNoise : struct, INoiseFlag
    {
        Float4 n = default;
        if (default(TNoise).Draws) draw.Normal4(q, out n.X, out n.Y, out n.Z, out n.W);
        return n;
    }
}

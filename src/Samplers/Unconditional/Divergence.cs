using PosteriorGpu.Kernels.Reductions;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Samplers.Unconditional;

/// <summary>Per-item finiteness from squared norms (one reduction and one small copy), shared by the
/// samplers' divergence checks and diagnoses.</summary>
internal static class Divergence
{
    /// <summary>A state whose largest squared item norm exceeded this (|x| about 1e15, far beyond any data
    /// scale) before it overflowed had been growing without bound: <see cref="DivergenceCause.Exploded"/>.</summary>
    public const double ExplodedSquaredNorm = 1e30;

    /// <summary>The squared norm of each item of <paramref name="t"/> into <paramref name="host"/> (length N), via <paramref name="norm"/> ([N]).</summary>
    public static void SquaredNorms(Tensor t, Tensor norm, float[] host)
    {
        BatchReduce.SquaredNorm(t, norm);
        norm.CopyTo(host);
    }

    /// <summary>The items whose squared norm is not finite (NaN, infinity, or an overflow of the square).</summary>
    public static int[] NonFinite(ReadOnlySpan<float> norms)
    {
        var bad = new List<int>();
        for (int i = 0; i < norms.Length; i++)
            if (!float.IsFinite(norms[i])) bad.Add(i);
        return bad.ToArray();
    }

    /// <summary>The largest squared norm (finite norms only; 0 when none).</summary>
    public static double Largest(ReadOnlySpan<float> norms)
    {
        double m = 0;
        foreach (float v in norms)
            if (float.IsFinite(v)) m = Math.Max(m, v);
        return m;
    }

    /// <summary>True when any of <paramref name="items"/> has a non-finite squared norm in <paramref name="norms"/>.</summary>
    public static bool AnyNonFinite(ReadOnlySpan<float> norms, IEnumerable<int> items)
    {
        foreach (int i in items)
            if (!float.IsFinite(norms[i])) return true;
        return false;
    }
}

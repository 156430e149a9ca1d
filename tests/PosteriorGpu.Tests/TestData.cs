using NUnit.Framework;

namespace PosteriorGpu.Tests;

/// <summary>Seeded random inputs and tolerant comparisons for kernel-versus-reference tests.</summary>
public static class TestData
{
    /// <summary>Uniform values in [-scale, scale), never all zeros.</summary>
    public static float[] Random(int n, int seed, float scale = 1f)
    {
        var rng = new System.Random(seed);
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float)((rng.NextDouble() * 2 - 1) * scale);
        return a;
    }

    /// <summary>||actual - expected|| / ||expected|| (or absolute norm when expected is zero).</summary>
    public static double RelativeError(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        Assert.That(actual.Length, Is.EqualTo(expected.Length), "lengths differ");
        double num = 0, den = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            if (!float.IsFinite(actual[i])) return double.PositiveInfinity;
            double d = actual[i] - expected[i];
            num += d * d;
            den += (double)expected[i] * expected[i];
        }
        return den == 0 ? Math.Sqrt(num) : Math.Sqrt(num / den);
    }

    /// <summary>Largest absolute elementwise difference.</summary>
    public static double MaxAbsError(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
    {
        double m = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            if (!float.IsFinite(actual[i])) return double.PositiveInfinity;
            m = Math.Max(m, Math.Abs(actual[i] - expected[i]));
        }
        return m;
    }

    /// <summary>Asserts a relative L2 error below <paramref name="tolerance"/>, naming the case.</summary>
    public static void AssertClose(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, double tolerance, string what)
    {
        double e = RelativeError(actual, expected);
        // Printed so GPU runs (--output detailed) report the error of every comparison.
        TestContext.Out.WriteLine($"{what}: relative L2 error {e:E3}, max abs {MaxAbsError(actual, expected):E3}");
        Assert.That(e, Is.LessThan(tolerance), $"{what}: relative L2 error {e:E3} (max abs {MaxAbsError(actual, expected):E3})");
    }
}

using NUnit.Framework;

namespace PosteriorGpu.Tests.Backward;

/// <summary>
/// Finite-difference checks of backward references against forward references: for a random
/// cotangent dy and direction u, the central difference of L(x) = &lt;dy, f(x)&gt; along u must match
/// &lt;grad L, u&gt;, which is what the backward reference computes.
/// </summary>
public static class Gradients
{
    public static double Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++) s += (double)a[i] * b[i];
        return s;
    }

    /// <summary>(L(x + eps u) - L(x - eps u)) / (2 eps) where L(x) = &lt;dy, f(x)&gt;; x is restored.</summary>
    public static double Directional(Func<float[]> forward, float[] x, float[] u, float[] dy, float eps)
    {
        var saved = (float[])x.Clone();
        for (int i = 0; i < x.Length; i++) x[i] = saved[i] + eps * u[i];
        double plus = Dot(dy, forward());
        for (int i = 0; i < x.Length; i++) x[i] = saved[i] - eps * u[i];
        double minus = Dot(dy, forward());
        saved.CopyTo(x, 0);
        return (plus - minus) / (2 * eps);
    }

    /// <summary>Asserts that the analytic gradient's directional derivative matches finite differences
    /// along three random directions (relative to the larger of the two, with an absolute floor).</summary>
    public static void AssertMatchesFiniteDifferences(string what, Func<float[]> forward, float[] x, float[] gradient, float[] dy,
        float eps = 1e-2f, double tolerance = 2e-3)
    {
        for (int seed = 0; seed < 3; seed++)
        {
            var u = TestData.Random(x.Length, 1000 + seed);
            double fd = Directional(forward, x, u, dy, eps);
            double analytic = Dot(gradient, u);
            double err = Math.Abs(fd - analytic) / Math.Max(1e-3, Math.Max(Math.Abs(fd), Math.Abs(analytic)));
            TestContext.Out.WriteLine($"{what} direction {seed}: finite difference {fd:G6}, analytic {analytic:G6}, relative gap {err:E2}");
            Assert.That(err, Is.LessThan(tolerance), $"{what}: finite difference {fd:G8} vs analytic {analytic:G8} along direction {seed}");
        }
    }
}

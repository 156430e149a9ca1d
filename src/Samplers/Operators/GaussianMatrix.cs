using PosteriorGpu.Kernels.Random;

namespace PosteriorGpu.Samplers.Operators;

/// <summary>Seeded random sensing matrices, made on the host from Philox (so the same seed gives the
/// same matrix bit for bit on every machine and device).</summary>
public static class GaussianMatrix
{
    /// <summary>An m x d row-major matrix with entries N(0, 1/m) (<paramref name="scale"/> = 1/sqrt(m)
    /// when not given): E ||A x||^2 = ||x||^2, the usual compressed-sensing normalisation.</summary>
    public static float[] Create(int m, int d, ulong seed, float? scale = null) =>
        CreateOnStream(m, d, seed, RandomStreams.SensingMatrix, scale ?? 1f / MathF.Sqrt(m));

    internal static float[] CreateOnStream(int m, int d, ulong seed, uint stream, float scale)
    {
        if (m < 1 || d < 1) throw new ArgumentOutOfRangeException(nameof(m), $"a sensing matrix needs m, d >= 1; got {m} x {d}");
        long n = (long)m * d;
        if (n > Array.MaxLength) throw new ArgumentOutOfRangeException(nameof(m), $"a {m} x {d} matrix is too large");
        var a = new float[n];
        var draw = new RandomDraw(seed, stream, 0);
        // Chunks in parallel: each entry depends only on its index, so the result is the same.
        Parallel.For(0, (int)((n + 65535) / 65536), c =>
        {
            long end = Math.Min(n, (c + 1L) * 65536);
            for (long i = c * 65536L; i < end; i++) a[i] = scale * draw.Normal(i);
        });
        return a;
    }

    /// <summary>y = A x for a row-major m x d matrix, per item of x (d values each), in double.</summary>
    internal static float[] MultiplyReference(float[] a, int m, int d, ReadOnlySpan<float> x, ReadOnlySpan<float> bias = default)
    {
        int n = x.Length / d;
        var y = new float[n * m];
        for (int item = 0; item < n; item++)
            for (int i = 0; i < m; i++)
            {
                double acc = bias.IsEmpty ? 0 : bias[i];
                for (int j = 0; j < d; j++) acc += (double)a[(long)i * d + j] * x[item * d + j];
                y[item * m + i] = (float)acc;
            }
        return y;
    }

    /// <summary>x = A^T y for a row-major m x d matrix, per item of y (m values each), in double.</summary>
    internal static float[] TransposeMultiplyReference(float[] a, int m, int d, ReadOnlySpan<float> y)
    {
        int n = y.Length / m;
        var x = new float[n * d];
        var acc = new double[d];
        for (int item = 0; item < n; item++)
        {
            Array.Clear(acc);
            for (int i = 0; i < m; i++)
            {
                double yi = y[item * m + i];
                for (int j = 0; j < d; j++) acc[j] += a[(long)i * d + j] * yi;
            }
            for (int j = 0; j < d; j++) x[item * d + j] = (float)acc[j];
        }
        return x;
    }
}

using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Samplers.Operators;

/// <summary>Measurement noise: y += sigma z with z ~ N(0, I) drawn in the kernel from
/// (seed, stream, step, index), so a seed gives the same noisy measurement on every device. The operators'
/// <see cref="IForwardOperator.Simulate"/> uses it for y = A(x) + sigma z.</summary>
public static class Measurements
{
    /// <summary>The specification: y[i] += sigma * draw.Normal(i).</summary>
    public static void AddGaussianNoiseReference(Span<float> y, float sigma, RandomDraw draw) => AddNoise.Reference(y, sigma, draw);

    /// <summary>y += sigma z, z ~ N(0, I) from <paramref name="draw"/>, in place (the <see cref="AddNoise"/> kernel).</summary>
    /// <exception cref="ArgumentOutOfRangeException">sigma is negative or not finite.</exception>
    public static void AddGaussianNoise(Tensor y, float sigma, RandomDraw draw)
    {
        RequireNoiseLevel(sigma, "measurement noise");
        if (y.Length == 0) return;
        AddNoise.Run(y, sigma, draw);
    }

    /// <summary>The default <see cref="IForwardOperator.Simulate"/>: y = A(x) + sigma z, Gaussian noise added after the operator.</summary>
    /// <exception cref="ArgumentException">A shape does not match the operator.</exception>
    /// <exception cref="ArgumentOutOfRangeException">sigma is negative or not finite.</exception>
    public static void AddedGaussian(IForwardOperator op, Tensor x, float sigma, RandomDraw draw, Tensor y)
    {
        ArgumentNullException.ThrowIfNull(op);
        RequireNoiseLevel(sigma, $"operator {op.Name}");
        op.Forward(x, y);
        AddGaussianNoise(y, sigma, draw);
    }

    /// <summary>Throws unless sigma is a usable noise level (&gt;= 0 and finite).</summary>
    /// <exception cref="ArgumentOutOfRangeException">sigma is negative, NaN or infinite.</exception>
    public static void RequireNoiseLevel(float sigma, string what)
    {
        if (!(sigma >= 0) || float.IsInfinity(sigma))
            throw new ArgumentOutOfRangeException(nameof(sigma), sigma, $"{what}: sigma must be >= 0 and finite");
    }
}

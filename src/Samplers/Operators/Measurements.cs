using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Samplers.Operators;

/// <summary>Measurement noise: y += sigma z with z ~ N(0, I) drawn in the kernel from
/// (seed, stream, step, index), so a seed gives the same noisy measurement on every device.</summary>
public static class Measurements
{
    /// <summary>The specification: y[i] += sigma * draw.Normal(i).</summary>
    public static void AddGaussianNoiseReference(Span<float> y, float sigma, RandomDraw draw) => AddNoise.Reference(y, sigma, draw);

    /// <summary>y += sigma z, z ~ N(0, I) from <paramref name="draw"/>, in place (the <see cref="AddNoise"/> kernel).</summary>
    /// <exception cref="ArgumentOutOfRangeException">sigma is negative or not finite.</exception>
    public static void AddGaussianNoise(Tensor y, float sigma, RandomDraw draw)
    {
        if (!(sigma >= 0) || float.IsInfinity(sigma))
            throw new ArgumentOutOfRangeException(nameof(sigma), sigma, "measurement noise: sigma must be >= 0 and finite");
        if (y.Length == 0) return;
        AddNoise.Run(y, sigma, draw);
    }

    /// <summary>
    /// A simulated noisy measurement y = A(x) + sigma z, z ~ N(0, I) from <paramref name="draw"/>; for
    /// <see cref="OneBitOperator"/> the noise enters before the quantizer, y = sign(A x + tau + sigma z), the model
    /// its likelihood assumes. x is [N, ...InputShape], y [N, ...MeasurementShape].
    /// </summary>
    /// <exception cref="ArgumentException">A shape does not match the operator.</exception>
    /// <exception cref="ArgumentOutOfRangeException">sigma is negative or not finite.</exception>
    public static void Simulate(IForwardOperator op, Tensor x, float sigma, RandomDraw draw, Tensor y)
    {
        ArgumentNullException.ThrowIfNull(op);
        if (op is OneBitOperator oneBit)
        {
            oneBit.Measure(x, sigma, draw, y);
            return;
        }
        if (!(sigma >= 0) || float.IsInfinity(sigma))
            throw new ArgumentOutOfRangeException(nameof(sigma), sigma, "measurement noise: sigma must be >= 0 and finite");
        op.Forward(x, y);
        AddGaussianNoise(y, sigma, draw);
    }
}

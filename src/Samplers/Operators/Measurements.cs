using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Samplers.Operators;

/// <summary>Measurement noise: y += sigma z with z ~ N(0, I) drawn in the kernel from
/// (seed, stream, step, index), so a seed gives the same noisy measurement on every device.</summary>
public static class Measurements
{
    /// <summary>The specification: y[i] += sigma * draw.Normal(i).</summary>
    public static void AddGaussianNoiseReference(Span<float> y, float sigma, RandomDraw draw)
    {
        for (int i = 0; i < y.Length; i++) y[i] += sigma * draw.Normal(i);
    }

    internal static void Kernel(Index1D tid, ElementRange r, ArrayView<float> y, float sigma, RandomDraw draw)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            y[i] += sigma * draw.Normal(i);
        }
    }

    /// <summary>y += sigma z, z ~ N(0, I) from <paramref name="draw"/>, in place.</summary>
    /// <exception cref="ArgumentOutOfRangeException">sigma is negative or not finite.</exception>
    public static void AddGaussianNoise(Tensor y, float sigma, RandomDraw draw)
    {
        if (!(sigma >= 0) || float.IsInfinity(sigma))
            throw new ArgumentOutOfRangeException(nameof(sigma), sigma, "measurement noise: sigma must be >= 0 and finite");
        var plan = y.Device.Plan(y.Length);
        if (plan.Total == 0 || sigma == 0) return;
        var k = y.Device.Kernel("measurement-noise", acc =>
            acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, ArrayView<float>, float, RandomDraw>(Kernel));
        k(plan.Threads, plan, y.View, sigma, draw);
    }
}

using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Models.Priors;

/// <summary>
/// x0 ~ N(mu, diag(variance)) on images [C, H, W], as an <see cref="IScoreModel"/> with the exact
/// epsilon at every noise level: the oracle that sampler tests measure against. Timestep t maps to
/// a = alphas_cumprod[t], linearly interpolated between integer timesteps. Holds device memory.
/// </summary>
public sealed class GaussianDiagonalPrior : IScoreModel, IDisposable
{
    private readonly Tensor mu;
    private readonly Tensor variance;
    private readonly double[] alphasCumprod;
    private readonly TensorPool pool;
    private float[] levels = [];

    /// <summary>Builds the prior from host arrays (each C*H*W long) and the schedule's alphas_cumprod.</summary>
    public GaussianDiagonalPrior(GpuDevice device, int channels, int height, int width, float[] mean, float[] variance, double[] alphasCumprod)
    {
        int d = channels * height * width;
        if (mean.Length != d || variance.Length != d)
            throw new ArgumentException($"gaussian prior: mean and variance need {d} values for [{channels}, {height}, {width}], got {mean.Length} and {variance.Length}");
        if (variance.Any(v => !(v >= 0) || float.IsInfinity(v)))
            throw new ArgumentException("gaussian prior: every variance must be finite and >= 0");
        Device = device;
        Channels = channels;
        Height = height;
        Width = width;
        Mean = (float[])mean.Clone();
        Variance = (float[])variance.Clone();
        this.alphasCumprod = (double[])alphasCumprod.Clone();
        mu = Tensor.FromHost(device, mean, d);
        this.variance = Tensor.FromHost(device, variance, d);
        pool = new TensorPool(device);
    }

    /// <inheritdoc/>
    public GpuDevice Device { get; }

    /// <inheritdoc/>
    public int Channels { get; }

    /// <inheritdoc/>
    public int Height { get; }

    /// <inheritdoc/>
    public int Width { get; }

    /// <summary>The prior mean (host copy).</summary>
    public float[] Mean { get; }

    /// <summary>The prior variances (host copy).</summary>
    public float[] Variance { get; }

    /// <summary>alphas_cumprod at a fractional timestep (linear interpolation; clamped to the table).</summary>
    public double AlphaCumprodAt(double t)
    {
        if (double.IsNaN(t)) throw new ArgumentException("gaussian prior: timestep is NaN");
        double c = Math.Clamp(t, 0, alphasCumprod.Length - 1);
        int lo = (int)Math.Floor(c);
        int hi = Math.Min(lo + 1, alphasCumprod.Length - 1);
        return alphasCumprod[lo] + (c - lo) * (alphasCumprod[hi] - alphasCumprod[lo]);
    }

    /// <summary>The exact marginal of x_t at level a, per coordinate: mean sqrt(a) mu, variance a var + 1 - a.</summary>
    public (double[] Mean, double[] Variance) Marginal(double alphaCumprod) =>
        (Mean.Select(m => Math.Sqrt(alphaCumprod) * m).ToArray(), Variance.Select(v => alphaCumprod * v + 1 - alphaCumprod).ToArray());

    /// <inheritdoc/>
    public void PredictEpsilon(Tensor x, ReadOnlySpan<float> timesteps, Tensor epsilon)
    {
        int n = x.N;
        if (timesteps.Length != n && timesteps.Length != 1)
            throw new ArgumentException($"gaussian prior: {timesteps.Length} timesteps for a batch of {n}");
        if (levels.Length != 3 * n) levels = new float[3 * n];
        for (int i = 0; i < n; i++)
        {
            double a = AlphaCumprodAt(timesteps[timesteps.Length == 1 ? 0 : i]);
            levels[3 * i] = (float)a;
            levels[3 * i + 1] = (float)Math.Sqrt(a);
            levels[3 * i + 2] = (float)Math.Sqrt(1 - a);
        }
        using var tl = pool.Rent(n, 3);
        tl.CopyFrom(levels);
        GaussianEpsilon.Run(x, mu, variance, tl, epsilon);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        mu.Dispose();
        variance.Dispose();
        pool.Dispose();
    }
}

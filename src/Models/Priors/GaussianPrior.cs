using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Gemm;
using PosteriorGpu.Kernels.Priors;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.Schedules;

namespace PosteriorGpu.Models.Priors;

/// <summary>
/// An exact score model for a Gaussian prior x_0 ~ N(mu, Sigma) over [C, H, W] images (d = C H W up to a
/// few hundred), at the noise levels of a <see cref="NoiseSchedule"/>. At alpha_bar a = alphas_cumprod[t] the marginal of x_t = sqrt(a) x_0 + sqrt(1 - a) eps is
/// N(sqrt(a) mu, a Sigma + (1 - a) I), so eps(x) = sqrt(1 - a) (a Sigma + (1 - a) I)^{-1} (x - sqrt(a) mu)
/// and the score is -eps / sqrt(1 - a). With Sigma = U diag(lambda) U^T (eigendecomposed once on the
/// host) the device computes z = U^T x (GEMM), scales z_j - sqrt(a) (U^T mu)_j by sqrt(1 - a) / (a lambda_j + 1 - a)
/// with each item's own a (<see cref="SpectralScale"/>), and eps = U z (GEMM). A diagonal Sigma skips both GEMMs.
/// eps is affine in x with the symmetric Jacobian sqrt(1 - a) (a Sigma + (1 - a) I)^{-1}, so its
/// vector-Jacobian product is the same eigenbasis path applied to the cotangent without the mean shift.
/// Holds device memory (its parameters and a scratch pool): dispose it. Not thread-safe on its own; samplers call it within their turn on the device (GpuDevice.Exclusive).
/// </summary>
public sealed class GaussianPrior : IDifferentiableScoreModel, IDisposable
{
    private const string Op = "gaussian prior";
    private readonly Func<double, double> alphaBar;   // the schedule's alphas_cumprod, interpolated
    private readonly Tensor? basis;
    private readonly Tensor shift;
    private readonly Tensor zeroShift;
    private readonly Tensor lambda;
    private readonly TensorPool pool;
    private bool disposed;

    /// <summary>A prior with the given distribution over [channels, height, width] images (d must equal the
    /// distribution's dimension); its noise levels are <paramref name="schedule"/>'s
    /// (alpha_bar(t) = alphas_cumprod[t], linear between integer t: <see cref="AlphaBar.Interpolated(IReadOnlyList{double})"/>), so a
    /// sampler given the same <see cref="Schedule"/> walks exactly the levels the prior's scores are exact at.</summary>
    /// <exception cref="ArgumentException">The dimensions disagree.</exception>
    public GaussianPrior(GpuDevice device, int channels, int height, int width, GaussianDistribution distribution, NoiseSchedule schedule)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(distribution);
        ArgumentNullException.ThrowIfNull(schedule);
        int d = channels * height * width;
        if (channels < 1 || height < 1 || width < 1 || d != distribution.Dimension)
            throw new ArgumentException(
                $"{Op}: images of [{channels}, {height}, {width}] have {d} values but the distribution has dimension {distribution.Dimension}");
        Device = device;
        Channels = channels;
        Height = height;
        Width = width;
        Distribution = distribution;
        Schedule = schedule;
        alphaBar = AlphaBar.Interpolated(schedule.AlphasCumprodDouble);
        pool = new TensorPool(device);
        var u = distribution.Eigenvectors;
        var l = distribution.Eigenvalues;
        var m = distribution.IsDiagonal ? distribution.Mean : u.TransposeThisAndMultiply(distribution.Mean);
        var uf = new float[d * d];
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++) uf[i * d + j] = (float)u[i, j];
        basis = distribution.IsDiagonal ? null : Tensor.FromHost(device, uf, d, d);
        shift = Tensor.FromHost(device, m.Select(v => (float)v).ToArray(), d);
        lambda = Tensor.FromHost(device, l.Select(v => (float)v).ToArray(), d);
        zeroShift = Tensor.Zeros(device, d);
    }

    /// <summary>N(mu, diag(variances)): the diagonal fast path (one elementwise kernel, no GEMM).</summary>
    public static GaussianPrior Diagonal(GpuDevice device, int channels, int height, int width,
        IReadOnlyList<double> mean, IReadOnlyList<double> variances, NoiseSchedule schedule) =>
        new(device, channels, height, width, GaussianDistribution.Diagonal(mean, variances), schedule);

    /// <inheritdoc/>
    public GpuDevice Device { get; }

    /// <inheritdoc/>
    public int Channels { get; }

    /// <inheritdoc/>
    public int Height { get; }

    /// <inheritdoc/>
    public int Width { get; }

    /// <summary>The prior N(mu, Sigma) of x_0.</summary>
    public GaussianDistribution Distribution { get; }

    /// <summary>d = C H W.</summary>
    public int Dimension => Distribution.Dimension;

    /// <summary>The noise schedule whose alphas_cumprod the prior's scores are exact at; give samplers this one.</summary>
    public NoiseSchedule Schedule { get; }

    /// <summary>alpha_bar at timestep t, as the model uses it.</summary>
    public double AlphaBarAt(double t) => AlphaBar.Evaluate(alphaBar, t, 0);

    /// <inheritdoc/>
    /// <remarks>Exact up to float32 rounding; <paramref name="epsilon"/> may be <paramref name="x"/>.</remarks>
    /// <exception cref="ArgumentException">Shapes, devices or the number of timesteps do not fit.</exception>
    /// <exception cref="ArgumentOutOfRangeException">alpha_bar(t) is outside [0, 1] (or t outside the table).</exception>
    public void PredictEpsilon(Tensor x, ReadOnlySpan<float> timesteps, Tensor epsilon)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        PriorLevels.RequireInputs(Op, this, x, epsilon);
        int n = x.N;
        var levelsHost = PriorLevels.Table(PriorLevels.AlphaBars(alphaBar, timesteps, n, Op));
        if (n == 0) return;
        using var levels = pool.Rent(n, PriorLevels.Stride);
        levels.CopyFrom(levelsHost);
        Apply(x, shift, levels, epsilon);
    }

    /// <inheritdoc/>
    /// <remarks>Exact up to float32 rounding (the Jacobian does not depend on x).</remarks>
    /// <exception cref="ArgumentException">Shapes, devices or the number of timesteps do not fit.</exception>
    public void EpsilonVjp(Tensor x, ReadOnlySpan<float> timesteps, Tensor cotangent, Tensor epsilon, Tensor gradient)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        PriorLevels.RequireInputs(Op, this, x, epsilon);
        Shape.RequireSame(Op, cotangent, "cotangent", x, "x");
        Shape.RequireSame(Op, gradient, "gradient", x, "x");
        int n = x.N;
        var levelsHost = PriorLevels.Table(PriorLevels.AlphaBars(alphaBar, timesteps, n, Op));
        if (n == 0) return;
        using var levels = pool.Rent(n, PriorLevels.Stride);
        levels.CopyFrom(levelsHost);
        Apply(x, shift, levels, epsilon);
        Apply(cotangent, zeroShift, levels, gradient);
    }

    /// <summary>out = U diag(sqrt(1 - a) / (a lambda + 1 - a)) U^T (in - sqrt(a) U m') per item (m' = shift in the eigenbasis).</summary>
    private void Apply(Tensor input, Tensor shiftInBasis, Tensor levels, Tensor output)
    {
        int n = input.N, d = Dimension;
        using var xv = input.Reshape(n, d);
        using var ev = output.Reshape(n, d);
        if (basis is null)
        {
            SpectralScale.Run(xv, shiftInBasis, lambda, levels, ev);
            return;
        }
        using var z = pool.Rent(n, d);
        Gemm.Run(xv, false, basis, false, z);
        SpectralScale.Run(z, shiftInBasis, lambda, levels, z);
        Gemm.Run(z, false, basis, true, ev);
    }

    /// <summary>The host reference in double: eps_n = -sqrt(1 - a_n) grad log N(x_n; sqrt(a_n) mu, a_n Sigma + (1 - a_n) I),
    /// solved by Cholesky (independent of the eigendecomposition); x is row-major [N, d].</summary>
    public double[] EpsilonReference(ReadOnlySpan<float> x, ReadOnlySpan<float> timesteps)
    {
        int d = Dimension;
        if (x.Length % d != 0) throw new ArgumentException($"{Op}: x holds {x.Length} values, not a multiple of d = {d}", nameof(x));
        int n = x.Length / d;
        var a = PriorLevels.AlphaBars(alphaBar, timesteps, n, Op);
        var eps = new double[n * d];
        var xi = new double[d];
        for (int item = 0; item < n; item++)
        {
            for (int i = 0; i < d; i++) xi[i] = x[item * d + i];
            var s = Distribution.AtNoiseLevel(a[item]).Score(xi);
            double f = -Math.Sqrt(1 - a[item]);
            for (int i = 0; i < d; i++) eps[item * d + i] = f * s[i];
        }
        return eps;
    }

    /// <summary>Frees the device copies of the eigendecomposition and the work buffers.</summary>
    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        basis?.Dispose();
        shift.Dispose();
        zeroShift.Dispose();
        lambda.Dispose();
        pool.Dispose();
    }
}

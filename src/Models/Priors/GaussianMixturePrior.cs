using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Gemm;
using PosteriorGpu.Kernels.Priors;
using PosteriorGpu.Kernels.Reductions;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.Schedules;

namespace PosteriorGpu.Models.Priors;

/// <summary>
/// An exact score model for a Gaussian-mixture prior sum_k w_k N(mu_k, Sigma_k) over [C, H, W] images
/// (K up to a few dozen, d up to a few hundred). At alpha_bar a the marginal is sum_k w_k N(sqrt(a) mu_k,
/// a Sigma_k + (1 - a) I), whose epsilon is sum_k r_k(x) eps_k(x) with responsibilities
/// r_k = softmax_k(log w_k + log N_k(x)) and eps_k the component's own epsilon. Each Sigma_k = U_k diag(lambda_k) U_k^T
/// is eigendecomposed once on the host (diagonal components get U_k = I and share the same path). On the
/// device, batched over N items and K components: Z = x [U_1 ... U_K] (one GEMM), per (n, k) the Mahalanobis
/// term, log-determinant and scaled eigenbasis epsilon (<see cref="MixtureComponentTerms"/>), a stable softmax
/// over k (<see cref="MixtureSoftmax"/>), scaling by r, and eps = Z [U_1 ... U_K]^T (one GEMM).
/// <para>
/// The Jacobian of eps is -sqrt(1 - a) times the Hessian of log p_t; differentiating r_k = softmax(l_k) with
/// grad l_k = -eps_k / sqrt(1 - a) gives the vector-Jacobian product
/// J^T v = sum_k r_k [J_k v - (c_k - c̄) eps_k / sqrt(1 - a)], J_k = sqrt(1 - a) C_k^{-1} the component's (symmetric)
/// Jacobian, c_k = eps_k . v and c̄ = sum_k r_k c_k. In component k's eigenbasis J_k v is the same scaling as eps_k
/// applied to U_k^T v without the mean shift, and c_k a dot product of two eigenbasis rows.
/// </para>
/// Holds device memory (its parameters and a scratch pool): dispose it. Not thread-safe on its own; samplers call it within their turn on the device (GpuDevice.Exclusive).
/// </summary>
public sealed class GaussianMixturePrior : IDifferentiableScoreModel, IDisposable
{
    private const string Op = "gaussian mixture prior";
    private readonly Func<double, double> alphaBar;   // the schedule's alphas_cumprod, interpolated
    private readonly Tensor bases;      // [d, K d]: column block k is U_k
    private readonly Tensor shifts;     // [K, d]: U_k^T mu_k
    private readonly Tensor lambdas;    // [K, d]
    private readonly Tensor logWeights; // [K]
    private readonly Tensor zeroShifts; // [K, d]
    private readonly TensorPool pool;
    private bool disposed;

    /// <summary>A prior with the given mixture over [channels, height, width] images (d must equal the mixture's
    /// dimension); its noise levels are <paramref name="schedule"/>'s
    /// (alpha_bar(t) = alphas_cumprod[t], linear between integer t: <see cref="AlphaBar.Interpolated(IReadOnlyList{double})"/>), so a
    /// sampler given the same <see cref="Schedule"/> walks exactly the levels the prior's scores are exact at.</summary>
    /// <exception cref="ArgumentException">The dimensions disagree.</exception>
    public GaussianMixturePrior(GpuDevice device, int channels, int height, int width, GaussianMixtureDistribution mixture, NoiseSchedule schedule)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(mixture);
        ArgumentNullException.ThrowIfNull(schedule);
        int d = channels * height * width;
        if (channels < 1 || height < 1 || width < 1 || d != mixture.Dimension)
            throw new ArgumentException(
                $"{Op}: images of [{channels}, {height}, {width}] have {d} values but the mixture has dimension {mixture.Dimension}");
        Device = device;
        Channels = channels;
        Height = height;
        Width = width;
        Mixture = mixture;
        Schedule = schedule;
        alphaBar = AlphaBar.Interpolated(schedule.AlphasCumprodDouble);
        pool = new TensorPool(device);
        int k = mixture.Count;
        var u = new float[d * k * d];
        var m = new float[k * d];
        var l = new float[k * d];
        for (int c = 0; c < k; c++)
        {
            var g = mixture.Components[c];
            var uc = g.Eigenvectors;
            var mc = g.IsDiagonal ? g.Mean : uc.TransposeThisAndMultiply(g.Mean);
            for (int i = 0; i < d; i++)
                for (int j = 0; j < d; j++) u[i * k * d + c * d + j] = (float)uc[i, j];
            for (int j = 0; j < d; j++)
            {
                m[c * d + j] = (float)mc[j];
                l[c * d + j] = (float)g.Eigenvalues[j];
            }
        }
        bases = Tensor.FromHost(device, u, d, k * d);
        shifts = Tensor.FromHost(device, m, k, d);
        lambdas = Tensor.FromHost(device, l, k, d);
        logWeights = Tensor.FromHost(device, mixture.LogWeights.Select(v => (float)v).ToArray(), k);
        zeroShifts = Tensor.Zeros(device, k, d);
    }

    /// <inheritdoc/>
    public GpuDevice Device { get; }

    /// <inheritdoc/>
    public int Channels { get; }

    /// <inheritdoc/>
    public int Height { get; }

    /// <inheritdoc/>
    public int Width { get; }

    /// <summary>The prior mixture of x_0.</summary>
    public GaussianMixtureDistribution Mixture { get; }

    /// <summary>d = C H W.</summary>
    public int Dimension => Mixture.Dimension;

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
        if (n == 0)
        {
            PriorLevels.AlphaBars(alphaBar, timesteps, n, Op);
            return;
        }
        int d = Dimension, k = Mixture.Count;
        using var z = pool.Rent(n, k * d);
        using var r = pool.Rent(n, k);
        ComponentTerms(x, timesteps, z, r);
        MixtureSoftmax.Run(r, r);
        using (var zr = z.Reshape(n * k, d))
        using (var rr = r.Reshape(n * k))
            ScalePerItem.Run(zr, rr, zr);
        using var ev = epsilon.Reshape(n, d);
        Gemm.Run(z, false, bases, true, ev);
    }

    /// <inheritdoc/>
    /// <remarks>Exact up to float32 rounding; see the type's summary for the formula.</remarks>
    /// <exception cref="ArgumentException">Shapes, devices or the number of timesteps do not fit.</exception>
    public void EpsilonVjp(Tensor x, ReadOnlySpan<float> timesteps, Tensor cotangent, Tensor epsilon, Tensor gradient)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        PriorLevels.RequireInputs(Op, this, x, epsilon);
        Shape.RequireSame(Op, cotangent, "cotangent", x, "x");
        Shape.RequireSame(Op, gradient, "gradient", x, "x");
        int n = x.N;
        var a = PriorLevels.AlphaBars(alphaBar, timesteps, n, Op);
        if (n == 0) return;
        int d = Dimension, k = Mixture.Count;
        using var z = pool.Rent(n, k * d);
        using var r = pool.Rent(n, k);
        ComponentTerms(x, timesteps, z, r);
        MixtureSoftmax.Run(r, r);

        // w_k = U_k^T v scaled like eps_k without the shift: U_k^T J_k v. The logits it writes are not needed.
        using var w = pool.Rent(n, k * d);
        using var scratch = pool.Rent(n, k);
        using var levels = pool.Rent(n, PriorLevels.Stride);
        levels.CopyFrom(PriorLevels.Table(a));
        using (var vv = cotangent.Reshape(n, d))
            Gemm.Run(vv, false, bases, false, w);
        using var c = pool.Rent(n * k);
        using var zr = z.Reshape(n * k, d);
        using var wr = w.Reshape(n * k, d);
        using (var raw = pool.Rent(n * k, d))
        {
            raw.CopyFrom(wr);
            BatchReduce.Dot(zr, raw, c);   // c_k = eps_k . v, both in component k's eigenbasis
        }
        MixtureComponentTerms.Run(w, zeroShifts, lambdas, logWeights, levels, scratch);

        // Per (n, k): alpha = r_k and beta = -r_k (c_k - c̄) / sqrt(1 - a_n), a few numbers per item on the host.
        var rh = new float[n * k];
        var ch = new float[n * k];
        r.CopyTo(rh);
        c.CopyTo(ch);
        var beta = new float[n * k];
        for (int i = 0; i < n; i++)
        {
            double mean = 0;
            for (int j = 0; j < k; j++) mean += (double)rh[i * k + j] * ch[i * k + j];
            double sb = Math.Sqrt(1 - a[i]);
            for (int j = 0; j < k; j++)
                beta[i * k + j] = sb > 0 ? (float)(-rh[i * k + j] * (ch[i * k + j] - mean) / sb) : 0f;
        }
        using var betas = pool.Rent(n * k);
        betas.CopyFrom(beta);
        using var rr = r.Reshape(n * k);
        using (var zb = pool.Rent(n * k, d))
        {
            ScalePerItem.Run(zr, betas, zb);
            ScalePerItem.Run(wr, rr, wr);
            Axpby.Run(1f, zb, 1f, wr);
        }
        ScalePerItem.Run(zr, rr, zr);
        using (var ev = epsilon.Reshape(n, d))
            Gemm.Run(z, false, bases, true, ev);
        using (var gv = gradient.Reshape(n, d))
            Gemm.Run(w, false, bases, true, gv);
    }

    /// <summary>The responsibilities r_k(x_n) at each item's level into <paramref name="responsibilities"/> ([N, K]).</summary>
    /// <exception cref="ArgumentException">Shapes, devices or the number of timesteps do not fit.</exception>
    public void PredictResponsibilities(Tensor x, ReadOnlySpan<float> timesteps, Tensor responsibilities)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        PriorLevels.RequireInputs(Op, this, x, x);
        int n = x.N, k = Mixture.Count;
        Shape.Require(Op, responsibilities, "responsibilities", n, k);
        Shape.RequireSameDevice(Op, x, responsibilities);
        if (n == 0) return;
        using var z = pool.Rent(n, k * Dimension);
        ComponentTerms(x, timesteps, z, responsibilities);
        MixtureSoftmax.Run(responsibilities, responsibilities);
    }

    private void ComponentTerms(Tensor x, ReadOnlySpan<float> timesteps, Tensor z, Tensor logits)
    {
        int n = x.N, d = Dimension;
        var levelsHost = PriorLevels.Table(PriorLevels.AlphaBars(alphaBar, timesteps, n, Op));
        using var levels = pool.Rent(n, PriorLevels.Stride);
        levels.CopyFrom(levelsHost);
        using var xv = x.Reshape(n, d);
        Gemm.Run(xv, false, bases, false, z);
        MixtureComponentTerms.Run(z, shifts, lambdas, logWeights, levels, logits);
    }

    /// <summary>The host reference in double: eps_n = -sqrt(1 - a_n) sum_k r_k s_k, every component's density and
    /// score by Cholesky (independent of the eigendecompositions); x is row-major [N, d].</summary>
    public double[] EpsilonReference(ReadOnlySpan<float> x, ReadOnlySpan<float> timesteps)
    {
        int d = Dimension;
        if (x.Length % d != 0) throw new ArgumentException($"{Op}: x holds {x.Length} values, not a multiple of d = {d}", nameof(x));
        int n = x.Length / d;
        var a = PriorLevels.AlphaBars(alphaBar, timesteps, n, Op);
        var eps = new double[n * d];
        var xi = new double[d];
        var cache = new Dictionary<double, GaussianMixtureDistribution>();
        for (int item = 0; item < n; item++)
        {
            for (int i = 0; i < d; i++) xi[i] = x[item * d + i];
            if (!cache.TryGetValue(a[item], out var marginal)) cache[a[item]] = marginal = Mixture.AtNoiseLevel(a[item]);
            var s = marginal.Score(xi);
            double f = -Math.Sqrt(1 - a[item]);
            for (int i = 0; i < d; i++) eps[item * d + i] = f * s[i];
        }
        return eps;
    }

    /// <summary>Frees the device copies of the eigendecompositions and the work buffers.</summary>
    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        bases.Dispose();
        shifts.Dispose();
        lambdas.Dispose();
        logWeights.Dispose();
        zeroShifts.Dispose();
        pool.Dispose();
    }
}

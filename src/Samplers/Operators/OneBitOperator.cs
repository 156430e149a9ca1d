using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Operators;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Reductions;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Samplers.Operators;

/// <summary>
/// One-bit dithered quantized sensing: y = sign(A vec(x) + tau) in {-1, +1}^m (sign(0) = +1), with an
/// m x d Gaussian matrix A and a dither tau uniform in [-lambda, lambda], both seeded. Nonlinear.
/// With Gaussian noise before the quantizer, y = sign(A x + tau + sigma e), the likelihood is probit:
/// p(y_i | x) = Phi(u_i), u_i = y_i (a_i^T x + tau_i) / sigma, so
/// grad log p(y | x) = A^T [y_i R(u_i) / sigma] with R = phi / Phi (the <see cref="ProbitWeights"/> kernel; double
/// references in <see cref="Probit"/>), evaluated stably for very negative u (no NaN). Its kernels:
/// <see cref="SignQuantize"/>, <see cref="ProbitWeights"/> and a GEMM.
/// Holds device memory (its data and a scratch pool): dispose it. Not thread-safe on its own; samplers call it within their turn on the device.
/// </summary>
public sealed class OneBitOperator : ForwardOperator, ILogLikelihood
{
    private readonly float[] matrix;
    private readonly float[] dither;
    private readonly Tensor matrixTensor;
    private readonly Tensor ditherTensor;

    /// <summary>An operator with a seeded Gaussian matrix (entries N(0, 1/m), or N(0, <paramref name="entryStd"/>^2))
    /// and a seeded dither uniform in [-<paramref name="ditherRange"/>, <paramref name="ditherRange"/>].</summary>
    public OneBitOperator(GpuDevice device, int[] inputShape, int m, float ditherRange, ulong seed, float? entryStd = null)
        : this(device, inputShape, m,
            GaussianMatrix.CreateOnStream(m, Shape.Elements(inputShape), seed, RandomStreams.OneBitMatrix, entryStd ?? 1f / MathF.Sqrt(m)),
            UniformDither(m, ditherRange, seed)) { }

    /// <summary>An operator with the given row-major m x d matrix and m dither values.</summary>
    /// <exception cref="ArgumentException">The matrix or dither does not fit m and the input shape.</exception>
    public OneBitOperator(GpuDevice device, int[] inputShape, int m, float[] matrix, float[] dither)
        : base(device, "one-bit", inputShape, [m])
    {
        int d = Shape.Elements(inputShape);
        if (m < 1 || matrix.Length != (long)m * d)
            throw new ArgumentException(
                $"operator one-bit: expected a {m} x {d} matrix ({(long)m * d} values) for input shape {Shape.Format(inputShape)} but got {matrix.Length} values");
        if (dither.Length != m)
            throw new ArgumentException($"operator one-bit: expected {m} dither values but got {dither.Length}");
        this.matrix = (float[])matrix.Clone();
        this.dither = (float[])dither.Clone();
        matrixTensor = Tensor.FromHost(device, matrix, m, d);
        ditherTensor = Tensor.FromHost(device, dither, m);
    }

    /// <summary>m dither values uniform in [-range, range] from Philox with <paramref name="seed"/>.</summary>
    public static float[] UniformDither(int m, float range, ulong seed)
    {
        if (!(range >= 0) || float.IsInfinity(range))
            throw new ArgumentOutOfRangeException(nameof(range), range, "operator one-bit: the dither range must be >= 0 and finite");
        var draw = new RandomDraw(seed, RandomStreams.OneBitDither, 0);
        var t = new float[m];
        for (int i = 0; i < m; i++) t[i] = range * (2f * draw.Uniform(i) - 1f);
        return t;
    }

    /// <inheritdoc/>
    public override bool IsLinear => false;

    /// <summary>Rows m of A (bits per measurement).</summary>
    public int Rows => MeasurementShape[0];

    /// <summary>Columns d of A.</summary>
    public int Columns => InputLength;

    /// <summary>A copy of A (row-major m x d).</summary>
    public float[] Matrix => (float[])matrix.Clone();

    /// <summary>A copy of the dither tau.</summary>
    public float[] Dither => (float[])dither.Clone();

    // ---- references -------------------------------------------------------------------------

    /// <summary>The specification of <see cref="Simulate"/>: sign(A x + tau + sigma z), z from <paramref name="draw"/>.</summary>
    public float[] SimulateReference(ReadOnlySpan<float> x, float sigma, RandomDraw draw)
    {
        ItemsOf(x, InputLength, "input");
        var u = GaussianMatrix.MultiplyReference(matrix, Rows, Columns, x, dither);
        SignQuantize.Reference(u, sigma, draw);
        return u;
    }

    /// <inheritdoc/>
    public override float[] ForwardReference(ReadOnlySpan<float> x) => SimulateReference(x, 0f, default);

    /// <summary>The probit log-likelihood sum_i log Phi(y_i (a_i^T x + tau_i) / sigma) per item, all in
    /// double (x too, so tests can take finite differences of it).</summary>
    public double[] LogLikelihoodReference(ReadOnlySpan<double> x, ReadOnlySpan<float> y, double sigma)
    {
        if (x.Length % InputLength != 0) throw new ArgumentException($"operator one-bit: {x.Length} input values are not whole items of {InputLength}");
        int n = x.Length / InputLength;
        var ll = new double[n];
        for (int item = 0; item < n; item++)
            for (int i = 0; i < Rows; i++)
            {
                double acc = dither[i];
                for (int j = 0; j < Columns; j++) acc += matrix[(long)i * Columns + j] * x[item * Columns + j];
                ll[item] += Probit.LogCdfReference(y[item * Rows + i] * acc / sigma);
            }
        return ll;
    }

    /// <inheritdoc/>
    public override float[] LogLikelihoodGradientReference(ReadOnlySpan<float> x, ReadOnlySpan<float> y, float sigma)
    {
        ItemsOf(x, InputLength, "input");
        var t = GaussianMatrix.MultiplyReference(matrix, Rows, Columns, x, dither);
        if (t.Length != y.Length)
            throw new ArgumentException($"operator one-bit: {y.Length} measurement values but A x has {t.Length}");
        for (int i = 0; i < t.Length; i++)
            t[i] = (float)(y[i] * Probit.InverseMillsRatioReference((double)y[i] * t[i] / sigma) / sigma);
        return GaussianMatrix.TransposeMultiplyReference(matrix, Rows, Columns, t);
    }

    // ---- device ------------------------------------------------------------------------------

    private void Affine(Tensor x, Tensor u)
    {
        using var flat = x.Reshape(x.N, Columns);
        Kernels.Gemm.Gemm.Run(flat, false, matrixTensor, true, u, 1f, 0f, ditherTensor);
    }

    /// <inheritdoc/>
    protected override void ForwardCore(Tensor x, Tensor y)
    {
        Affine(x, y);
        SignQuantize.Run(y, 0f, default);
    }

    /// <summary>A noisy measurement y = sign(A x + tau + sigma z), z ~ N(0, I) drawn from <paramref name="draw"/>: the
    /// noise enters before the quantizer, the model whose probit likelihood
    /// <see cref="IForwardOperator.LogLikelihoodGradient"/> differentiates (noise added to the signs would not be).</summary>
    /// <exception cref="ArgumentException">x or y does not have the operator's shapes.</exception>
    /// <exception cref="ArgumentOutOfRangeException">sigma is negative or not finite.</exception>
    public override void Simulate(Tensor x, float sigma, RandomDraw draw, Tensor y)
    {
        int n = ValidateInput(x);
        ValidateMeasurement(y, n);
        Measurements.RequireNoiseLevel(sigma, "operator one-bit");
        Affine(x, y);
        SignQuantize.Run(y, sigma, draw);
    }

    /// <summary>The fraction of measured signs that sign(A x + tau) reproduces: a residual norm of signs says little.</summary>
    public override MeasurementDiscrepancy Discrepancy => MeasurementDiscrepancy.SignAgreement;

    /// <summary>The back-projection A^T y of the signs, stretched to [-1, 1] per image (computed on the host: the
    /// operator is nonlinear and has no adjoint of its own).</summary>
    /// <exception cref="ArgumentException">y does not have the operator's measurement shape.</exception>
    public override float[] Preview(Tensor y)
    {
        int n = ValidateMeasurement(y);
        var host = y.ToHost();
        int m = Rows, d = Columns;
        var result = new float[n * d];
        for (int k = 0; k < n; k++)
            for (int r = 0; r < m; r++)
            {
                float v = host[k * m + r];
                for (int i = 0; i < d; i++) result[k * d + i] += matrix[(long)r * d + i] * v;
            }
        MeasurementPreview.Stretch(result, n);
        return result;
    }

    /// <inheritdoc/>
    protected override void LogLikelihoodGradientCore(Tensor x, Tensor y, float sigma, Tensor grad)
    {
        using var t = Pool.Rent(y.Shape);
        Affine(x, t);
        ProbitWeights.Run(y, t, 1f / sigma);
        using var flat = grad.Reshape(grad.N, Columns);
        Kernels.Gemm.Gemm.Run(t, false, matrixTensor, false, flat);
    }

    /// <summary>The probit log-likelihood sum_i log Phi(y_i (a_i^T x + tau_i) / sigma) per item (what a Metropolis-adjusted
    /// step and LGD-MC's particle weights need), all on the device: A x + tau by the GEMM, the m log-CDF terms by
    /// <see cref="ProbitLogCdf"/> (double inside, each term within about 1.2e-7 of log Phi), their per-item sum by
    /// <see cref="BatchReduce"/>; nothing is read back, so a sampler step stays free of host synchronisation.</summary>
    /// <exception cref="ArgumentException">x, y or logLikelihood does not have the operator's shapes.</exception>
    /// <exception cref="ArgumentOutOfRangeException">sigma is not positive and finite.</exception>
    public void LogLikelihood(Tensor x, Tensor y, float sigma, Tensor logLikelihood)
    {
        int n = ValidateInput(x);
        ValidateMeasurement(y, n);
        if (!(sigma > 0) || float.IsInfinity(sigma))
            throw new ArgumentOutOfRangeException(nameof(sigma), sigma, $"operator {Name}: the noise level sigma must be positive and finite");
        Shape.Require("operator one-bit", logLikelihood, "logLikelihood", n);
        using var t = Pool.Rent([n, Rows]);
        Affine(x, t);
        ProbitLogCdf.Run(y, t, 1f / sigma);
        BatchReduce.Sum(t, logLikelihood);
    }

    /// <inheritdoc/>
    protected override void DisposeDeviceData()
    {
        matrixTensor.Dispose();
        ditherTensor.Dispose();
    }
}

using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Samplers.Operators;

/// <summary>
/// How far a sample x is from a measurement y, one number per item, as a report states it: the residual
/// ||A(x) - y|| / sigma_y (about sqrt(m) for a draw consistent with Gaussian noise), or for sign measurements the
/// fraction of measured signs that A(x) reproduces. Each operator names its own
/// (<see cref="IForwardOperator.Discrepancy"/>); the two built-in kinds are <see cref="ResidualOverSigma"/> and
/// <see cref="SignAgreement"/>. Subclass it for a measure of your own.
/// </summary>
public abstract class MeasurementDiscrepancy
{
    /// <summary>Sets the names a report shows.</summary>
    protected MeasurementDiscrepancy(string name, string label, string format)
    {
        Name = name;
        Label = label;
        Format = format;
    }

    /// <summary>||A(x) - y|| / sigma_y, accumulated in double (the default of every operator with Gaussian noise on A(x)).</summary>
    public static MeasurementDiscrepancy ResidualOverSigma { get; } = new ResidualNorm();

    /// <summary>The fraction of the m entries where A(x) equals y, for measurements of signs in {-1, +1}
    /// (<see cref="OneBitOperator"/>, where a residual norm says little).</summary>
    public static MeasurementDiscrepancy SignAgreement { get; } = new Signs();

    /// <summary>A key for machine-readable reports, e.g. "residual_over_sigma" (metrics.json appends _samples and _truth).</summary>
    public string Name { get; }

    /// <summary>What a console line calls it, e.g. "||A x - y|| / sigma_y".</summary>
    public string Label { get; }

    /// <summary>A .NET numeric format string that shows a value well, e.g. "F1" or "P1" for a fraction.</summary>
    public string Format { get; }

    /// <summary>The specification: the discrepancy of one item from its noise-free A(x) and its measurement y (m values each).</summary>
    /// <exception cref="ArgumentException">ax and y differ in length or are empty.</exception>
    public abstract double OfItem(ReadOnlySpan<float> ax, ReadOnlySpan<float> y, double sigma);

    /// <summary>
    /// The discrepancy of each item of x [N, ...InputShape] against y [N, ...MeasurementShape]: computes A(x) with
    /// <paramref name="op"/> (on the device), copies it and y to the host, and applies <see cref="OfItem"/> per item.
    /// For reports after a run, not for a sampler's inner loop (it allocates).
    /// </summary>
    /// <exception cref="ArgumentException">A shape does not match the operator.</exception>
    /// <exception cref="ArgumentOutOfRangeException">sigma is not positive and finite.</exception>
    public double[] Evaluate(IForwardOperator op, Tensor x, Tensor y, double sigma)
    {
        ArgumentNullException.ThrowIfNull(op);
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        if (!(sigma > 0) || double.IsInfinity(sigma))
            throw new ArgumentOutOfRangeException(nameof(sigma), sigma, $"operator {op.Name}: the discrepancy needs sigma positive and finite");
        using var ax = Tensor.Empty(x.Device, y.Shape);
        op.Forward(x, ax);
        var a = ax.ToHost();
        var yHost = y.ToHost();
        int n = y.N, m = n == 0 ? 0 : a.Length / n;
        var result = new double[n];
        for (int i = 0; i < n; i++) result[i] = OfItem(a.AsSpan(i * m, m), yHost.AsSpan(i * m, m), sigma);
        return result;
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Name} ({Label})";

    private static void Check(ReadOnlySpan<float> ax, ReadOnlySpan<float> y)
    {
        if (ax.Length != y.Length || y.Length == 0)
            throw new ArgumentException($"discrepancy: A(x) has {ax.Length} values and y {y.Length}; they must match and not be empty");
    }

    private sealed class ResidualNorm() : MeasurementDiscrepancy("residual_over_sigma", "||A x - y|| / sigma_y", "F1")
    {
        public override double OfItem(ReadOnlySpan<float> ax, ReadOnlySpan<float> y, double sigma)
        {
            Check(ax, y);
            double sum = 0;
            for (int j = 0; j < y.Length; j++)
            {
                double r = ax[j] - y[j];
                sum += r * r;
            }
            return Math.Sqrt(sum) / sigma;
        }
    }

    private sealed class Signs() : MeasurementDiscrepancy("sign_agreement", "signs reproduced", "P1")
    {
        public override double OfItem(ReadOnlySpan<float> ax, ReadOnlySpan<float> y, double sigma)
        {
            Check(ax, y);
            int agree = 0;
            for (int j = 0; j < y.Length; j++) if (ax[j] == y[j]) agree++;
            return (double)agree / y.Length;
        }
    }
}

using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Operators;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Samplers.Operators;

/// <summary>
/// Shared plumbing of the forward operators: shape and device checks with clear messages, a
/// <see cref="TensorPool"/> for intermediates (so repeated calls allocate nothing after the first),
/// host references for tests, and disposal of the operator's device data. The task members
/// (<see cref="Simulate"/>, <see cref="Discrepancy"/>, <see cref="Preview"/>) are virtual with the interface's
/// defaults; an operator overrides the ones its measurement needs. Not thread-safe.
/// </summary>
public abstract class ForwardOperator : IForwardOperator, IDisposable
{
    private readonly int[] inputShape;
    private readonly int[] measurementShape;
    private bool disposed;

    /// <summary>Sets the device, name and per-item shapes.</summary>
    protected ForwardOperator(GpuDevice device, string name, int[] inputShape, int[] measurementShape)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (inputShape.Length == 0 || inputShape.Any(d => d <= 0))
            throw new ArgumentException($"operator {name}: input shape {Shape.Format(inputShape)} must have positive dimensions");
        Device = device;
        Name = name;
        this.inputShape = (int[])inputShape.Clone();
        this.measurementShape = (int[])measurementShape.Clone();
        Pool = new TensorPool(device);
    }

    /// <summary>The device the operator's data lives on; inputs must live there too.</summary>
    public GpuDevice Device { get; }

    /// <inheritdoc/>
    public string Name { get; }

    /// <inheritdoc/>
    public int[] InputShape => (int[])inputShape.Clone();

    /// <inheritdoc/>
    public int[] MeasurementShape => (int[])measurementShape.Clone();

    /// <summary>Elements of one input item.</summary>
    public int InputLength => Shape.Elements(inputShape);

    /// <summary>Elements of one measurement.</summary>
    public int MeasurementLength => Shape.Elements(measurementShape);

    /// <inheritdoc/>
    public abstract bool IsLinear { get; }

    /// <summary>Intermediates of one call, rented and returned within the call.</summary>
    protected TensorPool Pool { get; }

    /// <summary>Scratch tensors rented and not yet returned (0 between calls; tests check it).</summary>
    internal int ScratchOutstanding => Pool.Outstanding;

    /// <inheritdoc/>
    public void Forward(Tensor x, Tensor y)
    {
        int n = ValidateInput(x, "input");
        ValidateMeasurement(y, n);
        ForwardCore(x, y);
    }

    /// <inheritdoc/>
    public void LogLikelihoodGradient(Tensor x, Tensor y, float sigma, Tensor grad)
    {
        int n = ValidateInput(x, "input");
        ValidateMeasurement(y, n);
        ValidateInput(grad, "gradient", n);
        if (!(sigma > 0) || float.IsInfinity(sigma))
            throw new ArgumentOutOfRangeException(nameof(sigma), sigma, $"operator {Name}: the noise level sigma must be positive and finite");
        LogLikelihoodGradientCore(x, y, sigma, grad);
    }

    /// <inheritdoc/>
    public virtual void Simulate(Tensor x, float sigma, RandomDraw draw, Tensor y)
    {
        int n = ValidateInput(x, "input");
        ValidateMeasurement(y, n);
        Measurements.AddedGaussian(this, x, sigma, draw, y);
    }

    /// <inheritdoc/>
    public virtual MeasurementDiscrepancy Discrepancy => MeasurementDiscrepancy.ResidualOverSigma;

    /// <inheritdoc/>
    public virtual float[] Preview(Tensor y)
    {
        ValidateMeasurement(y);
        return MeasurementPreview.Default(this, y);
    }

    /// <summary>y = A(x), shapes already checked.</summary>
    protected abstract void ForwardCore(Tensor x, Tensor y);

    /// <summary>The log-likelihood gradient, shapes and sigma already checked.</summary>
    protected abstract void LogLikelihoodGradientCore(Tensor x, Tensor y, float sigma, Tensor grad);

    /// <summary>The specification of <see cref="Forward"/> on the host: x holds whole items; returns y.</summary>
    public abstract float[] ForwardReference(ReadOnlySpan<float> x);

    /// <summary>The specification of <see cref="LogLikelihoodGradient"/> on the host.</summary>
    public abstract float[] LogLikelihoodGradientReference(ReadOnlySpan<float> x, ReadOnlySpan<float> y, float sigma);

    /// <summary>Checks that x is [N, ...InputShape] on this device (N = <paramref name="batch"/> when given); returns N.</summary>
    /// <exception cref="ArgumentException">The shape or device does not match; the message names both shapes.</exception>
    public int ValidateInput(Tensor x, string what = "input", int? batch = null) => Validate(x, what, inputShape, batch);

    /// <summary>Checks that y is [N, ...MeasurementShape] on this device (N = <paramref name="batch"/> when given); returns N.</summary>
    /// <exception cref="ArgumentException">The shape or device does not match; the message names both shapes.</exception>
    public int ValidateMeasurement(Tensor y, int? batch = null) => Validate(y, "measurement", measurementShape, batch);

    private int Validate(Tensor t, string what, int[] item, int? batch)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        ArgumentNullException.ThrowIfNull(t);
        var s = t.Shape;
        bool ok = s.Length == item.Length + 1 && s.AsSpan(1).SequenceEqual(item) && (batch is null || s[0] == batch);
        if (!ok)
        {
            string n = batch is { } b ? b.ToString() : "N";
            throw new ArgumentException(
                $"operator {Name}: expected {what} of shape [{n}, {string.Join(", ", item)}] but got {Shape.Format(s)}");
        }
        if (!ReferenceEquals(t.Device, Device))
            throw new ArgumentException(
                $"operator {Name}: the {what} lives on {t.Device.Description} but the operator on {Device.Description}");
        return s[0];
    }

    /// <summary>Items in a host array of whole inputs (throws when the length is not a multiple).</summary>
    protected int ItemsOf(ReadOnlySpan<float> values, int itemLength, string what)
    {
        if (itemLength == 0 || values.Length % itemLength != 0)
            throw new ArgumentException($"operator {Name}: {values.Length} {what} values are not whole items of {itemLength}");
        return values.Length / itemLength;
    }

    /// <summary>Frees the operator's own device tensors (the pool is freed by the base).</summary>
    protected virtual void DisposeDeviceData() { }

    /// <summary>Frees the operator's device memory.</summary>
    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        DisposeDeviceData();
        Pool.Dispose();
        GC.SuppressFinalize(this);
    }

    /// <inheritdoc/>
    public override string ToString() =>
        $"{Name}: {Shape.Format(inputShape)} -> {Shape.Format(measurementShape)}{(IsLinear ? " (linear)" : "")}";
}

/// <summary>
/// A linear operator: adds the adjoint and gives the Gaussian log-likelihood gradient
/// A^T (y - A x) / sigma^2 as forward, a residual kernel and the adjoint.
/// Holds device memory: dispose it. Not thread-safe (as ForwardOperator).
/// </summary>
public abstract class LinearOperator : ForwardOperator, ILinearOperator
{
    /// <summary>Sets the device, name and per-item shapes.</summary>
    protected LinearOperator(GpuDevice device, string name, int[] inputShape, int[] measurementShape)
        : base(device, name, inputShape, measurementShape) { }

    /// <inheritdoc/>
    public sealed override bool IsLinear => true;

    /// <inheritdoc/>
    public void Adjoint(Tensor y, Tensor x)
    {
        int n = ValidateMeasurement(y);
        ValidateInput(x, "input", n);
        AdjointCore(y, x);
    }

    /// <summary>x = A^T y, shapes already checked.</summary>
    protected abstract void AdjointCore(Tensor y, Tensor x);

    /// <summary>The specification of <see cref="Adjoint"/> on the host: y holds whole measurements; returns x.</summary>
    public abstract float[] AdjointReference(ReadOnlySpan<float> y);

    /// <inheritdoc/>
    protected override void LogLikelihoodGradientCore(Tensor x, Tensor y, float sigma, Tensor grad)
    {
        using var r = Pool.Rent(y.Shape);
        ForwardCore(x, r);
        Residual.Run(y, r, 1f / (sigma * sigma));
        AdjointCore(r, grad);
    }

    /// <inheritdoc/>
    public override float[] LogLikelihoodGradientReference(ReadOnlySpan<float> x, ReadOnlySpan<float> y, float sigma)
    {
        var ax = ForwardReference(x);
        if (ax.Length != y.Length)
            throw new ArgumentException($"operator {Name}: {y.Length} measurement values but A x has {ax.Length}");
        var r = new float[y.Length];
        Residual.Reference(y, ax, 1f / (sigma * sigma), r);
        return AdjointReference(r);
    }
}

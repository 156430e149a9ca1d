using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Samplers.Operators;

/// <summary>
/// The measurement model y = A(x) + noise, on batches: x [N, ...InputShape] to y [N, ...MeasurementShape].
/// Passed to a posterior sampler per call (as deepinv's physics). Operators hold device memory for
/// their parameters and scratch: dispose them. Not thread-safe.
/// </summary>
public interface IForwardOperator : IDisposable
{
    /// <summary>A short name for messages.</summary>
    string Name { get; }

    /// <summary>The shape of one input item, e.g. [C, H, W].</summary>
    int[] InputShape { get; }

    /// <summary>The shape of one measurement item, e.g. [m].</summary>
    int[] MeasurementShape { get; }

    /// <summary>y = A(x).</summary>
    void Forward(Tensor x, Tensor y);

    /// <summary>grad = the gradient in x of log p(y | x) for Gaussian noise of standard deviation sigma
    /// (for a linear operator A^T (y - A x) / sigma^2).</summary>
    void LogLikelihoodGradient(Tensor x, Tensor y, float sigma, Tensor grad);
}

/// <summary>A linear measurement operator: it has an adjoint, &lt;A x, y&gt; = &lt;x, A^T y&gt;.</summary>
public interface ILinearOperator : IForwardOperator
{
    /// <summary>x = A^T y.</summary>
    void Adjoint(Tensor y, Tensor x);
}

/// <summary>Shared parts of linear operators: shape checks and the Gaussian log-likelihood gradient
/// A^T (y - A x) / sigma^2 through Forward and Adjoint.</summary>
public abstract class LinearOperator : ILinearOperator
{
    private readonly Dictionary<int, Tensor> residuals = new();

    /// <inheritdoc/>
    public abstract string Name { get; }

    /// <inheritdoc/>
    public abstract int[] InputShape { get; }

    /// <inheritdoc/>
    public abstract int[] MeasurementShape { get; }

    /// <inheritdoc/>
    public abstract void Forward(Tensor x, Tensor y);

    /// <inheritdoc/>
    public abstract void Adjoint(Tensor y, Tensor x);

    /// <summary>Throws unless x is [N, ...InputShape].</summary>
    protected void CheckInput(Tensor x) => CheckShape(x, InputShape, "input");

    /// <summary>Throws unless y is [N, ...MeasurementShape] with the given N.</summary>
    protected void CheckMeasurement(Tensor y, int n)
    {
        CheckShape(y, MeasurementShape, "measurement");
        if (y.N != n) throw new ArgumentException($"{Name}: the measurement batch {Shape.Format(y.Shape)} does not match the input batch of {n}");
    }

    private void CheckShape(Tensor t, int[] item, string what)
    {
        if (t.Rank != item.Length + 1 || !t.Shape.AsSpan(1).SequenceEqual(item))
            throw new ArgumentException($"{Name}: expected {what} of shape [N, {string.Join(", ", item)}] but got {Shape.Format(t.Shape)}");
    }

    /// <inheritdoc/>
    public void LogLikelihoodGradient(Tensor x, Tensor y, float sigma, Tensor grad)
    {
        if (!(sigma > 0)) throw new ArgumentOutOfRangeException(nameof(sigma), sigma, $"{Name}: the noise level sigma must be positive");
        CheckInput(x);
        CheckMeasurement(y, x.N);
        if (!residuals.TryGetValue(y.Length, out var r))
            residuals[y.Length] = r = Tensor.Empty(y.Device, y.Shape);
        using var view = r.Reshape(y.Shape);
        Forward(x, view);
        float inv = 1f / (sigma * sigma);
        Axpby.Run(inv, y, -inv, view);   // (y - A x) / sigma^2
        Adjoint(view, grad);
    }

    /// <summary>Frees the operator's device memory.</summary>
    public virtual void Dispose()
    {
        foreach (var r in residuals.Values) r.Dispose();
        residuals.Clear();
    }
}

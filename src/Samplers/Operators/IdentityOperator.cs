using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Samplers.Operators;

/// <summary>
/// The identity, A = I: y = x + noise, denoising. Linear and self-adjoint; the measurement has the input's shape.
/// With a Gaussian prior N(m, C) the posterior is N(m + C (C + sigma^2 I)^-1 (y - m), C - C (C + sigma^2 I)^-1 C),
/// which makes it the first exact check of a posterior sampler.
/// Holds device memory only in its scratch pool: dispose it. Not thread-safe on its own; samplers call it within their turn on the device.
/// </summary>
public sealed class IdentityOperator : LinearOperator
{
    /// <summary>The identity on inputs of shape <paramref name="inputShape"/> (e.g. [C, H, W] or [d]).</summary>
    /// <exception cref="ArgumentException">The shape is empty or has a dimension below 1.</exception>
    public IdentityOperator(GpuDevice device, int[] inputShape)
        : base(device, "identity", inputShape, inputShape) { }

    /// <inheritdoc/>
    protected override void ForwardCore(Tensor x, Tensor y)
    {
        if (!ReferenceEquals(x, y)) y.CopyFrom(x);
    }

    /// <inheritdoc/>
    protected override void AdjointCore(Tensor y, Tensor x)
    {
        if (!ReferenceEquals(x, y)) x.CopyFrom(y);
    }

    /// <inheritdoc/>
    public override float[] ForwardReference(ReadOnlySpan<float> x)
    {
        ItemsOf(x, InputLength, "input");
        return x.ToArray();
    }

    /// <inheritdoc/>
    public override float[] AdjointReference(ReadOnlySpan<float> y)
    {
        ItemsOf(y, MeasurementLength, "measurement");
        return y.ToArray();
    }

    /// <summary>The noisy images y themselves.</summary>
    /// <exception cref="ArgumentException">y does not have the operator's measurement shape.</exception>
    public override float[] Preview(Tensor y)
    {
        ValidateMeasurement(y);
        return y.ToHost();
    }
}

using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Samplers.Operators;

/// <summary>
/// The measurement model y = A(x) + noise, batched: x [N, ...InputShape] (images: [N, C, H, W])
/// to y [N, ...MeasurementShape]. Samplers receive the operator per call (as deepinv's physics)
/// and know a measurement only through this interface. Besides A and its likelihood gradient, an operator owns
/// its task: how a noisy measurement is simulated (<see cref="Simulate"/>), how far a sample is from y
/// (<see cref="Discrepancy"/>) and how y looks as an image (<see cref="Preview"/>); the three have defaults, so an
/// operator of your own needs only the four members above them.
/// </summary>
public interface IForwardOperator
{
    /// <summary>A short name used in error messages (e.g. "inpainting").</summary>
    string Name { get; }

    /// <summary>The shape of one input item, [C, H, W] for images.</summary>
    int[] InputShape { get; }

    /// <summary>The shape of one measurement, e.g. [m], [C, H/2, W/2] or [C, H, W, 2].</summary>
    int[] MeasurementShape { get; }

    /// <summary>True when A is linear (then the operator is an <see cref="ILinearOperator"/>).</summary>
    bool IsLinear { get; }

    /// <summary>y = A(x) (noise-free).</summary>
    /// <exception cref="ArgumentException">x or y does not have the operator's shapes (the message names both).</exception>
    void Forward(Tensor x, Tensor y);

    /// <summary>
    /// grad = the gradient in x of log p(y | x) for measurement noise level <paramref name="sigma"/>:
    /// A^T (y - A x) / sigma^2 for linear operators; the operator's own formula otherwise.
    /// </summary>
    /// <exception cref="ArgumentException">A shape does not match, or sigma is not positive and finite.</exception>
    void LogLikelihoodGradient(Tensor x, Tensor y, float sigma, Tensor grad);

    /// <summary>
    /// A simulated noisy measurement of x with noise level <paramref name="sigma"/> and z ~ N(0, I) from
    /// <paramref name="draw"/>: the model that <see cref="LogLikelihoodGradient"/> differentiates. Default:
    /// y = A(x) + sigma z. An operator whose noise enters elsewhere overrides it (one-bit sensing quantizes after the
    /// noise, y = sign(A x + tau + sigma z)).
    /// </summary>
    /// <exception cref="ArgumentException">x or y does not have the operator's shapes.</exception>
    /// <exception cref="ArgumentOutOfRangeException">sigma is negative or not finite.</exception>
    void Simulate(Tensor x, float sigma, RandomDraw draw, Tensor y) => Measurements.AddedGaussian(this, x, sigma, draw, y);

    /// <summary>How reports measure a sample against y (<see cref="MeasurementDiscrepancy.Evaluate"/>). Default: the
    /// residual norm ||A(x) - y|| / sigma_y; sign measurements use the fraction of signs reproduced.</summary>
    MeasurementDiscrepancy Discrepancy => MeasurementDiscrepancy.ResidualOverSigma;

    /// <summary>
    /// The measurements y [N, ...MeasurementShape] shown as N images of the input's shape, host values meant for
    /// [-1, 1] (the images' range), for a grid beside the truth and the samples. Default
    /// (<see cref="MeasurementPreview.Default"/>): a linear operator's back-projection A^T y stretched to [-1, 1] per
    /// image, mid grey for a nonlinear one; the library's operators show what their measurement looks like.
    /// </summary>
    /// <exception cref="ArgumentException">y does not have the operator's measurement shape.</exception>
    float[] Preview(Tensor y) => MeasurementPreview.Default(this, y);
}

/// <summary>A linear forward operator: A(x) = A x, with the adjoint (transpose) A^T.</summary>
public interface ILinearOperator : IForwardOperator
{
    /// <summary>x = A^T y, the adjoint for the real inner products of input and measurement space.</summary>
    /// <exception cref="ArgumentException">x or y does not have the operator's shapes.</exception>
    void Adjoint(Tensor y, Tensor x);
}

using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Samplers.Operators;

/// <summary>
/// The measurement model y = A(x) + noise, batched: x [N, ...InputShape] (images: [N, C, H, W])
/// to y [N, ...MeasurementShape]. Samplers receive the operator per call (as deepinv's physics)
/// and know a measurement only through this interface.
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
}

/// <summary>A linear forward operator: A(x) = A x, with the adjoint (transpose) A^T.</summary>
public interface ILinearOperator : IForwardOperator
{
    /// <summary>x = A^T y, the adjoint for the real inner products of input and measurement space.</summary>
    /// <exception cref="ArgumentException">x or y does not have the operator's shapes.</exception>
    void Adjoint(Tensor y, Tensor x);
}

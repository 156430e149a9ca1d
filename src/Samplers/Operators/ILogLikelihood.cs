using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Samplers.Operators;

/// <summary>
/// An operator whose measurement model is not y = A(x) + sigma z with Gaussian z gives its own log-likelihood here
/// (e.g. one-bit sensing's probit). Samplers that need the log density itself, not only its gradient (a
/// Metropolis-adjusted step), use it; operators without it have the Gaussian -||y - A(x)||^2 / (2 sigma^2).
/// </summary>
public interface ILogLikelihood
{
    /// <summary>logLikelihood[n] = log p(y_n | x_n) up to a constant that does not depend on x, for noise level
    /// <paramref name="sigma"/>; x is [N, ...InputShape], y [N, ...MeasurementShape], logLikelihood [N].</summary>
    void LogLikelihood(Tensor x, Tensor y, float sigma, Tensor logLikelihood);

    /// <summary>
    /// From a log-likelihood [N], the squared residual -2 sigma^2 log p(y | x) that DPS's and LGD-MC's
    /// residual-norm rule divides its step sigma^2 grad log p by. For the Gaussian model it is ||y - A x||^2 (the rule's
    /// own form), so the step stays the gradient of a norm, sqrt(-2 sigma^2 log p); normalising a likelihood's gradient by
    /// some other residual does not: for one-bit sensing, the count of wrong signs let the step grow with the margins of the
    /// wrong signs until the chain exploded. This needs log p with its supremum at 0, as the probit's sum of log Phi has
    /// (an implementation whose constant differs does not serve the rule).
    /// </summary>
    static void SquaredResidual(Tensor logLikelihood, float sigma, Tensor squaredResidual) =>
        Affine.Run(logLikelihood, -2f * sigma * sigma, 0f, squaredResidual);
}

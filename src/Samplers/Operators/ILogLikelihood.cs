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
}

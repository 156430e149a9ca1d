using MathNet.Numerics.LinearAlgebra;

namespace PosteriorGpu.Models.Priors;

/// <summary>
/// The exact posterior of a Gaussian-mixture prior sum_k w_k N(mu_k, Sigma_k) under y = A x + sigma_y z:
/// the mixture of the component posteriors (<see cref="GaussianPosterior"/>) with weights proportional to
/// w_k N(y; A mu_k, A Sigma_k A^T + sigma_y^2 I) (Bayes' rule on the component label), normalised in log space.
/// </summary>
public static class GaussianMixturePosterior
{
    /// <summary>The posterior mixture given <paramref name="a"/> (m x d), y (m) and sigma_y &gt; 0.</summary>
    /// <exception cref="ArgumentException">Sizes disagree, or sigma_y is not positive and finite.</exception>
    public static GaussianMixtureDistribution Compute(GaussianMixtureDistribution prior, Matrix<double> a, IReadOnlyList<double> y, double sigmaY)
    {
        ArgumentNullException.ThrowIfNull(prior);
        var logWeights = new double[prior.Count];
        var components = new GaussianDistribution[prior.Count];
        for (int k = 0; k < prior.Count; k++)
        {
            var c = prior.Components[k];
            components[k] = GaussianPosterior.Compute(c, a, y, sigmaY);
            logWeights[k] = prior.LogWeights[k] + GaussianPosterior.LogEvidence(c, a, y, sigmaY);
        }
        return GaussianMixtureDistribution.FromLogWeights(logWeights, components);
    }

    /// <summary>As <see cref="Compute(GaussianMixtureDistribution, Matrix{double}, IReadOnlyList{double}, double)"/> with A
    /// given row-major as <paramref name="rows"/> x d floats.</summary>
    public static GaussianMixtureDistribution Compute(GaussianMixtureDistribution prior, ReadOnlySpan<float> aRowMajor, int rows, IReadOnlyList<double> y, double sigmaY) =>
        Compute(prior, GaussianPosterior.MatrixOf(aRowMajor, rows, prior.Dimension), y, sigmaY);
}

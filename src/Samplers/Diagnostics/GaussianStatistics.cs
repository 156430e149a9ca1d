namespace PosteriorGpu.Samplers.Diagnostics;

/// <summary>The mean and covariance of a set of feature vectors (the Gaussian a Frechet distance
/// compares), in double. The covariance is the unbiased sample covariance (divided by n - 1), as
/// numpy.cov and the reference FID code use.</summary>
public sealed class GaussianStatistics
{
    /// <summary>Wraps a mean of length d and a d x d covariance (row-major, not copied).</summary>
    /// <exception cref="ArgumentException">The lengths disagree.</exception>
    public GaussianStatistics(double[] mean, double[] covariance, int count)
    {
        if (mean.Length == 0 || covariance.Length != mean.Length * mean.Length)
            throw new ArgumentException($"gaussian statistics: a mean of {mean.Length} values needs a {mean.Length} x {mean.Length} covariance but got {covariance.Length} values");
        Mean = mean;
        Covariance = covariance;
        Count = count;
    }

    /// <summary>Feature dimension d.</summary>
    public int Dimension => Mean.Length;

    /// <summary>The mean, length d.</summary>
    public double[] Mean { get; }

    /// <summary>The covariance, d x d row-major.</summary>
    public double[] Covariance { get; }

    /// <summary>How many vectors the statistics summarise.</summary>
    public int Count { get; }

    /// <summary>The statistics of <paramref name="count"/> feature vectors of length <paramref name="dimension"/>, back to back.</summary>
    /// <exception cref="ArgumentException">Fewer than two vectors, or the length is not count x dimension.</exception>
    public static GaussianStatistics Of(ReadOnlySpan<float> features, int count, int dimension)
    {
        if (count < 2 || dimension < 1 || features.Length != (long)count * dimension)
            throw new ArgumentException($"gaussian statistics: need at least 2 vectors of {dimension} values but got {features.Length} values for {count}");
        var mean = new double[dimension];
        for (int n = 0; n < count; n++)
            for (int i = 0; i < dimension; i++) mean[i] += features[n * dimension + i];
        for (int i = 0; i < dimension; i++) mean[i] /= count;
        var cov = new double[dimension * dimension];
        var centred = new double[dimension];
        for (int n = 0; n < count; n++)
        {
            for (int i = 0; i < dimension; i++) centred[i] = features[n * dimension + i] - mean[i];
            for (int i = 0; i < dimension; i++)
            {
                double ci = centred[i];
                int row = i * dimension;
                for (int j = i; j < dimension; j++) cov[row + j] += ci * centred[j];
            }
        }
        for (int i = 0; i < dimension; i++)
            for (int j = i; j < dimension; j++)
            {
                double c = cov[i * dimension + j] / (count - 1);
                cov[i * dimension + j] = c;
                cov[j * dimension + i] = c;
            }
        return new GaussianStatistics(mean, cov, count);
    }
}

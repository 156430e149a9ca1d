using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.Classifier;

namespace PosteriorGpu.Samplers.Diagnostics;

/// <summary>
/// FID for MNIST-like images: the Frechet distance (<see cref="FrechetDistance"/>) between the Gaussians
/// fitted to a classifier's penultimate features of two image sets, as FID does with Inception-v3's pool
/// features (Heusel et al. 2017), but with a small MNIST classifier (models/mnist-classifier) instead, so
/// its values are comparable only with other values of the same classifier. Images are [N, 1, 32, 32]
/// in [-1, 1] (MNIST padded to 32 x 32). The estimate is biased upward for few images: compare sets of
/// equal size. Does not own the classifier.
/// </summary>
public sealed class MnistFid(ImageClassifier classifier, int batchSize = 500)
{
    /// <summary>The classifier whose features are compared.</summary>
    public ImageClassifier Classifier { get; } = classifier;

    /// <summary>The penultimate features [count, features] of <paramref name="images"/> (count images back to back).</summary>
    /// <exception cref="ArgumentException">The length is not a whole, positive number of images of the classifier's size.</exception>
    public float[] Features(ReadOnlySpan<float> images)
    {
        var c = Classifier.Config;
        int item = c.InChannels * c.ImageSize * c.ImageSize;
        if (images.Length == 0 || images.Length % item != 0)
            throw new ArgumentException($"fid: {images.Length} values are not a whole number of {c.InChannels}x{c.ImageSize}x{c.ImageSize} images");
        int count = images.Length / item, width = c.Features;
        var features = new float[(long)count * width];
        for (int start = 0; start < count; start += batchSize)
        {
            int n = Math.Min(batchSize, count - start);
            using var x = Tensor.FromHost(Classifier.Device, images.Slice(start * item, n * item), n, c.InChannels, c.ImageSize, c.ImageSize);
            Classifier.Forward(x);
            Classifier.Features.CopyTo(features.AsSpan(start * width, n * width));
        }
        return features;
    }

    /// <summary>The mean and covariance of the features of <paramref name="images"/> (at least two images).</summary>
    public GaussianStatistics Statistics(ReadOnlySpan<float> images)
    {
        var f = Features(images);
        int width = Classifier.Config.Features;
        return GaussianStatistics.Of(f, f.Length / width, width);
    }

    /// <summary>FID between two image sets.</summary>
    public double Distance(ReadOnlySpan<float> images, ReadOnlySpan<float> reference) =>
        FrechetDistance.Compute(Statistics(images), Statistics(reference));

    /// <summary>FID between an image set and precomputed reference statistics.</summary>
    public double Distance(ReadOnlySpan<float> images, GaussianStatistics reference) =>
        FrechetDistance.Compute(Statistics(images), reference);
}

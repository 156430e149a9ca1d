using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Models.Data;

namespace PosteriorGpu.Samplers.Diagnostics;

/// <summary>
/// A nonparametric reference for inpainting: fill each image's missing pixels with the average of the
/// k library images (e.g. the MNIST training set) that are nearest on its observed pixels. With the
/// training set as the library this is a k-nearest-neighbour estimate of the posterior mean E[x | y] under
/// the data distribution itself, so it says how far a posterior mean can beat a trivial fill on a given
/// mask when the prior is right, and measures how much of that margin a learned prior keeps.
/// Host code around one GEMM per block of the library (<see cref="NearestNeighbours.Nearest"/>). Stateless.
/// </summary>
public static class NearestNeighbourInpainting
{
    /// <summary>
    /// For <paramref name="count"/> measured images ([count, C, H, W]: the observed pixels are read, the
    /// missing ones ignored) and a <paramref name="missing"/> mask ([H, W], non-zero = missing, shared by the
    /// channels), returns the images with their missing pixels replaced by the mean of the k library images
    /// ([L, C, H, W]) nearest in Euclidean distance on the observed pixels.
    /// </summary>
    /// <exception cref="ArgumentException">Sizes do not fit, no pixel is observed, or k is not in 1..L.</exception>
    public static float[] Estimate(GpuDevice device, ReadOnlySpan<float> measured, int count, ReadOnlySpan<float> missing, int channels,
        float[] library, int k)
    {
        int plane = missing.Length, dim = channels * plane;
        if (count < 1 || measured.Length != count * dim)
            throw new ArgumentException($"nearest-neighbour inpainting: {measured.Length} measured values are not {count} images of {channels} x {plane} pixels");
        if (library.Length == 0 || library.Length % dim != 0)
            throw new ArgumentException($"nearest-neighbour inpainting: the library's {library.Length} values are not whole images of {dim} values");
        var observed = new float[dim];
        for (int i = 0; i < dim; i++) observed[i] = missing[i % plane] == 0 ? 1f : 0f;
        if (!observed.Contains(1f)) throw new ArgumentException("nearest-neighbour inpainting: the mask hides every pixel; nothing to match on");

        // Distances on the observed pixels only: zero the missing ones in both sets.
        var queries = Masked(measured, observed);
        var references = Masked(library, observed);
        var (index, _) = NearestNeighbours.Nearest(device, queries, references, dim, k);
        var result = measured.ToArray();
        for (int n = 0; n < count; n++)
            for (int i = 0; i < dim; i++)
            {
                if (observed[i] != 0) continue;
                double sum = 0;
                for (int r = 0; r < k; r++) sum += library[index[n * k + r] * dim + i];
                result[n * dim + i] = (float)(sum / k);
            }
        return result;
    }

    private static float[] Masked(ReadOnlySpan<float> images, float[] observed)
    {
        var result = images.ToArray();
        for (int i = 0; i < result.Length; i++) result[i] *= observed[i % observed.Length];
        return result;
    }
}

namespace PosteriorGpu.Samplers.Diagnostics;

/// <summary>Image quality against a ground truth, for images in [-1, 1] (data range 2): the L2 distance (Xun, Gupta
/// and Price's per-image metric), PSNR, PSNR over a subset of pixels, and SSIM as scikit-image computes it by default (7 x 7 uniform window, sample
/// covariance, K1 = 0.01, K2 = 0.03, mean over the windows that lie inside the image).</summary>
public static class ImageMetrics
{
    /// <summary>Peak-to-peak range of images in [-1, 1].</summary>
    public const double DataRange = 2.0;

    /// <summary>Side of the SSIM window.</summary>
    public const int SsimWindow = 7;

    /// <summary>||estimate - truth||_2 over all values of one image, in the images' own units ([-1, 1]: divide by 2 for
    /// images in [0, 1]).</summary>
    public static double L2(ReadOnlySpan<float> estimate, ReadOnlySpan<float> truth)
    {
        if (estimate.Length != truth.Length)
            throw new ArgumentException($"l2: the estimate has {estimate.Length} values but the truth {truth.Length}");
        double sum = 0;
        for (int i = 0; i < truth.Length; i++)
        {
            double d = estimate[i] - truth[i];
            sum += d * d;
        }
        return Math.Sqrt(sum);
    }

    /// <summary>10 log10(range^2 / MSE); infinity when the images are equal.</summary>
    public static double Psnr(ReadOnlySpan<float> estimate, ReadOnlySpan<float> truth) => Psnr(estimate, truth, default);

    /// <summary>PSNR over the pixels where <paramref name="select"/> is not zero (all pixels when it is
    /// empty); <paramref name="select"/> holds one value per element, or one per pixel of each plane
    /// when its length divides the image's. NaN when no pixel is selected.</summary>
    public static double Psnr(ReadOnlySpan<float> estimate, ReadOnlySpan<float> truth, ReadOnlySpan<float> select)
    {
        if (estimate.Length != truth.Length)
            throw new ArgumentException($"psnr: the estimate has {estimate.Length} values but the truth {truth.Length}");
        if (!select.IsEmpty && truth.Length % select.Length != 0)
            throw new ArgumentException($"psnr: a selection of {select.Length} values does not tile an image of {truth.Length}");
        double sum = 0;
        long count = 0;
        for (int i = 0; i < truth.Length; i++)
        {
            if (!select.IsEmpty && select[i % select.Length] == 0) continue;
            double d = estimate[i] - truth[i];
            sum += d * d;
            count++;
        }
        if (count == 0) return double.NaN;
        double mse = sum / count;
        return mse == 0 ? double.PositiveInfinity : 10 * Math.Log10(DataRange * DataRange / mse);
    }

    /// <summary>Mean SSIM of two images of <paramref name="channels"/> planes of <paramref name="height"/>
    /// x <paramref name="width"/> (the mean over the channels of each plane's SSIM).</summary>
    /// <exception cref="ArgumentException">Sizes differ, or a plane is smaller than the 7 x 7 window.</exception>
    public static double Ssim(ReadOnlySpan<float> estimate, ReadOnlySpan<float> truth, int channels, int height, int width)
    {
        int plane = height * width;
        if (estimate.Length != truth.Length || truth.Length != channels * plane)
            throw new ArgumentException($"ssim: expected two images of {channels} x {height} x {width} but got {estimate.Length} and {truth.Length} values");
        if (height < SsimWindow || width < SsimWindow)
            throw new ArgumentException($"ssim: images of {height} x {width} are smaller than the {SsimWindow} x {SsimWindow} window");
        double total = 0;
        for (int c = 0; c < channels; c++)
            total += SsimPlane(estimate.Slice(c * plane, plane), truth.Slice(c * plane, plane), height, width);
        return total / channels;
    }

    private static double SsimPlane(ReadOnlySpan<float> x, ReadOnlySpan<float> y, int h, int w)
    {
        const int win = SsimWindow;
        const double np = win * win;
        double covNorm = np / (np - 1);
        double c1 = Math.Pow(0.01 * DataRange, 2), c2 = Math.Pow(0.03 * DataRange, 2);
        double total = 0;
        int count = 0;
        // Windows centred at every pixel at least (win - 1) / 2 from the border: scikit-image filters the
        // whole image, then crops that margin before averaging, so only these windows count.
        for (int top = 0; top + win <= h; top++)
            for (int left = 0; left + win <= w; left++)
            {
                double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
                for (int i = 0; i < win; i++)
                    for (int j = 0; j < win; j++)
                    {
                        double a = x[(top + i) * w + left + j], b = y[(top + i) * w + left + j];
                        sx += a; sy += b; sxx += a * a; syy += b * b; sxy += a * b;
                    }
                double ux = sx / np, uy = sy / np;
                double vx = covNorm * (sxx / np - ux * ux), vy = covNorm * (syy / np - uy * uy), vxy = covNorm * (sxy / np - ux * uy);
                total += (2 * ux * uy + c1) * (2 * vxy + c2) / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
                count++;
            }
        return total / count;
    }
}

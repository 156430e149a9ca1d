using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Operators;
using PosteriorGpu.Kernels.Fft;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Samplers.Operators;

/// <summary>
/// Fourier subsampling (MRI-style): y = M ⊙ F x per channel, F the orthonormal 2-D DFT and M a real
/// [H, W] sampling mask shared by the channels; H and W powers of two. y is complex, stored as
/// [C, H, W, 2] (unsampled frequencies are zero). A is the real-linear map R^{C H W} -> C^{C H W}
/// viewed as R^{2 C H W}, whose adjoint for the real inner product is A^T y = Re(F^H (M ⊙ y)):
/// Re &lt;M F x, y&gt; = Re &lt;x, F^H M y&gt; = &lt;x, Re F^H M y&gt; for real x.
/// Holds device memory (its data and a scratch pool): dispose it. Not thread-safe on its own; samplers call it within their turn on the device.
/// </summary>
public sealed class FourierSubsamplingOperator : LinearOperator
{
    private readonly float[] mask;
    private readonly Tensor maskTensor;

    /// <summary>An operator with the given [H, W] mask (1 = sampled frequency, numpy's unshifted
    /// frequency order: index 0 is the zero frequency).</summary>
    /// <exception cref="ArgumentException">H or W is not a power of two or the mask does not hold H W values.</exception>
    public FourierSubsamplingOperator(GpuDevice device, int channels, int height, int width, float[] mask)
        : base(device, "fourier-subsampling", [channels, height, width], [channels, height, width, 2])
    {
        if (!IsPowerOfTwo(height) || !IsPowerOfTwo(width))
            throw new ArgumentException($"operator fourier-subsampling: H = {height} and W = {width} must be powers of two");
        if (mask.Length != height * width)
            throw new ArgumentException($"operator fourier-subsampling: expected a mask of {height * width} values ([H, W] = [{height}, {width}]) but got {mask.Length}");
        this.mask = (float[])mask.Clone();
        maskTensor = Tensor.FromHost(device, mask, height * width);
    }

    private static bool IsPowerOfTwo(int n) => n > 0 && (n & (n - 1)) == 0;

    /// <summary>
    /// Cartesian random-line sampling (fastMRI-style): whole columns of k-space (all vertical
    /// frequencies of one horizontal frequency). The round(<paramref name="centerFraction"/> W)
    /// lowest horizontal frequencies are always sampled; every other column with the probability
    /// that makes the expected sampled fraction <paramref name="sampledFraction"/>, drawn from Philox
    /// with <paramref name="seed"/>.
    /// </summary>
    public static FourierSubsamplingOperator RandomLines(GpuDevice device, int channels, int height, int width,
        double sampledFraction, double centerFraction, ulong seed) =>
        new(device, channels, height, width, RandomLinesMask(height, width, sampledFraction, centerFraction, seed));

    /// <summary>The mask of <see cref="RandomLines"/> ([H, W], unshifted frequency order).</summary>
    public static float[] RandomLinesMask(int height, int width, double sampledFraction, double centerFraction, ulong seed)
    {
        if (!(sampledFraction >= 0 && sampledFraction <= 1) || !(centerFraction >= 0 && centerFraction <= sampledFraction))
            throw new ArgumentOutOfRangeException(nameof(sampledFraction),
                $"operator fourier-subsampling: need 0 <= centerFraction ({centerFraction}) <= sampledFraction ({sampledFraction}) <= 1");
        int low = (int)Math.Round(centerFraction * width);
        double p = low >= width ? 0 : Math.Clamp((sampledFraction * width - low) / (width - low), 0, 1);
        var draw = new RandomDraw(seed, RandomStreams.FourierLines, 0);
        var m = new float[height * width];
        for (int l = 0; l < width; l++)
        {
            // Position of frequency l after fftshift; the centre band is [W/2 - low/2, W/2 - low/2 + low).
            int shifted = (l + width / 2) % width;
            int start = width / 2 - low / 2;
            bool sampled = (shifted >= start && shifted < start + low) || draw.Uniform(l) < p;
            if (!sampled) continue;
            for (int k = 0; k < height; k++) m[k * width + l] = 1f;
        }
        return m;
    }

    /// <summary>A copy of the [H, W] mask.</summary>
    public float[] Mask => (float[])mask.Clone();

    /// <summary>Fraction of sampled frequencies (mask values that are not zero).</summary>
    public double SampledFraction => mask.Count(v => v != 0) / (double)mask.Length;

    /// <inheritdoc/>
    protected override void ForwardCore(Tensor x, Tensor y)
    {
        ComplexOps.FromReal(x, y);
        Fft2d.Forward(y, y, FftNorm.Ortho);
        MaskMultiply.Run(maskTensor, 2, y, y);
    }

    /// <inheritdoc/>
    protected override void AdjointCore(Tensor y, Tensor x)
    {
        using var z = Pool.Rent(y.Shape);
        MaskMultiply.Run(maskTensor, 2, y, z);
        Fft2d.Inverse(z, z, FftNorm.Ortho);
        ComplexOps.RealPart(z, x);
    }

    /// <inheritdoc/>
    public override float[] ForwardReference(ReadOnlySpan<float> x)
    {
        int n = ItemsOf(x, InputLength, "input");
        var z = new float[2 * x.Length];
        ComplexOps.FromRealReference(x, z);
        Fft2d.Reference(z, z, [n * InputShape[0], InputShape[1], InputShape[2], 2], inverse: false, FftNorm.Ortho);
        MaskMultiply.Reference(mask, 2, z, z);
        return z;
    }

    /// <inheritdoc/>
    public override float[] AdjointReference(ReadOnlySpan<float> y)
    {
        int n = ItemsOf(y, MeasurementLength, "measurement");
        var z = new float[y.Length];
        MaskMultiply.Reference(mask, 2, y, z);
        Fft2d.Reference(z, z, [n * InputShape[0], InputShape[1], InputShape[2], 2], inverse: true, FftNorm.Ortho);
        var x = new float[y.Length / 2];
        ComplexOps.RealPartReference(z, x);
        return x;
    }

    /// <summary>The zero-filled reconstruction A^T y = Re F^H (M ⊙ y), unstretched (it has the image's scale).</summary>
    /// <exception cref="ArgumentException">y does not have the operator's measurement shape.</exception>
    public override float[] Preview(Tensor y)
    {
        ValidateMeasurement(y);
        return MeasurementPreview.BackProjection(this, y, stretch: false);
    }

    /// <inheritdoc/>
    protected override void DisposeDeviceData() => maskTensor.Dispose();
}

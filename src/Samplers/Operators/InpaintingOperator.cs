using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Operators;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Samplers.Operators;

/// <summary>Which half of an image <see cref="InpaintingOperator.HalfImage"/> keeps (observes).</summary>
public enum ImageHalf
{
    /// <summary>Columns [0, W/2).</summary>
    Left,
    /// <summary>Columns [W/2, W).</summary>
    Right,
    /// <summary>Rows [0, H/2).</summary>
    Top,
    /// <summary>Rows [H/2, H).</summary>
    Bottom,
}

/// <summary>
/// Inpainting: y = mask ⊙ x with a mask of shape [C, H, W] or [H, W] (shared by the channels),
/// 1 = observed, 0 = missing. The measurement has the image's shape; the operator is self-adjoint.
/// Holds device memory (its data and a scratch pool): dispose it. Not thread-safe on its own; samplers call it within their turn on the device.
/// </summary>
public sealed class InpaintingOperator : LinearOperator
{
    private readonly float[] mask;
    private readonly Tensor maskTensor;

    /// <summary>An operator with the given mask (H W values shared by the channels, or C H W values).</summary>
    /// <exception cref="ArgumentException">The mask length is neither H W nor C H W, or a value is not finite.</exception>
    public InpaintingOperator(GpuDevice device, int channels, int height, int width, float[] mask)
        : base(device, "inpainting", [channels, height, width], [channels, height, width])
    {
        if (mask.Length != height * width && mask.Length != channels * height * width)
            throw new ArgumentException(
                $"operator inpainting: a mask of {mask.Length} values fits neither [H, W] = [{height}, {width}] nor [C, H, W] = [{channels}, {height}, {width}]");
        if (mask.Any(v => !float.IsFinite(v)))
            throw new ArgumentException("operator inpainting: the mask has a non-finite value");
        this.mask = (float[])mask.Clone();
        maskTensor = Tensor.FromHost(device, mask, mask.Length);
    }

    /// <summary>A copy of the mask (H W or C H W values).</summary>
    public float[] Mask => (float[])mask.Clone();

    /// <summary>Fraction of observed entries (mask values that are not zero).</summary>
    public double ObservedFraction => mask.Count(v => v != 0) / (double)mask.Length;

    /// <summary>Everything observed except the box of <paramref name="boxHeight"/> x <paramref name="boxWidth"/>
    /// pixels at (<paramref name="top"/>, <paramref name="left"/>), which is missing (clipped to the image).</summary>
    public static InpaintingOperator Box(GpuDevice device, int channels, int height, int width,
        int top, int left, int boxHeight, int boxWidth)
    {
        var m = new float[height * width];
        for (int i = 0; i < height; i++)
            for (int j = 0; j < width; j++)
                m[i * width + j] = i >= top && i < top + boxHeight && j >= left && j < left + boxWidth ? 0f : 1f;
        return new InpaintingOperator(device, channels, height, width, m);
    }

    /// <summary>Each pixel (all its channels) observed with probability <paramref name="fractionObserved"/>,
    /// drawn from Philox with <paramref name="seed"/>: the same mask on every machine.</summary>
    public static InpaintingOperator RandomPixels(GpuDevice device, int channels, int height, int width,
        double fractionObserved, ulong seed)
    {
        if (!(fractionObserved >= 0 && fractionObserved <= 1))
            throw new ArgumentOutOfRangeException(nameof(fractionObserved), fractionObserved, "operator inpainting: the observed fraction must lie in [0, 1]");
        var draw = new RandomDraw(seed, RandomStreams.InpaintingMask, 0);
        var m = new float[height * width];
        for (int i = 0; i < m.Length; i++) m[i] = draw.Uniform(i) < fractionObserved ? 1f : 0f;
        return new InpaintingOperator(device, channels, height, width, m);
    }

    /// <summary>Observes one half of the image (<paramref name="keep"/>); the other half is missing.
    /// Left and top halves hold floor(W/2) columns or floor(H/2) rows, so with an odd size the middle
    /// column or row belongs to the right or bottom half.</summary>
    public static InpaintingOperator HalfImage(GpuDevice device, int channels, int height, int width, ImageHalf keep)
    {
        var m = new float[height * width];
        for (int i = 0; i < height; i++)
            for (int j = 0; j < width; j++)
                m[i * width + j] = keep switch
                {
                    ImageHalf.Left => j < width / 2,
                    ImageHalf.Right => j >= width / 2,
                    ImageHalf.Top => i < height / 2,
                    _ => i >= height / 2,
                } ? 1f : 0f;
        return new InpaintingOperator(device, channels, height, width, m);
    }

    /// <inheritdoc/>
    protected override void ForwardCore(Tensor x, Tensor y) => MaskMultiply.Run(maskTensor, 1, x, y);

    /// <inheritdoc/>
    protected override void AdjointCore(Tensor y, Tensor x) => MaskMultiply.Run(maskTensor, 1, y, x);

    /// <inheritdoc/>
    public override float[] ForwardReference(ReadOnlySpan<float> x)
    {
        ItemsOf(x, InputLength, "input");
        var y = new float[x.Length];
        MaskMultiply.Reference(mask, 1, x, y);
        return y;
    }

    /// <inheritdoc/>
    public override float[] AdjointReference(ReadOnlySpan<float> y) => ForwardReference(y);

    /// <summary>mask ⊙ y = A^T y, unstretched: y carries noise on every entry, but a sampler sees only the observed
    /// ones, so the missing pixels show as 0 (mid grey).</summary>
    /// <exception cref="ArgumentException">y does not have the operator's measurement shape.</exception>
    public override float[] Preview(Tensor y)
    {
        ValidateMeasurement(y);
        return MeasurementPreview.BackProjection(this, y, stretch: false);
    }

    /// <inheritdoc/>
    protected override void DisposeDeviceData() => maskTensor.Dispose();
}

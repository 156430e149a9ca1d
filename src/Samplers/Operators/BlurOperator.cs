using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Operators;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Samplers.Operators;

/// <summary>What a blur reads outside the image.</summary>
public enum BlurBoundary
{
    /// <summary>Zeros (the image is padded with zeros).</summary>
    Zero,
    /// <summary>The image repeats periodically (circular convolution).</summary>
    Circular,
}

/// <summary>
/// Blur (deconvolution problems): every channel correlated with one kh x kw filter k (odd sizes,
/// centred; the <see cref="BlurCorrelation"/> kernel): y[i, j] = sum_{u, v} k[u, v] x[i + u - kh/2, j + v - kw/2], reading zeros or wrapping
/// around outside the image. The adjoint is the correlation with the flipped filter under the same
/// boundary rule, x[a, b] = sum_{u, v} k[u, v] y[a - u + kh/2, b - v + kw/2], which is the exact
/// transpose for both rules. y has the image's shape.
/// Holds device memory (its data and a scratch pool): dispose it. Not thread-safe on its own; samplers call it within their turn on the device.
/// </summary>
public sealed class BlurOperator : LinearOperator
{
    private readonly float[] filter;
    private readonly Tensor filterTensor;

    /// <summary>A blur by the given filter (row-major kh x kw, odd sizes).</summary>
    /// <exception cref="ArgumentException">A filter size is even or the values do not fill it.</exception>
    public BlurOperator(GpuDevice device, int channels, int height, int width, float[] filter, int kh, int kw, BlurBoundary boundary)
        : base(device, "blur", [channels, height, width], [channels, height, width])
    {
        if (kh < 1 || kw < 1 || kh % 2 == 0 || kw % 2 == 0 || filter.Length != kh * kw)
            throw new ArgumentException($"operator blur: the filter must be kh x kw with odd sizes; got {kh} x {kw} and {filter.Length} values");
        this.filter = (float[])filter.Clone();
        KernelHeight = kh;
        KernelWidth = kw;
        Boundary = boundary;
        filterTensor = Tensor.FromHost(device, filter, kh * kw);
    }

    /// <summary>A Gaussian blur: a size x size filter with weights exp(-(u^2 + v^2) / (2 sigma^2)) about
    /// the centre, normalised to sum 1.</summary>
    public static BlurOperator Gaussian(GpuDevice device, int channels, int height, int width, int size, float sigma,
        BlurBoundary boundary = BlurBoundary.Zero)
    {
        if (!(sigma > 0)) throw new ArgumentOutOfRangeException(nameof(sigma), sigma, "operator blur: sigma must be positive");
        return new BlurOperator(device, channels, height, width, GaussianFilter(size, sigma), size, size, boundary);
    }

    /// <summary>A uniform (box) blur: a size x size filter of 1 / size^2.</summary>
    public static BlurOperator Uniform(GpuDevice device, int channels, int height, int width, int size,
        BlurBoundary boundary = BlurBoundary.Zero)
    {
        if (size < 1) throw new ArgumentOutOfRangeException(nameof(size), size, "operator blur: size must be >= 1");
        return new BlurOperator(device, channels, height, width, Enumerable.Repeat(1f / (size * size), size * size).ToArray(), size, size, boundary);
    }

    /// <summary>The normalised size x size Gaussian filter of <see cref="Gaussian"/>.</summary>
    public static float[] GaussianFilter(int size, float sigma)
    {
        if (size < 1) throw new ArgumentOutOfRangeException(nameof(size), size, "operator blur: size must be >= 1");
        var f = new double[size * size];
        int r = size / 2;
        for (int u = 0; u < size; u++)
            for (int v = 0; v < size; v++)
                f[u * size + v] = Math.Exp(-((u - r) * (u - r) + (v - r) * (v - r)) / (2.0 * sigma * sigma));
        double sum = f.Sum();
        return f.Select(v => (float)(v / sum)).ToArray();
    }

    /// <summary>A copy of the filter (row-major kh x kw).</summary>
    public float[] Filter => (float[])filter.Clone();

    /// <summary>Filter height kh.</summary>
    public int KernelHeight { get; }

    /// <summary>Filter width kw.</summary>
    public int KernelWidth { get; }

    /// <summary>What the blur reads outside the image.</summary>
    public BlurBoundary Boundary { get; }

    private bool Circular => Boundary == BlurBoundary.Circular;

    /// <inheritdoc/>
    protected override void ForwardCore(Tensor x, Tensor y) =>
        BlurCorrelation.Run(filterTensor, KernelHeight, KernelWidth, Circular, adjoint: false, x, y);

    /// <inheritdoc/>
    protected override void AdjointCore(Tensor y, Tensor x) =>
        BlurCorrelation.Run(filterTensor, KernelHeight, KernelWidth, Circular, adjoint: true, y, x);

    private float[] RunReference(ReadOnlySpan<float> input, bool adjoint)
    {
        int n = ItemsOf(input, InputLength, adjoint ? "measurement" : "input");
        var output = new float[input.Length];
        BlurCorrelation.Reference(input, output, n * InputShape[0], InputShape[1], InputShape[2], filter, KernelHeight, KernelWidth, Circular, adjoint);
        return output;
    }

    /// <inheritdoc/>
    public override float[] ForwardReference(ReadOnlySpan<float> x) => RunReference(x, adjoint: false);

    /// <inheritdoc/>
    public override float[] AdjointReference(ReadOnlySpan<float> y) => RunReference(y, adjoint: true);

    /// <summary>The blurred images y themselves.</summary>
    /// <exception cref="ArgumentException">y does not have the operator's measurement shape.</exception>
    public override float[] Preview(Tensor y)
    {
        ValidateMeasurement(y);
        return y.ToHost();
    }

    /// <inheritdoc/>
    protected override void DisposeDeviceData() => filterTensor.Dispose();
}

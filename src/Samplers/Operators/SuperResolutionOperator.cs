using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Operators;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Samplers.Operators;

/// <summary>
/// Super-resolution: y = average pooling of x over f x f blocks (<see cref="BlockAverage"/>), [C, H, W] to [C, H/f, W/f]
/// (f = 2 or 4 in the papers; any f dividing H and W works). The adjoint spreads each value,
/// divided by f^2, over its block.
/// Holds device memory (its data and a scratch pool): dispose it. Not thread-safe on its own; samplers call it within their turn on the device.
/// </summary>
public sealed class SuperResolutionOperator : LinearOperator
{
    /// <summary>An f x f average-pooling operator for [C, H, W] images.</summary>
    /// <exception cref="ArgumentException">f is below 1 or does not divide H and W.</exception>
    public SuperResolutionOperator(GpuDevice device, int channels, int height, int width, int factor)
        : base(device, "super-resolution", [channels, height, width], [channels, Down(height, factor), Down(width, factor)])
    {
        Factor = factor;
    }

    private static int Down(int size, int factor)
    {
        if (factor < 1 || size % factor != 0)
            throw new ArgumentException($"operator super-resolution: factor {factor} must be >= 1 and divide the image size {size}");
        return size / factor;
    }

    /// <summary>The downsampling factor f.</summary>
    public int Factor { get; }

    /// <inheritdoc/>
    protected override void ForwardCore(Tensor x, Tensor y) => BlockAverage.Run(x, y, Factor);

    /// <inheritdoc/>
    protected override void AdjointCore(Tensor y, Tensor x) => BlockSpread.Run(y, x, Factor);

    /// <inheritdoc/>
    public override float[] ForwardReference(ReadOnlySpan<float> x)
    {
        int n = ItemsOf(x, InputLength, "input");
        var y = new float[n * MeasurementLength];
        BlockAverage.Reference(x, y, n * InputShape[0], InputShape[1], InputShape[2], Factor);
        return y;
    }

    /// <summary>The low-resolution images upsampled by pixel repetition (each value over its f x f block, not divided
    /// by f^2 as the adjoint would).</summary>
    /// <exception cref="ArgumentException">y does not have the operator's measurement shape.</exception>
    public override float[] Preview(Tensor y)
    {
        int n = ValidateMeasurement(y);
        var host = y.ToHost();
        int c = InputShape[0], h = InputShape[1], w = InputShape[2], f = Factor, hs = h / f, ws = w / f;
        var result = new float[n * InputLength];
        for (int p = 0; p < n * c; p++)
            for (int i = 0; i < h; i++)
                for (int j = 0; j < w; j++)
                    result[(p * h + i) * w + j] = host[(p * hs + i / f) * ws + j / f];
        return result;
    }

    /// <inheritdoc/>
    public override float[] AdjointReference(ReadOnlySpan<float> y)
    {
        int n = ItemsOf(y, MeasurementLength, "measurement");
        var x = new float[n * InputLength];
        BlockSpread.Reference(y, x, n * InputShape[0], InputShape[1], InputShape[2], Factor);
        return x;
    }
}

using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Samplers.Operators;

/// <summary>
/// Super-resolution: y = average pooling of x over f x f blocks, [C, H, W] to [C, H/f, W/f]
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

    /// <summary>The specification of the pooling: y[p, i, j] = mean of x[p, f i + a, f j + b] over a, b &lt; f,
    /// for <paramref name="planes"/> planes of h x w.</summary>
    public static void PoolReference(ReadOnlySpan<float> x, Span<float> y, int planes, int h, int w, int f)
    {
        int ho = h / f, wo = w / f;
        for (int p = 0; p < planes; p++)
            for (int i = 0; i < ho; i++)
                for (int j = 0; j < wo; j++)
                {
                    double acc = 0;
                    for (int a = 0; a < f; a++)
                        for (int b = 0; b < f; b++)
                            acc += x[(p * h + f * i + a) * w + f * j + b];
                    y[(p * ho + i) * wo + j] = (float)(acc / (f * f));
                }
    }

    /// <summary>The specification of the adjoint: x[p, r, c] = y[p, r / f, c / f] / f^2.</summary>
    public static void SpreadReference(ReadOnlySpan<float> y, Span<float> x, int planes, int h, int w, int f)
    {
        int ho = h / f, wo = w / f;
        for (int p = 0; p < planes; p++)
            for (int r = 0; r < h; r++)
                for (int c = 0; c < w; c++)
                    x[(p * h + r) * w + c] = y[(p * ho + r / f) * wo + c / f] / (f * f);
    }

    internal static void PoolKernel(Index1D tid, ElementRange r, int h, int w, int f, float scale,
        ArrayView<float> x, ArrayView<float> y)
    {
        int ho = h / f, wo = w / f;
        for (int k = 0; k < r.Count; k++)
        {
            int o = r.Index(tid, k);
            if (o >= r.Total) return;
            int p = o / (ho * wo), q = o - p * ho * wo;
            int i = q / wo, j = q - i * wo;
            int b0 = (p * h + f * i) * w + f * j;
            float acc = 0;
            for (int a = 0; a < f; a++)
                for (int b = 0; b < f; b++)
                    acc += x[b0 + a * w + b];
            y[o] = acc * scale;
        }
    }

    internal static void SpreadKernel(Index1D tid, ElementRange r, int h, int w, int f, float scale,
        ArrayView<float> y, ArrayView<float> x)
    {
        int ho = h / f, wo = w / f;
        for (int k = 0; k < r.Count; k++)
        {
            int o = r.Index(tid, k);
            if (o >= r.Total) return;
            int p = o / (h * w), q = o - p * h * w;
            int row = q / w, col = q - row * w;
            x[o] = y[(p * ho + row / f) * wo + col / f] * scale;
        }
    }

    private int Planes(Tensor t) => t.N * InputShape[0];

    /// <inheritdoc/>
    protected override void ForwardCore(Tensor x, Tensor y)
    {
        var plan = Device.Plan(y.Length);
        var k = Device.Kernel("sr-pool", acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int, int, int, float,
            ArrayView<float>, ArrayView<float>>(PoolKernel));
        if (plan.Total > 0) k(plan.Threads, plan, InputShape[1], InputShape[2], Factor, 1f / (Factor * Factor), x.View, y.View);
    }

    /// <inheritdoc/>
    protected override void AdjointCore(Tensor y, Tensor x)
    {
        var plan = Device.Plan(x.Length);
        var k = Device.Kernel("sr-spread", acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int, int, int, float,
            ArrayView<float>, ArrayView<float>>(SpreadKernel));
        if (plan.Total > 0) k(plan.Threads, plan, InputShape[1], InputShape[2], Factor, 1f / (Factor * Factor), y.View, x.View);
    }

    /// <inheritdoc/>
    public override float[] ForwardReference(ReadOnlySpan<float> x)
    {
        int n = ItemsOf(x, InputLength, "input");
        var y = new float[n * MeasurementLength];
        PoolReference(x, y, n * InputShape[0], InputShape[1], InputShape[2], Factor);
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
        SpreadReference(y, x, n * InputShape[0], InputShape[1], InputShape[2], Factor);
        return x;
    }
}

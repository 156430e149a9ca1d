using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Samplers.Operators;

/// <summary>Inpainting: y = mask ⊙ x with a 0/1 mask over [C, H, W] (1 = observed); self-adjoint.
/// Presets build box, random-pixel and half-image masks.</summary>
public sealed class InpaintingOperator : LinearOperator
{
    private readonly Tensor mask;

    /// <summary>A mask of C*H*W values (any real weights are allowed; 0/1 for inpainting).</summary>
    public InpaintingOperator(GpuDevice device, int channels, int height, int width, float[] mask)
    {
        if (mask.Length != channels * height * width)
            throw new ArgumentException($"inpainting: the mask has {mask.Length} values but [{channels}, {height}, {width}] needs {channels * height * width}");
        InputShape = [channels, height, width];
        Mask = (float[])mask.Clone();
        this.mask = Tensor.FromHost(device, mask, mask.Length);
    }

    /// <inheritdoc/>
    public override string Name => "inpainting";

    /// <inheritdoc/>
    public override int[] InputShape { get; }

    /// <inheritdoc/>
    public override int[] MeasurementShape => InputShape;

    /// <summary>The mask (host copy).</summary>
    public float[] Mask { get; }

    /// <summary>Observes everything except the box [top, top + h) x [left, left + w) (all channels).</summary>
    public static InpaintingOperator Box(GpuDevice device, int channels, int height, int width, int top, int left, int boxHeight, int boxWidth) =>
        new(device, channels, height, width, Build(channels, height, width, (y, x) => !(y >= top && y < top + boxHeight && x >= left && x < left + boxWidth)));

    /// <summary>Observes each pixel (all channels) with probability <paramref name="fraction"/>, seeded.</summary>
    public static InpaintingOperator RandomPixels(GpuDevice device, int channels, int height, int width, double fraction, int seed)
    {
        var rng = new System.Random(seed);
        var keep = new bool[height * width];
        for (int i = 0; i < keep.Length; i++) keep[i] = rng.NextDouble() < fraction;
        return new(device, channels, height, width, Build(channels, height, width, (y, x) => keep[y * width + x]));
    }

    /// <summary>Observes the left half (or the top half) of the image.</summary>
    public static InpaintingOperator HalfImage(GpuDevice device, int channels, int height, int width, bool keepTop = false) =>
        new(device, channels, height, width, Build(channels, height, width, (y, x) => keepTop ? y < height / 2 : x < width / 2));

    private static float[] Build(int c, int h, int w, Func<int, int, bool> observed)
    {
        var m = new float[c * h * w];
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) m[(ch * h + y) * w + x] = observed(y, x) ? 1 : 0;
        return m;
    }

    /// <inheritdoc/>
    public override void Forward(Tensor x, Tensor y)
    {
        CheckInput(x);
        CheckMeasurement(y, x.N);
        BroadcastMultiply.Run(x, mask, y);
    }

    /// <inheritdoc/>
    public override void Adjoint(Tensor y, Tensor x)
    {
        CheckInput(x);
        CheckMeasurement(y, x.N);
        BroadcastMultiply.Run(y, mask, x);
    }

    /// <inheritdoc/>
    public override void Dispose()
    {
        mask.Dispose();
        base.Dispose();
    }
}

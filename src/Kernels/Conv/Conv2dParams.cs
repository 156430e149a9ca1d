namespace PosteriorGpu.Kernels.Conv;

/// <summary>
/// Stride and zero padding of a 2-D convolution. Padding may be asymmetric: diffusers' Downsample2D
/// with downsample_padding = 0 pads (top 0, left 0, bottom 1, right 1) before a stride-2 3x3 conv.
/// </summary>
public readonly record struct Conv2dParams(int Stride, int PadTop, int PadLeft, int PadBottom, int PadRight)
{
    /// <summary>The same stride along both axes and <paramref name="padding"/> zeros on every side (PyTorch's Conv2d padding).</summary>
    public static Conv2dParams Same(int stride, int padding) => new(stride, padding, padding, padding, padding);

    /// <summary>Output height and width for an h x w input and a kh x kw kernel (0 where the kernel does not fit).</summary>
    public (int Ho, int Wo) OutputSize(int h, int w, int kh, int kw) =>
        (Extent(h + PadTop + PadBottom, kh), Extent(w + PadLeft + PadRight, kw));

    private int Extent(int padded, int k) => padded < k || Stride < 1 ? 0 : (padded - k) / Stride + 1;
}

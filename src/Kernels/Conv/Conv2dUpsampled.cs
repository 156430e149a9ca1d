using System.Runtime.CompilerServices;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Gemm;
using PosteriorGpu.Kernels.Norm;
using PosteriorGpu.Kernels.Resample;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Conv;

/// <summary>
/// diffusers' Upsample2D in one launch: conv(nearest 2x upsampling of x) with the conv's bias, where the upsampled
/// tensor is never written. The convolution is <see cref="Conv2d"/>'s implicit GEMM on <see cref="GemmCore"/>, its
/// im2col loads reading source pixel (iy / 2, ix / 2) of x for tap (iy, ix) of the virtual 2H x 2W input (padding
/// tested against the upsampled size, as the unfused pair does). So on a GPU an upsampler is one launch instead of two,
/// and its 4x-sized intermediate is neither written nor read. The products are the same as those of the unfused pair
/// (the same values in the same k order), so the results are bitwise equal. Where the register-tile path runs (ILGPU's
/// CPU accelerator), <c>Run</c> upsamples into a temporary and convolves, the same two launches as before.
/// </summary>
public static class Conv2dUpsampled
{
    /// <summary>The specification: <see cref="Upsample2x.Reference"/>, then <see cref="Conv2d.Reference"/>.</summary>
    public static void Reference(ReadOnlySpan<float> x, int batch, int cin, int h, int w, ReadOnlySpan<float> weight, int cout, int kh, int kw,
        ReadOnlySpan<float> bias, Span<float> output, Conv2dParams p)
    {
        var up = new float[batch * cin * 4 * h * w];
        Upsample2x.Reference(x, batch * cin, h, w, up);
        Conv2d.Reference(up, batch, cin, 2 * h, 2 * w, weight, cout, kh, kw, bias, output, p);
    }

    /// <summary>True when <c>Run</c> is one launch on <paramref name="device"/> (the GEMM core runs there).</summary>
    public static bool IsFused(GpuDevice device) => Gemm.Gemm.UsesCore(device, GemmVariant.Auto);

    /// <summary>The im2col operand of the upsampled input; A (the weights) and the epilogue are <see cref="Conv2d.Operands"/>'.
    /// Cursor parts: column P = image offset in x, Q/R = the output pixel's top-left tap row/column in the upsampled
    /// frame; depth P = channel offset in x, S/T = the tap's kernel row/column.</summary>
    internal readonly struct Operands : IGemmOperands, GemmNormStats.IFinalValue
    {
        public readonly Conv2d.Operands Conv;
        // Source plane size and one k step as (channels, kernel rows, kernel columns) digits.
        private readonly int hs, ws, stepCi, stepKy, stepKx;

        public Operands(Conv2d.Operands conv)
        {
            Conv = conv;
            hs = conv.H / 2;
            ws = conv.W / 2;
            int khw = Math.Max(1, conv.Kh * conv.Kw), rem = GemmCore.BK % khw;
            stepCi = GemmCore.BK / khw;
            stepKy = rem / Math.Max(1, conv.Kw);
            stepKx = rem % Math.Max(1, conv.Kw);
        }

        public bool AContiguousInK => true;
        public bool BContiguousInN => true;
        public bool Im2Col => true;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GemmCursor RowA(int b, int m) => Conv.RowA(b, m);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GemmCursor DepthA(int b, int k) => Conv.DepthA(b, k);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GemmCursor StepA(GemmCursor depth) => Conv.StepA(depth);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float LoadA(GemmCursor row, GemmCursor depth) => Conv.LoadA(row, depth);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GemmCursor ColumnB(int b, int n)
        {
            int hw = Conv.Ho * Conv.Wo, img = n / hw, pix = n - img * hw, oy = pix / Conv.Wo, ox = pix - oy * Conv.Wo;
            return new GemmCursor { P = img * Conv.Cin * hs * ws, Q = oy * Conv.Stride - Conv.PadTop, R = ox * Conv.Stride - Conv.PadLeft };
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GemmCursor DepthB(int b, int k)
        {
            int khw = Conv.Kh * Conv.Kw, ci = k / khw, r = k - ci * khw, ky = r / Conv.Kw, kx = r - ky * Conv.Kw;
            return new GemmCursor { P = ci * hs * ws, S = ky, T = kx };
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GemmCursor StepB(GemmCursor depth)
        {
            int kx = depth.T + stepKx, ky = depth.S + stepKy, p = depth.P + stepCi * hs * ws;
            if (kx >= Conv.Kw) { kx -= Conv.Kw; ky++; }
            if (ky >= Conv.Kh) { ky -= Conv.Kh; p += hs * ws; }
            return new GemmCursor { P = p, S = ky, T = kx };
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float LoadB(GemmCursor depth, GemmCursor column)
        {
            // Padding is tested in the upsampled frame; a padding tap loads element 0 and is replaced by zero.
            int iy = column.Q + depth.S, ix = column.R + depth.T;
            bool inside = (uint)iy < (uint)Conv.H && (uint)ix < (uint)Conv.W;
            float v = Conv.Input[inside ? column.P + depth.P + (iy >> 1) * ws + (ix >> 1) : 0];
            return inside ? v : 0f;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Store(int b, int m, int n, float acc) => Conv.Store(b, m, n, acc);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float Final(int b, int m, int n, float acc) => Conv.Final(b, m, n, acc);
    }

    /// <summary>output = conv(nearest 2x upsampling of x) + bias; x [N, Cin, H, W], weight [Cout, Cin, kh, kw], bias [Cout]
    /// or null, output [N, Cout, Ho, Wo] for a 2H x 2W input. One launch where <see cref="IsFused"/>; elsewhere the upsampled
    /// input is made in a temporary first.</summary>
    /// <exception cref="ArgumentException">A shape does not fit (the message names the shapes).</exception>
    public static void Run(Tensor x, Tensor weight, Tensor? bias, Tensor output, Conv2dParams p) =>
        Run(x, weight, bias, output, p, GemmVariant.Auto);

    internal static void Run(Tensor x, Tensor weight, Tensor? bias, Tensor output, Conv2dParams p, GemmVariant variant) =>
        RunPreparingNext(x, weight, bias, output, p, default, variant);

    /// <summary>
    /// <see cref="Run(Tensor, Tensor, Tensor?, Tensor, Conv2dParams)"/> that also prepares what <paramref name="next"/> asks of
    /// the output's statistics in the same launch (<see cref="GemmNormStats"/>; an up block's upsampler whose output the
    /// next up block concatenates with a skip: the concatenation's table). Returns the table, or null where none was made
    /// (statistics only, not a GEMM-core device, shapes the preparing launch does not serve); the output is the same either way.
    /// </summary>
    /// <exception cref="ArgumentException">A shape does not fit (this convolution's or <paramref name="next"/>'s).</exception>
    public static PreparedGroupNorm? RunPreparingNext(Tensor x, Tensor weight, Tensor? bias, Tensor output, Conv2dParams p, OutputNorm next) =>
        RunPreparingNext(x, weight, bias, output, p, next, GemmVariant.Auto);

    internal static PreparedGroupNorm? RunPreparingNext(Tensor x, Tensor weight, Tensor? bias, Tensor output, Conv2dParams p, OutputNorm next,
        GemmVariant variant)
    {
        const string op = "conv2d of a 2x upsampled input";
        var conv = Conv2d.Prepare(op, x, 2, weight, bias, output, p, null, null, 1f);
        next.Check(op + " (next norm)", output, conv.Cout);
        var device = output.Device;
        if (x.N == 0 || conv.Cout == 0) return null;
        if (Gemm.Gemm.UsesCore(device, variant))
        {
            var ops = new Operands(conv);
            int k = conv.Cin * conv.Kh * conv.Kw;
            if (GemmNormStats.TryLaunch("conv2d-upsampled-core-norm-stats", ops, k, output, next, variant, out var prepared)) return prepared;
            GemmCore.Launch(device, "conv2d-upsampled-core", ops, conv.Cout, x.N * conv.Ho * conv.Wo, k, 1, variant);
            return null;
        }
        using var up = Tensor.Empty(device, x.N, x.C, 2 * x.H, 2 * x.W);
        Upsample2x.Run(x, up);
        Conv2d.Run(up, weight, bias, output, p, null, null, 1f, variant);
        return null;
    }
}

using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Gemm;
using PosteriorGpu.Kernels.Norm;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Conv;

/// <summary>
/// 2-D convolution (cross-correlation, as PyTorch's nn.Conv2d) with a fused epilogue:
/// output = outputScale (conv(input, weight) + bias[c] + channelAdd[n, c] + residual[n, c, y, x]).
/// The epilogue serves diffusers' ResnetBlock2D: the time-embedding add after conv1, the skip add and
/// the division by output_scale_factor after conv2. NCHW throughout, weight [Cout, Cin, kh, kw].
/// Two variants: a barrier-free direct convolution with 4 output channels x 4 pixels per thread
/// iteration for ILGPU's CPU accelerator, and an implicit GEMM (M = Cout, N = images x Ho Wo, so that
/// a tile spans images, K = Cin kh kw, the im2col element gathered while the tile is staged, its
/// coordinates carried along k without division) on the shared-memory <see cref="GemmCore"/> for GPUs.
/// </summary>
public static class Conv2d
{
    /// <summary>
    /// The specification: a double-precision sum per output element. Empty <paramref name="bias"/>,
    /// <paramref name="channelAdd"/> or <paramref name="residual"/> mean "absent".
    /// </summary>
    public static void Reference(ReadOnlySpan<float> input, int batch, int cin, int h, int w,
        ReadOnlySpan<float> weight, int cout, int kh, int kw, ReadOnlySpan<float> bias, Span<float> output, Conv2dParams p,
        ReadOnlySpan<float> channelAdd = default, ReadOnlySpan<float> residual = default, float outputScale = 1f)
    {
        var (ho, wo) = p.OutputSize(h, w, kh, kw);
        if (input.Length != batch * cin * h * w || weight.Length != cout * cin * kh * kw || output.Length != batch * cout * ho * wo)
            throw new ArgumentException("conv2d reference: input, weight or output length does not match the dimensions");
        for (int n = 0; n < batch; n++)
            for (int co = 0; co < cout; co++)
                for (int oy = 0; oy < ho; oy++)
                    for (int ox = 0; ox < wo; ox++)
                    {
                        double acc = 0;
                        for (int ci = 0; ci < cin; ci++)
                            for (int ky = 0; ky < kh; ky++)
                            {
                                int iy = oy * p.Stride - p.PadTop + ky;
                                if (iy < 0 || iy >= h) continue;
                                for (int kx = 0; kx < kw; kx++)
                                {
                                    int ix = ox * p.Stride - p.PadLeft + kx;
                                    if (ix < 0 || ix >= w) continue;
                                    acc += (double)input[((n * cin + ci) * h + iy) * w + ix] * weight[((co * cin + ci) * kh + ky) * kw + kx];
                                }
                            }
                        int o = ((n * cout + co) * ho + oy) * wo + ox;
                        if (!bias.IsEmpty) acc += bias[co];
                        if (!channelAdd.IsEmpty) acc += channelAdd[n * cout + co];
                        if (!residual.IsEmpty) acc += residual[o];
                        output[o] = (float)(outputScale * acc);
                    }
    }

    /// <summary>The convolution as one implicit GEMM: A = weight [Cout, Cin kh kw], B = im2col(input)
    /// [Cin kh kw, N Ho Wo] (never materialised), and the fused epilogue.</summary>
    internal readonly struct Operands : IGemmOperands, GemmNormStats.IFinalValue
    {
        public readonly ArrayView<float> Input, Weight, Bias, ChannelAdd, Residual, Output;
        public readonly int Cin, H, W, Kh, Kw, Cout, Ho, Wo, Stride, PadTop, PadLeft;
        public readonly int HasBias, HasChannelAdd, HasResidual;
        // ChannelAdd's stride between images: Cout ([N, Cout], a per-image add), or 0 (one [Cout] vector, a second bias).
        public readonly int ChannelAddStride;
        public readonly float Scale;
        // One k step of GemmCore.BK as (kernel rows, kernel columns) digits and as an input offset
        // (input channels, rows and columns together), before the carries.
        private readonly int stepKy, stepKx, stepOffset;

        public Operands(ArrayView<float> input, int cin, int h, int w, ArrayView<float> weight, int cout, int kh, int kw,
            ArrayView<float> output, int ho, int wo, Conv2dParams p,
            ArrayView<float> bias, bool hasBias, ArrayView<float> channelAdd, bool hasChannelAdd,
            ArrayView<float> residual, bool hasResidual, float scale, bool channelAddShared = false)
        {
            ChannelAddStride = channelAddShared ? 0 : cout;
            Input = input; Weight = weight; Output = output; Bias = bias; ChannelAdd = channelAdd; Residual = residual;
            Cin = cin; H = h; W = w; Kh = kh; Kw = kw; Cout = cout; Ho = ho; Wo = wo;
            Stride = p.Stride; PadTop = p.PadTop; PadLeft = p.PadLeft;
            HasBias = hasBias ? 1 : 0; HasChannelAdd = hasChannelAdd ? 1 : 0; HasResidual = hasResidual ? 1 : 0;
            Scale = scale;
            int khw = Math.Max(1, kh * kw), rem = GemmCore.BK % khw;
            stepKy = rem / Math.Max(1, kw);
            stepKx = rem % Math.Max(1, kw);
            stepOffset = GemmCore.BK / khw * h * w + stepKy * w + stepKx;
        }

        public bool AContiguousInK => true;
        public bool BContiguousInN => true;
        public bool Im2Col => true;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GemmCursor RowA(int b, int m) => new() { P = m * (Cin * Kh * Kw) };

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GemmCursor DepthA(int b, int k) => new() { P = k };

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GemmCursor StepA(GemmCursor depth) => new() { P = depth.P + GemmCore.BK };

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float LoadA(GemmCursor row, GemmCursor depth) => Weight[row.P + depth.P];

        /// <summary>Output pixel n: P, offset of its top-left input tap (image, channel 0, row Q, column R),
        /// padding included (may point outside the plane); Q, R: that tap's row and column.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GemmCursor ColumnB(int b, int n)
        {
            int hw = Ho * Wo, img = n / hw, pix = n - img * hw, oy = pix / Wo, ox = pix - oy * Wo;
            int iy = oy * Stride - PadTop, ix = ox * Stride - PadLeft;
            return new GemmCursor { P = img * Cin * H * W + iy * W + ix, Q = iy, R = ix };
        }

        /// <summary>Tap k = (ci, ky, kx): P, its offset relative to the top-left tap (ci H W + ky W + kx);
        /// S, T: ky and kx.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GemmCursor DepthB(int b, int k)
        {
            int khw = Kh * Kw, ci = k / khw, r = k - ci * khw, ky = r / Kw, kx = r - ky * Kw;
            return new GemmCursor { P = ci * H * W + ky * W + kx, S = ky, T = kx };
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GemmCursor StepB(GemmCursor depth)
        {
            int kx = depth.T + stepKx, ky = depth.S + stepKy, p = depth.P + stepOffset;
            if (kx >= Kw) { kx -= Kw; ky++; p += W - Kw; }
            if (ky >= Kh) { ky -= Kh; p += H * W - Kh * W; }
            return new GemmCursor { P = p, S = ky, T = kx };
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float LoadB(GemmCursor depth, GemmCursor column)
        {
            // Branch-free: a padding tap loads element 0 (always there) and is replaced by zero.
            int iy = column.Q + depth.S, ix = column.R + depth.T;
            bool inside = (uint)iy < (uint)H && (uint)ix < (uint)W;
            float v = Input[inside ? column.P + depth.P : 0];
            return inside ? v : 0f;
        }

        /// <summary>Column n is pixel n mod Ho Wo of image n / (Ho Wo); b is unused (images are folded into N).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Store(int b, int m, int n, float acc) => Output[OutputOffset(m, n)] = Final(b, m, n, acc);

        /// <summary>The value <see cref="Store"/> writes for the dot product <paramref name="acc"/> of row m and column n.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float Final(int b, int m, int n, float acc)
        {
            int img = n / (Ho * Wo);
            if (HasBias != 0) acc += Bias[m];
            if (HasChannelAdd != 0) acc += ChannelAdd[img * ChannelAddStride + m];
            if (HasResidual != 0) acc += Residual[OutputOffset(m, n)];
            return Scale * acc;
        }

        /// <summary>Output channel m, output pixel n (images folded into n): its offset in Output.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private int OutputOffset(int m, int n)
        {
            int hw = Ho * Wo, img = n / hw;
            return (img * Cout + m) * hw + (n - img * hw);
        }
    }

    /// <summary>
    /// CPU variant: each thread takes a contiguous chunk of the (image, 4 output channels, output row,
    /// 4 output pixels) tiles and accumulates the 16 outputs in registers, walking (ci, ky, kx) with the
    /// weight offset running contiguously. Channels and pixels past the edge repeat the last one
    /// (computed, never stored). No barriers.
    /// </summary>
    internal static void RegisterTileKernel(Index1D tid, Operands o, int batch, int chunk)
    {
        int cout = o.Cout, ho = o.Ho, wo = o.Wo, cin = o.Cin, h = o.H, w = o.W, kh = o.Kh, kw = o.Kw, s = o.Stride;
        int kTotal = cin * kh * kw;
        int tilesX = (wo + 3) / 4, perChannelTile = ho * tilesX, perItem = (cout + 3) / 4 * perChannelTile;
        int start = tid * chunk, end = Math.Min(batch * perItem, start + chunk);
        var input = o.Input;
        var weight = o.Weight;
        for (int t = start; t < end; t++)
        {
            int b = t / perItem, r = t - b * perItem, ct = r / perChannelTile;
            r -= ct * perChannelTile;
            int oy = r / tilesX, ox0 = (r - oy * tilesX) * 4;
            int co0 = ct * 4;
            int w0 = co0 * kTotal, w1 = Math.Min(co0 + 1, cout - 1) * kTotal;
            int w2 = Math.Min(co0 + 2, cout - 1) * kTotal, w3 = Math.Min(co0 + 3, cout - 1) * kTotal;
            int x0 = ox0 * s - o.PadLeft, x1 = Math.Min(ox0 + 1, wo - 1) * s - o.PadLeft;
            int x2 = Math.Min(ox0 + 2, wo - 1) * s - o.PadLeft, x3 = Math.Min(ox0 + 3, wo - 1) * s - o.PadLeft;
            int y0 = oy * s - o.PadTop;
            float c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
            float c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;
            for (int ci = 0; ci < cin; ci++)
            {
                for (int ky = 0; ky < kh; ky++)
                {
                    int iy = y0 + ky;
                    if (iy < 0 || iy >= h) continue;
                    int row = ((b * cin + ci) * h + iy) * w;
                    int kidx = (ci * kh + ky) * kw;
                    for (int kx = 0; kx < kw; kx++)
                    {
                        float a0 = weight[w0 + kidx + kx], a1 = weight[w1 + kidx + kx];
                        float a2 = weight[w2 + kidx + kx], a3 = weight[w3 + kidx + kx];
                        int ix0 = x0 + kx, ix1 = x1 + kx, ix2 = x2 + kx, ix3 = x3 + kx;
                        float b0 = ix0 >= 0 && ix0 < w ? input[row + ix0] : 0f;
                        float b1 = ix1 >= 0 && ix1 < w ? input[row + ix1] : 0f;
                        float b2 = ix2 >= 0 && ix2 < w ? input[row + ix2] : 0f;
                        float b3 = ix3 >= 0 && ix3 < w ? input[row + ix3] : 0f;
                        c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
                        c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
                        c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
                        c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
                    }
                }
            }
            int n0 = oy * wo + ox0;
            StoreRow(o, b, co0, n0, wo - ox0, c00, c01, c02, c03);
            StoreRow(o, b, co0 + 1, n0, wo - ox0, c10, c11, c12, c13);
            StoreRow(o, b, co0 + 2, n0, wo - ox0, c20, c21, c22, c23);
            StoreRow(o, b, co0 + 3, n0, wo - ox0, c30, c31, c32, c33);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow(Operands o, int b, int co, int n, int left, float v0, float v1, float v2, float v3)
    {
        if (co >= o.Cout) return;
        n += b * o.Ho * o.Wo;
        o.Store(0, co, n, v0);
        if (left > 1) o.Store(0, co, n + 1, v1);
        if (left > 2) o.Store(0, co, n + 2, v2);
        if (left > 3) o.Store(0, co, n + 3, v3);
    }

    /// <summary>
    /// output = outputScale (conv(input, weight) + bias + channelAdd + residual); input [N, Cin, H, W],
    /// weight [Cout, Cin, kh, kw], bias [Cout] or null, channelAdd [N, Cout] or null, residual and
    /// output [N, Cout, Ho, Wo]. The output must not alias the input (the residual may be the output).
    /// </summary>
    /// <exception cref="ArgumentException">A shape does not fit (the message names the shapes).</exception>
    public static void Run(Tensor input, Tensor weight, Tensor? bias, Tensor output, Conv2dParams p,
        Tensor? channelAdd = null, Tensor? residual = null, float outputScale = 1f) =>
        Run(input, weight, bias, output, p, channelAdd, residual, outputScale, GemmVariant.Auto);

    internal static void Run(Tensor input, Tensor weight, Tensor? bias, Tensor output, Conv2dParams p,
        Tensor? channelAdd, Tensor? residual, float outputScale, GemmVariant variant)
    {
        var ops = Prepare("conv2d", input, 1, weight, bias, output, p, channelAdd, residual, outputScale);
        int batch = input.N, ho = ops.Ho, wo = ops.Wo;
        var device = output.Device;
        if (batch == 0 || ops.Cout == 0) return;
        if (Gemm.Gemm.UsesCore(device, variant))
        {
            GemmCore.Launch(device, "conv2d-core", ops, ops.Cout, batch * ho * wo, ops.Cin * ops.Kh * ops.Kw, 1, variant);
            return;
        }
        long tiles = (long)batch * ((ops.Cout + 3) / 4) * ho * ((wo + 3) / 4);
        int threads = (int)Math.Min(tiles, Gemm.Gemm.RegisterTileThreads);
        int chunk = (int)((tiles + threads - 1) / threads);
        threads = (int)((tiles + chunk - 1) / chunk);
        var kernel = device.Kernel("conv2d-register-tile", static acc =>
            acc.LoadAutoGroupedStreamKernel<Index1D, Operands, int, int>(RegisterTileKernel));
        kernel(threads, ops, batch, chunk);
    }

    /// <summary>
    /// <see cref="Run(Tensor, Tensor, Tensor?, Tensor, Conv2dParams, Tensor?, Tensor?, float)"/> that also prepares
    /// <paramref name="next"/>, the GroupNorm the following layer applies to the output, in the same launch (conv_in or a
    /// downsampler followed by a resnet; see <see cref="Conv2dNormalized.RunPreparingNext(Tensor, int, Tensor, Tensor, float, bool, Tensor, Tensor?, Tensor, Conv2dParams, OutputNorm, Tensor?, Tensor?, float, PreparedGroupNorm?)"/>).
    /// Returns the table, or null where it is not prepared (not a GEMM-core device, or shapes the preparing launch does not
    /// serve); the output is the same either way.
    /// </summary>
    /// <exception cref="ArgumentException">A shape does not fit (this convolution's or <paramref name="next"/>'s).</exception>
    public static PreparedGroupNorm? RunPreparingNext(Tensor input, Tensor weight, Tensor? bias, Tensor output, Conv2dParams p,
        OutputNorm next) => RunPreparingNext(input, weight, bias, output, p, next, GemmVariant.Auto);

    internal static PreparedGroupNorm? RunPreparingNext(Tensor input, Tensor weight, Tensor? bias, Tensor output, Conv2dParams p,
        OutputNorm next, GemmVariant variant)
    {
        var ops = Prepare("conv2d", input, 1, weight, bias, output, p, null, null, 1f);
        next.Check("conv2d (next norm)", output, ops.Cout);
        if (input.N > 0 && ops.Cout > 0 && Gemm.Gemm.UsesCore(output.Device, variant) &&
            GemmNormStats.TryLaunch("conv2d-core-norm-stats", ops, ops.Cin * ops.Kh * ops.Kw, output, next, variant, out var prepared))
            return prepared;
        Run(input, weight, bias, output, p, null, null, 1f, variant);
        return null;
    }

    /// <summary>Checks the shapes of a convolution whose input is <paramref name="input"/> scaled up by
    /// <paramref name="upscale"/> (1, or 2 for a nearest 2x upsampling folded into the loads) and builds its operands.</summary>
    /// <exception cref="ArgumentException">A shape does not fit (the message names the shapes).</exception>
    internal static Operands Prepare(string op, Tensor input, int upscale, Tensor weight, Tensor? bias, Tensor output, Conv2dParams p,
        Tensor? channelAdd, Tensor? residual, float outputScale, bool channelAddShared = false)
    {
        Shape.RequireRank(op, input, "input", 4);
        Shape.RequireRank(op, weight, "weight", 4);
        if (p.Stride < 1 || p.PadTop < 0 || p.PadLeft < 0 || p.PadBottom < 0 || p.PadRight < 0)
            throw new ArgumentException($"{op}: stride must be at least 1 and padding non-negative but got {p}");
        int batch = input.N, cin = input.C, h = upscale * input.H, w = upscale * input.W;
        int cout = weight.Shape[0], kh = weight.Shape[2], kw = weight.Shape[3];
        if (weight.Shape[1] != cin)
            throw new ArgumentException(
                $"{op}: weight {Shape.Format(weight.Shape)} expects {weight.Shape[1]} input channels but input {Shape.Format(input.Shape)} has {cin}");
        var (ho, wo) = p.OutputSize(h, w, kh, kw);
        if (ho < 1 || wo < 1)
            throw new ArgumentException(
                $"{op}: a {kh}x{kw} kernel with {p} does not fit input {Shape.Format(input.Shape)}{(upscale > 1 ? $" scaled up {upscale}x" : "")}");
        Shape.Require(op, output, "output", batch, cout, ho, wo);
        if (bias is not null) Shape.Require(op, bias, "bias", cout);
        if (channelAdd is not null)
        {
            if (channelAddShared) Shape.Require(op, channelAdd, "channelAdd", cout);
            else Shape.Require(op, channelAdd, "channelAdd", batch, cout);
        }
        if (residual is not null) Shape.Require(op, residual, "residual", batch, cout, ho, wo);
        // One call per tensor (an array of them would allocate on every launch).
        Shape.RequireSameDevice(op, input, output);
        Shape.RequireSameDevice(op, weight, output);
        if (bias is not null) Shape.RequireSameDevice(op, bias, output);
        if (channelAdd is not null) Shape.RequireSameDevice(op, channelAdd, output);
        if (residual is not null) Shape.RequireSameDevice(op, residual, output);
        if ((long)batch * ho * wo > int.MaxValue)
            throw new ArgumentException($"{op}: {batch} images of {ho}x{wo} outputs exceed the 2^31 columns of one GEMM");
        return new Operands(input.View, cin, h, w, weight.View, cout, kh, kw, output.View, ho, wo, p,
            (bias ?? output).View, bias is not null, (channelAdd ?? output).View, channelAdd is not null,
            (residual ?? output).View, residual is not null, outputScale, channelAddShared);
    }
}

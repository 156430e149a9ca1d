using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Gemm;
using PosteriorGpu.Kernels.Reductions;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Conv;

/// <summary>
/// Gradients of <see cref="Conv2d"/> with respect to its input, weight and bias, given the gradient
/// dY of its output. The epilogue terms need no kernel of their own: a residual passes dY through,
/// a per-item channel add receives <see cref="ChannelSums"/> of dY, and an output scale multiplies dY.
/// </summary>
/// <remarks>
/// The input gradient is a convolution too (the transposed convolution): dY, zero-dilated by the
/// stride, convolved with the weight transposed in (Cout, Cin) and flipped in space, with padding
/// k - 1 - pad. It therefore runs on the tuned forward kernels of <see cref="Conv2d"/>. The weight
/// gradient dW[co, (ci, ky, kx)] = sum over (n, oy, ox) of dY[n, co, oy, ox] X[n, ci, oy s - pt + ky,
/// ox s - pl + kx] is an implicit GEMM with a long k: on the CPU a barrier-free 4x4 register tile per
/// thread walks all images; on GPUs the GEMM core runs it as one GEMM with k over every image and
/// pixel, split (split-K, summed in a fixed order) when its few output tiles would not fill the GPU.
/// </remarks>
public static class Conv2dBackward
{
    /// <summary>
    /// The specification: every term of the forward sum sends dY times the other factor back, in
    /// double. Any of the gradient spans may be empty (not wanted); they are overwritten.
    /// </summary>
    public static void Reference(ReadOnlySpan<float> input, int batch, int cin, int h, int w,
        ReadOnlySpan<float> weight, int cout, int kh, int kw, Conv2dParams p, ReadOnlySpan<float> dOutput,
        Span<float> dInput, Span<float> dWeight, Span<float> dBias)
    {
        var (ho, wo) = p.OutputSize(h, w, kh, kw);
        if (dOutput.Length != batch * cout * ho * wo)
            throw new ArgumentException("conv2d backward reference: dOutput length does not match the dimensions");
        var dx = new double[batch * cin * h * w];
        var dw = new double[cout * cin * kh * kw];
        var db = new double[cout];
        for (int n = 0; n < batch; n++)
            for (int co = 0; co < cout; co++)
                for (int oy = 0; oy < ho; oy++)
                    for (int ox = 0; ox < wo; ox++)
                    {
                        double g = dOutput[((n * cout + co) * ho + oy) * wo + ox];
                        db[co] += g;
                        for (int ci = 0; ci < cin; ci++)
                            for (int ky = 0; ky < kh; ky++)
                            {
                                int iy = oy * p.Stride - p.PadTop + ky;
                                if (iy < 0 || iy >= h) continue;
                                for (int kx = 0; kx < kw; kx++)
                                {
                                    int ix = ox * p.Stride - p.PadLeft + kx;
                                    if (ix < 0 || ix >= w) continue;
                                    int xi = ((n * cin + ci) * h + iy) * w + ix, wi = ((co * cin + ci) * kh + ky) * kw + kx;
                                    dx[xi] += g * weight[wi];
                                    dw[wi] += g * input[xi];
                                }
                            }
                    }
        for (int i = 0; i < dInput.Length; i++) dInput[i] = (float)dx[i];
        for (int i = 0; i < dWeight.Length; i++) dWeight[i] = (float)dw[i];
        for (int i = 0; i < dBias.Length; i++) dBias[i] = (float)db[i];
    }

    // ---- input gradient: flip the weight, dilate dY, run the forward convolution ----

    /// <summary>flipped[ci, co, ky, kx] = weight[co, ci, kh - 1 - ky, kw - 1 - kx].</summary>
    internal static void FlipKernel(Index1D tid, ElementRange r, int cin, int cout, int kh, int kw,
        ArrayView<float> weight, ArrayView<float> flipped)
    {
        int khw = kh * kw;
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            int tap = i % khw, pair = i / khw;
            int co = pair % cout, ci = pair / cout;
            int ky = tap / kw, kx = tap - ky * kw;
            flipped[i] = weight[((co * cin + ci) * kh + kh - 1 - ky) * kw + kw - 1 - kx];
        }
    }

    /// <summary>dilated[plane, y, x] = dY[plane, y / s, x / s] where s divides both, else 0.</summary>
    internal static void DilateKernel(Index1D tid, ElementRange r, int ho, int wo, int hd, int wd, int stride,
        ArrayView<float> dOutput, ArrayView<float> dilated)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            int x = i % wd, row = i / wd;
            int y = row % hd, plane = row / hd;
            float v = 0;
            if (y % stride == 0 && x % stride == 0) v = dOutput[(plane * ho + y / stride) * wo + x / stride];
            dilated[i] = v;
        }
    }

    /// <summary>dInput (+)= the gradient of conv2d's output with respect to its input, for dOutput
    /// [N, Cout, Ho, Wo], weight [Cout, Cin, kh, kw] and dInput [N, Cin, H, W].</summary>
    /// <exception cref="ArgumentException">Shapes do not fit, or a padding is not smaller than the kernel.</exception>
    public static void InputGradient(Tensor dOutput, Tensor weight, Conv2dParams p, Tensor dInput, bool accumulate = false) =>
        InputGradient(dOutput, weight, p, dInput, accumulate, GemmVariant.Auto);

    internal static void InputGradient(Tensor dOutput, Tensor weight, Conv2dParams p, Tensor dInput, bool accumulate, GemmVariant variant)
    {
        const string op = "conv2d input gradient";
        var (cout, cin, kh, kw, ho, wo) = Check(op, dInput, weight, dOutput, p);
        int batch = dInput.N, h = dInput.H, w = dInput.W, s = p.Stride;
        int hd = (ho - 1) * s + 1, wd = (wo - 1) * s + 1;
        int padTop = kh - 1 - p.PadTop, padLeft = kw - 1 - p.PadLeft;
        var back = new Conv2dParams(1, padTop, padLeft, h + kh - 1 - hd - padTop, w + kw - 1 - wd - padLeft);
        if (back.PadTop < 0 || back.PadLeft < 0 || back.PadBottom < 0 || back.PadRight < 0)
            throw new ArgumentException($"{op}: padding {p} must be smaller than the {kh}x{kw} kernel on every side");

        var device = dInput.Device;
        int weights = cout * cin * kh * kw, dilatedLength = s == 1 ? 0 : batch * cout * hd * wd;
        var scratch = device.Scratch(weights + dilatedLength);
        using var flipped = new Tensor(device, null, scratch.SubView(0, weights), [cin, cout, kh, kw], null);
        var flip = device.Kernel("conv2d-flip-weight", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int, int, int, int,
            ArrayView<float>, ArrayView<float>>(FlipKernel));
        var plan = device.Plan(weights);
        flip(plan.Threads, plan, cin, cout, kh, kw, weight.View, flipped.View);

        Tensor source = dOutput;
        if (s != 1)
        {
            source = new Tensor(device, null, scratch.SubView(weights, dilatedLength), [batch, cout, hd, wd], null);
            var dilate = device.Kernel("conv2d-dilate", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int, int, int, int, int,
                ArrayView<float>, ArrayView<float>>(DilateKernel));
            var dplan = device.Plan(dilatedLength);
            dilate(dplan.Threads, dplan, ho, wo, hd, wd, s, dOutput.View, source.View);
        }
        Conv2d.Run(source, flipped, null, dInput, back, null, accumulate ? dInput : null, 1f, variant);
        if (!ReferenceEquals(source, dOutput)) source.Dispose();
    }

    // ---- weight gradient ----

    /// <summary>What the weight-gradient kernels read: X, dY and their dimensions.</summary>
    internal readonly struct WeightArgs
    {
        public readonly ArrayView<float> Input, DOutput, DWeight;
        public readonly int Batch, Cin, H, W, Cout, Kh, Kw, Ho, Wo, Stride, PadTop, PadLeft, Accumulate;

        public WeightArgs(ArrayView<float> input, ArrayView<float> dOutput, ArrayView<float> dWeight,
            int batch, int cin, int h, int w, int cout, int kh, int kw, int ho, int wo, Conv2dParams p, bool accumulate)
        {
            Input = input; DOutput = dOutput; DWeight = dWeight;
            Batch = batch; Cin = cin; H = h; W = w; Cout = cout; Kh = kh; Kw = kw; Ho = ho; Wo = wo;
            Stride = p.Stride; PadTop = p.PadTop; PadLeft = p.PadLeft; Accumulate = accumulate ? 1 : 0;
        }
    }

    /// <summary>
    /// CPU variant: thread tid takes a contiguous chunk of (4 output channels) x (4 weight columns
    /// (ci, ky, kx)) tiles and accumulates them over every (n, oy, ox) in registers. Columns and channels
    /// past the edge repeat the last one (computed, never stored). No barriers.
    /// </summary>
    internal static void WeightTileKernel(Index1D tid, WeightArgs a, int chunk)
    {
        int khw = a.Kh * a.Kw, cols = a.Cin * khw, tilesJ = (cols + 3) / 4, tiles = (a.Cout + 3) / 4 * tilesJ;
        int start = tid * chunk, end = Math.Min(tiles, start + chunk);
        int hw = a.H * a.W, howo = a.Ho * a.Wo, s = a.Stride;
        var x = a.Input;
        var dy = a.DOutput;
        for (int t = start; t < end; t++)
        {
            int ct = t / tilesJ, j0 = (t - ct * tilesJ) * 4, co0 = ct * 4;
            int co1 = Math.Min(co0 + 1, a.Cout - 1), co2 = Math.Min(co0 + 2, a.Cout - 1), co3 = Math.Min(co0 + 3, a.Cout - 1);
            int j1 = Math.Min(j0 + 1, cols - 1), j2 = Math.Min(j0 + 2, cols - 1), j3 = Math.Min(j0 + 3, cols - 1);
            // Column j is tap (ci, ky, kx): its input offset and its shift relative to (oy s, ox s).
            int ci0 = j0 / khw, ci1 = j1 / khw, ci2 = j2 / khw, ci3 = j3 / khw;
            int ky0 = (j0 - ci0 * khw) / a.Kw, ky1 = (j1 - ci1 * khw) / a.Kw, ky2 = (j2 - ci2 * khw) / a.Kw, ky3 = (j3 - ci3 * khw) / a.Kw;
            int kx0 = j0 - ci0 * khw - ky0 * a.Kw, kx1 = j1 - ci1 * khw - ky1 * a.Kw;
            int kx2 = j2 - ci2 * khw - ky2 * a.Kw, kx3 = j3 - ci3 * khw - ky3 * a.Kw;
            ky0 -= a.PadTop; ky1 -= a.PadTop; ky2 -= a.PadTop; ky3 -= a.PadTop;
            kx0 -= a.PadLeft; kx1 -= a.PadLeft; kx2 -= a.PadLeft; kx3 -= a.PadLeft;
            float c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
            float c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;
            for (int n = 0; n < a.Batch; n++)
            {
                int xb = n * a.Cin * hw;
                int p0 = xb + ci0 * hw, p1 = xb + ci1 * hw, p2 = xb + ci2 * hw, p3 = xb + ci3 * hw;
                int d0 = (n * a.Cout + co0) * howo, d1 = (n * a.Cout + co1) * howo;
                int d2 = (n * a.Cout + co2) * howo, d3 = (n * a.Cout + co3) * howo;
                for (int oy = 0; oy < a.Ho; oy++)
                {
                    int y0 = oy * s + ky0, y1 = oy * s + ky1, y2 = oy * s + ky2, y3 = oy * s + ky3;
                    bool r0 = y0 >= 0 && y0 < a.H, r1 = y1 >= 0 && y1 < a.H, r2 = y2 >= 0 && y2 < a.H, r3 = y3 >= 0 && y3 < a.H;
                    int row = oy * a.Wo;
                    for (int ox = 0; ox < a.Wo; ox++)
                    {
                        int xs = ox * s;
                        int x0 = xs + kx0, x1 = xs + kx1, x2 = xs + kx2, x3 = xs + kx3;
                        float b0 = r0 && x0 >= 0 && x0 < a.W ? x[p0 + y0 * a.W + x0] : 0f;
                        float b1 = r1 && x1 >= 0 && x1 < a.W ? x[p1 + y1 * a.W + x1] : 0f;
                        float b2 = r2 && x2 >= 0 && x2 < a.W ? x[p2 + y2 * a.W + x2] : 0f;
                        float b3 = r3 && x3 >= 0 && x3 < a.W ? x[p3 + y3 * a.W + x3] : 0f;
                        int o = row + ox;
                        float a0 = dy[d0 + o], a1 = dy[d1 + o], a2 = dy[d2 + o], a3 = dy[d3 + o];
                        c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
                        c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
                        c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
                        c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
                    }
                }
            }
            StoreWeightRow(a, co0, j0, cols, c00, c01, c02, c03);
            StoreWeightRow(a, co0 + 1, j0, cols, c10, c11, c12, c13);
            StoreWeightRow(a, co0 + 2, j0, cols, c20, c21, c22, c23);
            StoreWeightRow(a, co0 + 3, j0, cols, c30, c31, c32, c33);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreWeightRow(WeightArgs a, int co, int j, int cols, float v0, float v1, float v2, float v3)
    {
        if (co >= a.Cout) return;
        int o = co * cols + j;
        var dw = a.DWeight;
        if (a.Accumulate != 0)
        {
            dw[o] += v0;
            if (j + 1 < cols) dw[o + 1] += v1;
            if (j + 2 < cols) dw[o + 2] += v2;
            if (j + 3 < cols) dw[o + 3] += v3;
        }
        else
        {
            dw[o] = v0;
            if (j + 1 < cols) dw[o + 1] = v1;
            if (j + 2 < cols) dw[o + 2] = v2;
            if (j + 3 < cols) dw[o + 3] = v3;
        }
    }

    /// <summary>GPU variant: dW (+)= dY (as [Cout, N Ho Wo]) times im2col(X) (as [N Ho Wo, Cin kh kw], never
    /// materialised): one GEMM whose long k runs over every image and pixel (split-K gives the parallelism).</summary>
    internal readonly struct WeightOperands : IGemmOperands
    {
        public readonly WeightArgs A;
        // One k step of GemmCore.BK as (images, output rows, output columns) digits, and what it adds to the
        // dY offset and to the input offset of the top-left tap before the carries.
        private readonly int stepOy, stepOx, stepPix, stepDy, stepX;

        public WeightOperands(WeightArgs a)
        {
            A = a;
            int hw = Math.Max(1, a.Ho * a.Wo), rem = GemmCore.BK % hw, stepImg = GemmCore.BK / hw;
            stepPix = rem;
            stepOy = rem / Math.Max(1, a.Wo);
            stepOx = rem % Math.Max(1, a.Wo);
            stepDy = stepPix + stepImg * a.Cout * hw;
            stepX = stepImg * a.Cin * a.H * a.W + (stepOy * a.W + stepOx) * a.Stride;
        }

        public bool AContiguousInK => true;
        public bool BContiguousInN => false;
        public bool Im2Col => true;

        /// <summary>Output channel m: P, the offset of its plane in image 0.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GemmCursor RowA(int b, int m) => new() { P = m * A.Ho * A.Wo };

        /// <summary>k = (image, pixel): P, the offset of dY(image, 0, pixel); Q: the pixel.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GemmCursor DepthA(int b, int k)
        {
            int hw = A.Ho * A.Wo, img = k / hw, pix = k - img * hw;
            return new GemmCursor { P = img * A.Cout * hw + pix, Q = pix };
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GemmCursor StepA(GemmCursor depth)
        {
            int hw = A.Ho * A.Wo, pix = depth.Q + stepPix, p = depth.P + stepDy;
            if (pix >= hw) { pix -= hw; p += (A.Cout - 1) * hw; }
            return new GemmCursor { P = p, Q = pix };
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float LoadA(GemmCursor row, GemmCursor depth) => A.DOutput[row.P + depth.P];

        /// <summary>Column n = tap (ci, ky, kx): P, its input offset relative to the output pixel's
        /// unpadded top-left (ci H W + (ky - padTop) W + kx - padLeft); S, T: ky - padTop, kx - padLeft.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GemmCursor ColumnB(int b, int n)
        {
            int khw = A.Kh * A.Kw, ci = n / khw, r = n - ci * khw, ky = r / A.Kw, kx = r - ky * A.Kw;
            int dy = ky - A.PadTop, dx = kx - A.PadLeft;
            return new GemmCursor { P = ci * A.H * A.W + dy * A.W + dx, S = dy, T = dx };
        }

        /// <summary>k = (image, output row, output column): P, the input offset of (image, 0, oy s, ox s);
        /// Q, R: oy s and ox s.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GemmCursor DepthB(int b, int k)
        {
            int hw = A.Ho * A.Wo, img = k / hw, pix = k - img * hw, oy = pix / A.Wo, ox = pix - oy * A.Wo;
            int iy = oy * A.Stride, ix = ox * A.Stride;
            return new GemmCursor { P = img * A.Cin * A.H * A.W + iy * A.W + ix, Q = iy, R = ix };
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GemmCursor StepB(GemmCursor depth)
        {
            int s = A.Stride, rowEnd = A.Wo * s, colEnd = A.Ho * s;
            int ix = depth.R + stepOx * s, iy = depth.Q + stepOy * s, p = depth.P + stepX;
            if (ix >= rowEnd) { ix -= rowEnd; iy += s; p += s * A.W - rowEnd; }
            if (iy >= colEnd) { iy -= colEnd; p += A.Cin * A.H * A.W - colEnd * A.W; }
            return new GemmCursor { P = p, Q = iy, R = ix };
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float LoadB(GemmCursor depth, GemmCursor column)
        {
            // Branch-free: a padding tap loads element 0 (always there) and is replaced by zero.
            int iy = depth.Q + column.S, ix = depth.R + column.T;
            bool inside = (uint)iy < (uint)A.H && (uint)ix < (uint)A.W;
            float v = A.Input[inside ? depth.P + column.P : 0];
            return inside ? v : 0f;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Store(int b, int m, int n, float acc)
        {
            int o = m * (A.Cin * A.Kh * A.Kw) + n;
            A.DWeight[o] = A.Accumulate != 0 ? A.DWeight[o] + acc : acc;
        }
    }

    /// <summary>dWeight (+)= dL/dW and dBias (+)= dL/db (when not null) of conv2d, for input
    /// [N, Cin, H, W], dOutput [N, Cout, Ho, Wo], dWeight [Cout, Cin, kh, kw] and dBias [Cout].</summary>
    /// <exception cref="ArgumentException">Shapes do not fit.</exception>
    public static void WeightGradient(Tensor input, Tensor dOutput, Conv2dParams p, Tensor dWeight, Tensor? dBias, bool accumulate = false) =>
        WeightGradient(input, dOutput, p, dWeight, dBias, accumulate, GemmVariant.Auto);

    internal static void WeightGradient(Tensor input, Tensor dOutput, Conv2dParams p, Tensor dWeight, Tensor? dBias, bool accumulate, GemmVariant variant)
    {
        const string op = "conv2d weight gradient";
        var (cout, cin, kh, kw, ho, wo) = Check(op, input, dWeight, dOutput, p);
        if (dBias is not null)
        {
            Shape.Require(op, dBias, "dBias", cout);
            ChannelSums.Run(dOutput, dBias, perItem: false, accumulate);
        }
        int batch = input.N;
        var device = dWeight.Device;
        var args = new WeightArgs(input.View, dOutput.View, dWeight.View, batch, cin, input.H, input.W, cout, kh, kw, ho, wo, p, accumulate);
        bool tiled = Gemm.Gemm.UsesCore(device, variant);
        if (batch == 0)
        {
            if (!accumulate) dWeight.Clear();
            return;
        }
        if (tiled)
        {
            if ((long)batch * ho * wo > int.MaxValue)
                throw new ArgumentException($"{op}: {batch} images of {ho}x{wo} outputs exceed the 2^31 terms of one GEMM");
            GemmCore.Launch(device, "conv2d-weight-grad-core", new WeightOperands(args), cout, cin * kh * kw, batch * ho * wo, 1, variant);
            return;
        }
        int tiles = (cout + 3) / 4 * ((cin * kh * kw + 3) / 4);
        int threads = Math.Min(tiles, Gemm.Gemm.RegisterTileThreads);
        int chunk = (tiles + threads - 1) / threads;
        threads = (tiles + chunk - 1) / chunk;
        var kernel = device.Kernel("conv2d-weight-grad-register-tile", static acc =>
            acc.LoadAutoGroupedStreamKernel<Index1D, WeightArgs, int>(WeightTileKernel));
        kernel(threads, args, chunk);
    }

    /// <summary>Checks x-like [N, Cin, H, W], w-like [Cout, Cin, kh, kw] and dY [N, Cout, Ho, Wo] against p.</summary>
    private static (int Cout, int Cin, int Kh, int Kw, int Ho, int Wo) Check(string op, Tensor x, Tensor w, Tensor dOutput, Conv2dParams p)
    {
        Shape.RequireRank(op, x, "input", 4);
        Shape.RequireRank(op, w, "weight", 4);
        Shape.RequireRank(op, dOutput, "dOutput", 4);
        Shape.RequireSameDevice(op, x, w);
        Shape.RequireSameDevice(op, x, dOutput);
        if (p.Stride < 1 || p.PadTop < 0 || p.PadLeft < 0 || p.PadBottom < 0 || p.PadRight < 0)
            throw new ArgumentException($"{op}: stride must be at least 1 and padding non-negative but got {p}");
        int cout = w.Shape[0], cin = w.Shape[1], kh = w.Shape[2], kw = w.Shape[3];
        if (x.C != cin)
            throw new ArgumentException($"{op}: weight {Shape.Format(w.Shape)} expects {cin} input channels but the input is {Shape.Format(x.Shape)}");
        var (ho, wo) = p.OutputSize(x.H, x.W, kh, kw);
        Shape.Require(op, dOutput, "dOutput", x.N, cout, ho, wo);
        return (cout, cin, kh, kw, ho, wo);
    }
}

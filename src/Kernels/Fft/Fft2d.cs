using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Fft;

/// <summary>
/// Batched 2-D discrete Fourier transform of interleaved complex tensors [..., H, W, 2] over the
/// last two complex dimensions, H and W powers of two. Sign convention as numpy:
/// forward Y[k, l] = sum_{m, n} X[m, n] e^{-2 pi i (k m / H + l n / W)}, inverse with e^{+...}.
/// Separable: a pass of 1-D transforms along every row, then one along every column; each 1-D
/// transform is the iterative radix-2 Cooley-Tukey FFT (bit-reversal permutation, then log2 N
/// butterfly stages; Cooley and Tukey 1965, as in Numerical Recipes' four1).
/// </summary>
public static class Fft2d
{
    /// <summary>Complex elements one group of the shared-memory pass holds (32 KiB of floats).</summary>
    internal const int MaxTile = 4096;

    /// <summary>Complex elements a group of the shared-memory pass aims to hold: small enough that
    /// even a small batch gives the GPU many groups, large enough for coalesced column loads.</summary>
    internal const int TargetTile = 1024;

    /// <summary>Butterfly threads per group of the shared-memory pass at most.</summary>
    internal const int MaxGroup = 256;

    /// <summary>Which kernels carry the two passes.</summary>
    internal enum Variant
    {
        /// <summary>By device: shared memory on a GPU (lines up to MaxTile), per-line on the CPU.</summary>
        Auto,
        /// <summary>One thread per whole line, barrier-free (the CPU variant).</summary>
        PerLine,
        /// <summary>One group per tile of lines in shared memory, a barrier between stages (the GPU variant).</summary>
        Shared,
    }

    /// <summary>
    /// The specification: the 2-D DFT of each of the <c>shape[..^3]</c> items, summed naively in
    /// double precision (row DFTs then column DFTs, which is the same sum rearranged). Works for
    /// any H, W &gt;= 1; <paramref name="x"/> and <paramref name="y"/> may be the same memory.
    /// </summary>
    /// <exception cref="ArgumentException">The shape is not [..., H, W, 2] or a span is too short.</exception>
    public static void Reference(ReadOnlySpan<float> x, Span<float> y, ReadOnlySpan<int> shape, bool inverse,
        FftNorm norm = FftNorm.Backward)
    {
        if (shape.Length < 3 || shape[^1] != 2)
            throw new ArgumentException($"fft2d reference: shape {Shape.Format(shape)} is not [..., H, W, 2]");
        int total = Shape.Elements(shape);
        if (x.Length != total || y.Length != total)
            throw new ArgumentException($"fft2d reference: shape {Shape.Format(shape)} has {total} elements but x has {x.Length} and y {y.Length}");
        int h = shape[^3], w = shape[^2];
        int item = 2 * h * w;
        if (item == 0) return;
        int batch = total / item;
        double scale = Scale(h, w, inverse, norm);
        double sign = inverse ? 1 : -1;
        var (cosH, sinH) = Roots(h);
        var (cosW, sinW) = Roots(w);
        var re = new double[h * w];
        var im = new double[h * w];
        var rowRe = new double[h * w];
        var rowIm = new double[h * w];
        for (int b = 0; b < batch; b++)
        {
            var src = x.Slice(b * item, item);
            for (int i = 0; i < h * w; i++) { re[i] = src[2 * i]; im[i] = src[2 * i + 1]; }
            // Along rows: R[m, l] = sum_n X[m, n] w_W^{l n}.
            for (int m = 0; m < h; m++)
                for (int l = 0; l < w; l++)
                {
                    double ar = 0, ai = 0;
                    for (int n = 0; n < w; n++)
                    {
                        int k = (int)((long)l * n % w);
                        double c = cosW[k], s = sign * sinW[k];
                        double xr = re[m * w + n], xi = im[m * w + n];
                        ar += xr * c - xi * s;
                        ai += xr * s + xi * c;
                    }
                    rowRe[m * w + l] = ar;
                    rowIm[m * w + l] = ai;
                }
            // Along columns: Y[k, l] = sum_m R[m, l] w_H^{k m}.
            var dst = y.Slice(b * item, item);
            for (int kk = 0; kk < h; kk++)
                for (int l = 0; l < w; l++)
                {
                    double ar = 0, ai = 0;
                    for (int m = 0; m < h; m++)
                    {
                        int k = (int)((long)kk * m % h);
                        double c = cosH[k], s = sign * sinH[k];
                        double xr = rowRe[m * w + l], xi = rowIm[m * w + l];
                        ar += xr * c - xi * s;
                        ai += xr * s + xi * c;
                    }
                    dst[2 * (kk * w + l)] = (float)(ar * scale);
                    dst[2 * (kk * w + l) + 1] = (float)(ai * scale);
                }
        }
    }

    // cos and sin of 2 pi k / n for k < n, in double.
    private static (double[] Cos, double[] Sin) Roots(int n)
    {
        var c = new double[n];
        var s = new double[n];
        for (int k = 0; k < n; k++) (s[k], c[k]) = Math.SinCos(2 * Math.PI * k / n);
        return (c, s);
    }

    /// <summary>The factor a transform of an H x W item is multiplied by under <paramref name="norm"/>.</summary>
    internal static double Scale(int h, int w, bool inverse, FftNorm norm) => norm switch
    {
        FftNorm.Ortho => 1 / Math.Sqrt((double)h * w),
        FftNorm.Forward => inverse ? 1 : 1.0 / ((double)h * w),
        _ => inverse ? 1.0 / ((double)h * w) : 1,
    };

    /// <summary>
    /// Fills tw[2k], tw[2k+1] = cos, sin of 2 pi k / L for k &lt; L/2. The angle is reduced to
    /// [0, pi/4] by exact integer reflections first, so quarter and eighth turns come out exact and
    /// fast hardware sine/cosine stays within its accurate range.
    /// </summary>
    internal static void TwiddleKernel(Index1D tid, ElementRange r, int length, ArrayView<float> tw)
    {
        float step = 2f * MathF.PI / length;
        for (int k = 0; k < r.Count; k++)
        {
            int m = r.Index(tid, k);
            if (m >= r.Total) return;
            int m8 = 8 * m;
            float c, s;
            if (m8 <= length)
            {
                c = MathF.Cos(step * m);
                s = MathF.Sin(step * m);
            }
            else if (m8 <= 2 * length)
            {
                float a = step * (length / 4 - m);   // theta = pi/2 - a
                c = MathF.Sin(a);
                s = MathF.Cos(a);
            }
            else if (m8 <= 3 * length)
            {
                float a = step * (m - length / 4);   // theta = pi/2 + a
                c = -MathF.Sin(a);
                s = MathF.Cos(a);
            }
            else
            {
                float a = step * (length / 2 - m);   // theta = pi - a
                c = -MathF.Cos(a);
                s = MathF.Sin(a);
            }
            tw[2 * m] = c;
            tw[2 * m + 1] = s;
        }
    }

    /// <summary>
    /// The barrier-free pass (the CPU variant; on a GPU only for lines longer than MaxTile): each
    /// thread transforms whole lines in place. Line l of length <paramref name="n"/> starts at
    /// complex element (l / group) * groupStride + (l % group) and its elements lie
    /// <paramref name="stride"/> apart (rows: group 1, groupStride W, stride 1; columns: group W,
    /// groupStride H W, stride W). It copies its line from x to y (skipped in place), permutes it
    /// into bit-reversed order, runs the butterfly stages with twiddles tw[j * twStride * N / len], and
    /// multiplies by <paramref name="scale"/>. Lines never overlap, so threads never race.
    /// </summary>
    internal static void LineKernel(Index1D tid, ElementRange r, int n, int group, int groupStride, int stride,
        int twStride, float sign, float scale, int copy, ArrayView<float> x, ArrayView<float> y, ArrayView<float> tw)
    {
        int es = 2 * stride;
        for (int it = 0; it < r.Count; it++)
        {
            int line = r.Index(tid, it);
            if (line >= r.Total) return;
            int g = line / group;
            int b = 2 * (g * groupStride + (line - g * group));
            if (copy != 0)
                for (int i = 0; i < n; i++)
                {
                    y[b + i * es] = x[b + i * es];
                    y[b + i * es + 1] = x[b + i * es + 1];
                }
            // Bit-reversal permutation: j runs through the bit-reversed counterparts of i.
            int j = 0;
            for (int i = 0; i < n - 1; i++)
            {
                if (i < j)
                {
                    int pi = b + i * es, pj = b + j * es;
                    float tr = y[pi], ti = y[pi + 1];
                    y[pi] = y[pj];
                    y[pi + 1] = y[pj + 1];
                    y[pj] = tr;
                    y[pj + 1] = ti;
                }
                int bit = n >> 1;
                while (bit <= j)
                {
                    j -= bit;
                    bit >>= 1;
                }
                j += bit;
            }
            for (int half = 1; half < n; half <<= 1)
            {
                int step = twStride * (n / (2 * half));
                for (int q = 0; q < half; q++)
                {
                    float wr = tw[2 * q * step];
                    float wi = sign * tw[2 * q * step + 1];
                    for (int s0 = q; s0 < n; s0 += 2 * half)
                    {
                        int p0 = b + s0 * es, p1 = p0 + half * es;
                        float ur = y[p0], ui = y[p0 + 1];
                        float xr = y[p1], xi = y[p1 + 1];
                        float vr = xr * wr - xi * wi;
                        float vi = xr * wi + xi * wr;
                        y[p0] = ur + vr;
                        y[p0 + 1] = ui + vi;
                        y[p1] = ur - vr;
                        y[p1 + 1] = ui - vi;
                    }
                }
            }
            if (scale != 1f)
                for (int i = 0; i < n; i++)
                {
                    y[b + i * es] *= scale;
                    y[b + i * es + 1] *= scale;
                }
        }
    }

    /// <summary>
    /// The GPU pass: group g transforms the <paramref name="lines"/> lines g * lines ... (laid out as
    /// in <see cref="LineKernel"/>) in shared memory. It loads them in memory order (rows: along
    /// each row; columns: across the tile's adjacent columns, so a warp reads consecutive
    /// addresses), storing element i of line c at c * n + bitreverse(i); runs the stages with one
    /// butterfly per thread per step and a barrier between stages; and writes back, scaled, in
    /// memory order. The whole tile is read before any of it is written, so x may alias y.
    /// </summary>
    internal static void TileKernel(int n, int logN, int lines, int group, int groupStride, int stride,
        int twStride, float sign, float scale, ArrayView<float> x, ArrayView<float> y, ArrayView<float> tw)
    {
        var s = SharedMemory.Allocate<float>(2 * MaxTile);
        int t = Group.IdxX;
        int threads = Group.DimX;
        int first = Grid.IdxX * lines;
        int count = lines * n;
        for (int f = t; f < count; f += threads)
        {
            int c, i;
            if (stride == 1) { c = f / n; i = f - c * n; }
            else { i = f / lines; c = f - i * lines; }
            int line = first + c;
            int g = line / group;
            int p = 2 * (g * groupStride + (line - g * group) + i * stride);
            int rev = 0;
            for (int k = 0, v = i; k < logN; k++, v >>= 1) rev = (rev << 1) | (v & 1);
            int q = 2 * (c * n + rev);
            s[q] = x[p];
            s[q + 1] = x[p + 1];
        }
        Group.Barrier();
        int halfN = n / 2;
        for (int half = 1; half < n; half <<= 1)
        {
            int step = twStride * (n / (2 * half));
            for (int f = t; f < lines * halfN; f += threads)
            {
                // Butterfly f: line f / (n/2); within it block b / half, position j = b % half.
                int c = f / halfN;
                int b = f - c * halfN;
                int j = b & (half - 1);
                int p0 = 2 * (c * n + (b - j) * 2 + j), p1 = p0 + 2 * half;
                float wr = tw[2 * j * step];
                float wi = sign * tw[2 * j * step + 1];
                float ur = s[p0], ui = s[p0 + 1];
                float xr = s[p1], xi = s[p1 + 1];
                float vr = xr * wr - xi * wi;
                float vi = xr * wi + xi * wr;
                s[p0] = ur + vr;
                s[p0 + 1] = ui + vi;
                s[p1] = ur - vr;
                s[p1 + 1] = ui - vi;
            }
            Group.Barrier();
        }
        for (int f = t; f < count; f += threads)
        {
            int c, i;
            if (stride == 1) { c = f / n; i = f - c * n; }
            else { i = f / lines; c = f - i * lines; }
            int line = first + c;
            int g = line / group;
            int p = 2 * (g * groupStride + (line - g * group) + i * stride);
            int q = 2 * (c * n + i);
            y[p] = scale * s[q];
            y[p + 1] = scale * s[q + 1];
        }
    }

    /// <summary>Forward 2-D FFT of <paramref name="x"/> into <paramref name="y"/> (same shape
    /// [..., H, W, 2]; may be the same tensor), scaled as <paramref name="norm"/> says.</summary>
    /// <exception cref="ArgumentException">Shapes differ, the last dimension is not 2, or H or W is not a power of two.</exception>
    public static void Forward(Tensor x, Tensor y, FftNorm norm = FftNorm.Backward) =>
        Run(x, y, inverse: false, norm, Variant.Auto);

    /// <summary>Inverse 2-D FFT of <paramref name="x"/> into <paramref name="y"/> (same shape
    /// [..., H, W, 2]; may be the same tensor), scaled as <paramref name="norm"/> says.</summary>
    /// <exception cref="ArgumentException">Shapes differ, the last dimension is not 2, or H or W is not a power of two.</exception>
    public static void Inverse(Tensor x, Tensor y, FftNorm norm = FftNorm.Backward) =>
        Run(x, y, inverse: true, norm, Variant.Auto);

    /// <summary>Checks a complex tensor [..., H, W, 2] with H, W powers of two; returns batch, H, W.</summary>
    internal static (int Batch, int H, int W) CheckShape(string op, Tensor t, string name)
    {
        var s = t.Shape;
        if (s.Length < 3 || s[^1] != 2)
            throw new ArgumentException(
                $"{op}: {name} has shape {Shape.Format(s)} but must be an interleaved complex tensor [..., H, W, 2] (last dimension 2 = real, imaginary)");
        int h = s[^3], w = s[^2];
        if (!IsPowerOfTwo(h) || !IsPowerOfTwo(w))
            throw new ArgumentException(
                $"{op}: {name} has shape {Shape.Format(s)} with H = {h}, W = {w}; only powers of two (1, 2, 4, ...) are supported");
        return (t.Length / (2 * h * w), h, w);
    }

    private static bool IsPowerOfTwo(int n) => n > 0 && (n & (n - 1)) == 0;

    internal static void Run(Tensor x, Tensor y, bool inverse, FftNorm norm, Variant variant)
    {
        string op = inverse ? "ifft2d" : "fft2d";
        Shape.RequireSame(op, x, "x", y, "y");
        var (batch, h, w) = CheckShape(op, x, "x");
        if (batch == 0) return;
        var device = x.Device;
        float sign = inverse ? 1f : -1f;
        float scale = (float)Scale(h, w, inverse, norm);

        // One table of e^{2 pi i k / L}, L = max(H, W), serves both passes: a line of length N
        // takes every (L / N)-th entry.
        int length = Math.Max(h, w);
        int half = Math.Max(length / 2, 1);
        var tw = device.Scratch(2 * half);
        var twPlan = device.Plan(length / 2);
        var fill = device.Kernel("fft-twiddles", static acc =>
            acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int, ArrayView<float>>(TwiddleKernel));
        if (twPlan.Total > 0) fill(twPlan.Threads, twPlan, length, tw);

        if (variant == Variant.Auto)
            variant = device.IsCpu ? Variant.PerLine : Variant.Shared;
        // Rows: H W-long lines per item, adjacent rows W apart; columns: W H-long lines, adjacent
        // columns next to each other. The row pass takes x to y, the column pass works on y in place.
        Pass(device, variant, batch * h, w, group: 1, groupStride: w, stride: 1, adjacent: h,
            length / w, sign, 1f, x, y, tw, copy: !ReferenceEquals(x, y));
        Pass(device, variant, batch * w, h, group: w, groupStride: h * w, stride: w, adjacent: w,
            length / h, sign, scale, y, y, tw, copy: false);
    }

    // One pass of 1-D transforms over `lines` lines of length n. `adjacent` bounds how many
    // consecutive lines a shared-memory tile may take (it must divide the line count and keep a
    // tile inside one item: H for rows, W for columns; both powers of two).
    private static void Pass(GpuDevice device, Variant variant, int lines, int n, int group, int groupStride, int stride,
        int adjacent, int twStride, float sign, float scale, Tensor x, Tensor y, ArrayView<float> tw, bool copy)
    {
        if (variant == Variant.Shared && n <= MaxTile)
        {
            int tile = Math.Min(Math.Max(1, TargetTile / n), adjacent);
            // Columns: at least 16 adjacent columns (128-byte loads) where the tile has room.
            if (stride != 1) tile = Math.Min(Math.Max(tile, 16), Math.Min(adjacent, MaxTile / n));
            int threads = Math.Clamp(tile * n / 2, 1, Math.Min(MaxGroup, device.Accelerator.MaxNumThreadsPerGroup));
            var k = device.Kernel("fft-tile", static acc =>
                acc.LoadStreamKernel<int, int, int, int, int, int, int, float, float,
                    ArrayView<float>, ArrayView<float>, ArrayView<float>>(TileKernel));
            k(new KernelConfig(lines / tile, threads), n, Log2(n), tile, group, groupStride, stride,
                twStride, sign, scale, x.View, y.View, tw);
            return;
        }
        var lineKernel = device.Kernel("fft-lines", static acc =>
            acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int, int, int, int, int, float, float, int,
                ArrayView<float>, ArrayView<float>, ArrayView<float>>(LineKernel));
        var plan = LinePlan(device, lines, n);
        lineKernel(plan.Threads, plan, n, group, groupStride, stride, twStride, sign, scale, copy ? 1 : 0,
            x.View, y.View, tw);
    }

    private static int Log2(int n) => System.Numerics.BitOperations.Log2((uint)n);

    // CPU: contiguous chunks of lines, about 4096 complex elements of work per thread at least;
    // GPU: one thread per line.
    private static ElementRange LinePlan(GpuDevice device, int lines, int length)
    {
        if (!device.IsCpu) return ElementRange.For(lines, cpu: false);
        long work = (long)lines * length;
        int threads = (int)Math.Clamp(work / 4096, 1, Math.Min(lines, ElementRange.CpuThreads));
        return ElementRange.Explicit(lines, threads, chunked: true);
    }
}

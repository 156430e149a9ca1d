using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Operators;

/// <summary>
/// Correlation of every h x w plane with one kh x kw filter k (odd sizes, centred), the blur of a deconvolution
/// problem and its adjoint: out[i, j] = sum_{u, v} k[u, v] in[i + s (u - kh/2), j + s (v - kw/2)] with s = +1 (the
/// blur) or s = -1 (the correlation with the flipped filter, its exact transpose), reading zeros outside the plane or
/// wrapping around (circular). One output pixel per loop step, each thread a chunk of pixels.
/// </summary>
public static class BlurCorrelation
{
    /// <summary>The specification: for each of <paramref name="planes"/> h x w planes, the sum above, accumulated in
    /// double, outside indices zero or wrapped.</summary>
    /// <exception cref="ArgumentException">A size does not fit (the message names it).</exception>
    public static void Reference(ReadOnlySpan<float> input, Span<float> output, int planes, int h, int w,
        ReadOnlySpan<float> k, int kh, int kw, bool circular, bool adjoint)
    {
        Check(input.Length, output.Length, planes, h, w, k.Length, kh, kw);
        int s = adjoint ? -1 : 1, rh = kh / 2, rw = kw / 2;
        for (int p = 0; p < planes; p++)
            for (int i = 0; i < h; i++)
                for (int j = 0; j < w; j++)
                {
                    double acc = 0;
                    for (int u = 0; u < kh; u++)
                    {
                        int a = i + s * (u - rh);
                        if (circular) a = ((a % h) + h) % h;
                        else if (a < 0 || a >= h) continue;
                        for (int v = 0; v < kw; v++)
                        {
                            int b = j + s * (v - rw);
                            if (circular) b = ((b % w) + w) % w;
                            else if (b < 0 || b >= w) continue;
                            acc += (double)k[u * kw + v] * input[(p * h + a) * w + b];
                        }
                    }
                    output[(p * h + i) * w + j] = (float)acc;
                }
    }

    internal static void Kernel(Index1D tid, ElementRange r, int h, int w, int kh, int kw, int sign, int circular,
        ArrayView<float> k, ArrayView<float> input, ArrayView<float> output)
    {
        int rh = kh / 2, rw = kw / 2;
        for (int it = 0; it < r.Count; it++)
        {
            int o = r.Index(tid, it);
            if (o >= r.Total) return;
            int p = o / (h * w), q = o - p * h * w;
            int i = q / w, j = q - i * w;
            int plane = p * h * w;
            float acc = 0;
            for (int u = 0; u < kh; u++)
            {
                int a = i + sign * (u - rh);
                if (circular != 0) a = ((a % h) + h) % h;
                else if (a < 0 || a >= h) continue;
                for (int v = 0; v < kw; v++)
                {
                    int b = j + sign * (v - rw);
                    if (circular != 0) b = ((b % w) + w) % w;
                    else if (b < 0 || b >= w) continue;
                    acc += k[u * kw + v] * input[plane + a * w + b];
                }
            }
            output[o] = acc;
        }
    }

    /// <summary>output = the correlation of each h x w plane of input (the last two dimensions) with the kh x kw
    /// filter, or its adjoint; input and output have the same shape and must not overlap.</summary>
    /// <exception cref="ArgumentException">The shapes differ, a filter size is even, or the filter does not hold kh kw values.</exception>
    public static void Run(Tensor filter, int kh, int kw, bool circular, bool adjoint, Tensor input, Tensor output)
    {
        const string op = "blur correlation";
        Shape.RequireSame(op, input, "input", output, "output");
        Shape.RequireSameDevice(op, filter, input);
        var s = input.Shape;
        if (s.Length < 2) throw new ArgumentException($"{op}: expected input of shape [..., H, W] but got {Shape.Format(s)}");
        int h = s[^2], w = s[^1];
        Check(input.Length, output.Length, h * w == 0 ? 0 : (int)(input.Length / ((long)h * w)), h, w, filter.Length, kh, kw);
        var device = input.Device;
        var plan = device.Plan(output.Length);
        if (plan.Total == 0) return;
        var k = device.Kernel("blur", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int, int, int, int, int, int,
            ArrayView<float>, ArrayView<float>, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, h, w, kh, kw, adjoint ? -1 : 1, circular ? 1 : 0, filter.View, input.View, output.View);
    }

    private static void Check(long inputLength, long outputLength, int planes, int h, int w, long filterLength, int kh, int kw)
    {
        if (kh < 1 || kw < 1 || kh % 2 == 0 || kw % 2 == 0 || filterLength != (long)kh * kw)
            throw new ArgumentException($"blur correlation: the filter must be kh x kw with odd sizes; got {kh} x {kw} and {filterLength} values");
        long n = (long)planes * h * w;
        if (inputLength != n || outputLength != n)
            throw new ArgumentException($"blur correlation: {planes} planes of {h} x {w} need {n} values; input has {inputLength}, output {outputLength}");
    }
}

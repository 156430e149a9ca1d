using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Operators;

/// <summary>
/// Average pooling over f x f blocks, the forward map of super-resolution: y[p, i, j] = the mean of
/// x[p, f i + a, f j + b] over a, b &lt; f, for every h x w plane p (h and w multiples of f). Its adjoint is
/// <see cref="BlockSpread"/>. One output pixel per loop step.
/// </summary>
public static class BlockAverage
{
    /// <summary>The specification, accumulated in double, for <paramref name="planes"/> planes of h x w.</summary>
    /// <exception cref="ArgumentException">f does not divide h and w, or a length does not fit.</exception>
    public static void Reference(ReadOnlySpan<float> x, Span<float> y, int planes, int h, int w, int f)
    {
        Check(x.Length, y.Length, planes, h, w, f);
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

    internal static void Kernel(Index1D tid, ElementRange r, int h, int w, int f, float scale,
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

    /// <summary>y = the f x f block means of x; x is [..., H, W] and y [..., H / f, W / f] with the same leading dimensions.</summary>
    /// <exception cref="ArgumentException">f does not divide H and W, or y does not have the pooled shape.</exception>
    public static void Run(Tensor x, Tensor y, int f)
    {
        var (planes, h, w) = Planes("block average", x, y, f);
        var plan = x.Device.Plan(y.Length);
        if (plan.Total == 0 || planes == 0) return;
        var k = x.Device.Kernel("sr-pool", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int, int, int, float,
            ArrayView<float>, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, h, w, f, 1f / (f * f), x.View, y.View);
    }

    /// <summary>Checks that <paramref name="fine"/> is [..., H, W] and <paramref name="coarse"/> [..., H / f, W / f];
    /// returns the planes and the fine plane's size.</summary>
    internal static (int Planes, int H, int W) Planes(string op, Tensor fine, Tensor coarse, int f)
    {
        Shape.RequireSameDevice(op, fine, coarse);
        var s = fine.Shape;
        if (s.Length < 2 || f < 1 || s[^2] % f != 0 || s[^1] % f != 0)
            throw new ArgumentException($"{op}: factor {f} must be >= 1 and divide the plane of {Shape.Format(s)}");
        int[] expected = [.. s[..^2], s[^2] / f, s[^1] / f];
        if (!coarse.Shape.AsSpan().SequenceEqual(expected))
            throw new ArgumentException($"{op}: expected the coarse tensor of shape {Shape.Format(expected)} but got {Shape.Format(coarse.Shape)}");
        int h = s[^2], w = s[^1];
        return (h * w == 0 ? 0 : (int)(fine.Length / ((long)h * w)), h, w);
    }

    internal static void Check(long fineLength, long coarseLength, int planes, int h, int w, int f)
    {
        if (f < 1 || h % f != 0 || w % f != 0)
            throw new ArgumentException($"block average: factor {f} must be >= 1 and divide the plane {h} x {w}");
        if (fineLength != (long)planes * h * w || coarseLength != (long)planes * (h / f) * (w / f))
            throw new ArgumentException(
                $"block average: {planes} planes of {h} x {w} (factor {f}) need {(long)planes * h * w} fine and {(long)planes * (h / f) * (w / f)} coarse values; got {fineLength} and {coarseLength}");
    }
}

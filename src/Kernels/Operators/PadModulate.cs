using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Operators;

/// <summary>
/// The first step of coded-diffraction phase retrieval, z = Z (P ⊙ x): each real h x w plane of x multiplied by a
/// complex modulation P (interleaved real, imaginary; one item's worth, repeating over the batch) and zero-padded to a
/// complex hp x wp plane (the image in the top-left corner). The FFT follows. One padded element per loop step.
/// </summary>
public static class PadModulate
{
    /// <summary>The specification: <paramref name="planes"/> planes of x (h x w) to z [planes, hp, wp, 2];
    /// <paramref name="modulation"/> holds 2 <paramref name="itemLength"/> values (itemLength = channels h w).</summary>
    /// <exception cref="ArgumentException">A length does not fit.</exception>
    public static void Reference(ReadOnlySpan<float> modulation, int itemLength, ReadOnlySpan<float> x, Span<float> z,
        int planes, int h, int w, int hp, int wp)
    {
        Check(modulation.Length, itemLength, x.Length, z.Length, planes, h, w, hp, wp);
        z.Clear();
        for (int p = 0; p < planes; p++)
            for (int i = 0; i < h; i++)
                for (int j = 0; j < w; j++)
                {
                    int xi = (p * h + i) * w + j, m = xi % itemLength, zi = (p * hp + i) * wp + j;
                    z[2 * zi] = x[xi] * modulation[2 * m];
                    z[2 * zi + 1] = x[xi] * modulation[2 * m + 1];
                }
    }

    internal static void Kernel(Index1D tid, ElementRange r, int h, int w, int hp, int wp, int itemLength,
        ArrayView<float> modulation, ArrayView<float> x, ArrayView<float> z)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int o = r.Index(tid, k);
            if (o >= r.Total) return;
            int p = o / (hp * wp), q = o - p * hp * wp;
            int i = q / wp, j = q - i * wp;
            float re = 0f, im = 0f;
            if (i < h && j < w)
            {
                int xi = (p * h + i) * w + j;
                int m = xi % itemLength;
                float v = x[xi];
                re = v * modulation[2 * m];
                im = v * modulation[2 * m + 1];
            }
            z[2 * o] = re;
            z[2 * o + 1] = im;
        }
    }

    /// <summary>z [N, C, hp, wp, 2] = Z (P ⊙ x) for x [N, C, h, w] and a modulation of 2 C h w values.</summary>
    /// <exception cref="ArgumentException">A shape does not fit (the message names it).</exception>
    public static void Run(Tensor modulation, Tensor x, Tensor z)
    {
        const string op = "pad modulate";
        Shape.RequireRank(op, x, "x", 4);
        Shape.RequireRank(op, z, "z", 5);
        Shape.RequireSameDevice(op, modulation, x);
        Shape.RequireSameDevice(op, x, z);
        int n = x.Shape[0], c = x.Shape[1], h = x.Shape[2], w = x.Shape[3], hp = z.Shape[2], wp = z.Shape[3];
        Shape.Require(op, z, "z", n, c, hp, wp, 2);
        Check(modulation.Length, c * h * w, x.Length, z.Length, n * c, h, w, hp, wp);
        var plan = x.Device.Plan(z.Length / 2);
        if (plan.Total == 0) return;
        var k = x.Device.Kernel("phase-retrieval-pad", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange,
            int, int, int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, h, w, hp, wp, c * h * w, modulation.View, x.View, z.View);
    }

    internal static void Check(long modulationLength, int itemLength, long xLength, long zLength, int planes, int h, int w, int hp, int wp)
    {
        if (hp < h || wp < w)
            throw new ArgumentException($"phase retrieval: the padded plane {hp} x {wp} is smaller than the image plane {h} x {w}");
        if (itemLength < 1 || modulationLength != 2L * itemLength || (long)planes * h * w % itemLength != 0)
            throw new ArgumentException($"phase retrieval: a modulation of {modulationLength} values does not fit items of {itemLength} pixels");
        if (xLength != (long)planes * h * w || zLength != 2L * planes * hp * wp)
            throw new ArgumentException(
                $"phase retrieval: {planes} planes need {(long)planes * h * w} image and {2L * planes * hp * wp} padded values; got {xLength} and {zLength}");
    }
}

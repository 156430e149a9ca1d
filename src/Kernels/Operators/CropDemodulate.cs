using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Operators;

/// <summary>
/// The last step of phase retrieval's gradient, the adjoint of <see cref="PadModulate"/> taken to real images:
/// grad = Re(conj(P) ⊙ Z^T u), the top-left h x w corner of each complex hp x wp plane of u demodulated. One image
/// pixel per loop step.
/// </summary>
public static class CropDemodulate
{
    /// <summary>The specification: u [planes, hp, wp, 2] to grad [planes, h, w].</summary>
    /// <exception cref="ArgumentException">A length does not fit.</exception>
    public static void Reference(ReadOnlySpan<float> modulation, int itemLength, ReadOnlySpan<float> u, Span<float> grad,
        int planes, int h, int w, int hp, int wp)
    {
        PadModulate.Check(modulation.Length, itemLength, grad.Length, u.Length, planes, h, w, hp, wp);
        for (int p = 0; p < planes; p++)
            for (int i = 0; i < h; i++)
                for (int j = 0; j < w; j++)
                {
                    int xi = (p * h + i) * w + j, m = xi % itemLength, zi = (p * hp + i) * wp + j;
                    grad[xi] = modulation[2 * m] * u[2 * zi] + modulation[2 * m + 1] * u[2 * zi + 1];
                }
    }

    internal static void Kernel(Index1D tid, ElementRange r, int h, int w, int hp, int wp, int itemLength,
        ArrayView<float> modulation, ArrayView<float> u, ArrayView<float> grad)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int o = r.Index(tid, k);
            if (o >= r.Total) return;
            int p = o / (h * w), q = o - p * h * w;
            int i = q / w, j = q - i * w;
            int zi = (p * hp + i) * wp + j;
            int m = o % itemLength;
            grad[o] = modulation[2 * m] * u[2 * zi] + modulation[2 * m + 1] * u[2 * zi + 1];
        }
    }

    /// <summary>grad [N, C, h, w] = Re(conj(P) ⊙ Z^T u) for u [N, C, hp, wp, 2] and a modulation of 2 C h w values.</summary>
    /// <exception cref="ArgumentException">A shape does not fit (the message names it).</exception>
    public static void Run(Tensor modulation, Tensor u, Tensor grad)
    {
        const string op = "crop demodulate";
        Shape.RequireRank(op, grad, "grad", 4);
        Shape.RequireRank(op, u, "u", 5);
        Shape.RequireSameDevice(op, modulation, u);
        Shape.RequireSameDevice(op, u, grad);
        int n = grad.Shape[0], c = grad.Shape[1], h = grad.Shape[2], w = grad.Shape[3], hp = u.Shape[2], wp = u.Shape[3];
        Shape.Require(op, u, "u", n, c, hp, wp, 2);
        PadModulate.Check(modulation.Length, c * h * w, grad.Length, u.Length, n * c, h, w, hp, wp);
        var plan = grad.Device.Plan(grad.Length);
        if (plan.Total == 0) return;
        var k = grad.Device.Kernel("phase-retrieval-crop", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange,
            int, int, int, int, int, ArrayView<float>, ArrayView<float>, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, h, w, hp, wp, c * h * w, modulation.View, u.View, grad.View);
    }
}

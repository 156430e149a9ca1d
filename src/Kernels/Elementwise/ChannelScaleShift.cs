using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Elementwise;

/// <summary>
/// y = act(x * (1 + scale[n, c]) + shift[n, c]) for NCHW x, with [scale | shift] = t[n, 0..2C)
/// (torch.chunk(t, 2, dim=1)); act is SiLU or the identity. This is the "scale_shift" time
/// conditioning of diffusers' ResnetBlock2D, fused with the SiLU that follows it.
/// </summary>
public static class ChannelScaleShift
{
    /// <summary>The specification: a plain loop.</summary>
    public static void Reference(ReadOnlySpan<float> x, ReadOnlySpan<float> t, int n, int c, int spatial, bool silu, Span<float> y)
    {
        for (int b = 0; b < n; b++)
            for (int ch = 0; ch < c; ch++)
            {
                float scale = t[b * 2 * c + ch], shift = t[b * 2 * c + c + ch];
                for (int s = 0; s < spatial; s++)
                {
                    int i = (b * c + ch) * spatial + s;
                    float v = x[i] * (1 + scale) + shift;
                    y[i] = silu ? v / (1 + MathF.Exp(-v)) : v;
                }
            }
    }

    internal static void Kernel(Index1D tid, ElementRange r, int channels, int spatial, int silu,
        ArrayView<float> x, ArrayView<float> t, ArrayView<float> y)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            int plane = i / spatial;
            int b = plane / channels;
            int ch = plane - b * channels;
            float v = x[i] * (1 + t[b * 2 * channels + ch]) + t[b * 2 * channels + channels + ch];
            y[i] = silu != 0 ? v / (1 + MathF.Exp(-v)) : v;
        }
    }

    /// <summary>y = act(x (1 + scale) + shift); x, y are [N, C, ...], t is [N, 2C]; y may be x.</summary>
    public static void Run(Tensor x, Tensor t, Tensor y, bool silu)
    {
        Shape.RequireSame("channel scale-shift", x, "x", y, "y");
        if (x.Rank < 2) throw new ArgumentException($"channel scale-shift: x must be [N, C, ...] but got {Shape.Format(x.Shape)}");
        Shape.Require("channel scale-shift", t, "t", x.N, 2 * x.Shape[1]);
        int spatial = x.ItemLength / x.Shape[1];
        var plan = x.Device.Plan(x.Length);
        var k = x.Device.Kernel("channel-scale-shift", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int, int, int,
            ArrayView<float>, ArrayView<float>, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, x.Shape[1], spatial, silu ? 1 : 0, x.View, t.View, y.View);
    }
}

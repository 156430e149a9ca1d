using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Elementwise;

/// <summary>x += sigma z with z ~ N(0, I) drawn in the kernel: measurement noise, and the nested
/// noise of annealed measurements.</summary>
public static class AddNoise
{
    /// <summary>The specification: a plain loop with the same counter-based noise.</summary>
    public static void Reference(Span<float> x, float sigma, RandomDraw draw)
    {
        for (int i = 0; i < x.Length; i++) x[i] += sigma * draw.Normal(i);
    }

    /// <summary>One Philox block per iteration, four elements each (bitwise the per-element draw; see <see cref="LangevinStep"/>).</summary>
    internal static void Kernel(Index1D tid, ElementRange quads, int total, float sigma, RandomDraw draw, ArrayView<float> x)
    {
        for (int k = 0; k < quads.Count; k++)
        {
            int q = quads.Index(tid, k);
            if (q >= quads.Total) return;
            draw.NormalQuad(q, out float z0, out float z1, out float z2, out float z3);
            int i0 = draw.QuadStart(q);
            for (int j = 0; j < 4; j++)
            {
                int i = i0 + j;
                if (i < 0 || i >= total) continue;
                x[i] += sigma * (j == 0 ? z0 : j == 1 ? z1 : j == 2 ? z2 : z3);
            }
        }
    }

    /// <summary>x += sigma z in place (a negative sigma subtracts the same z: nested measurements are undone that way).</summary>
    public static void Run(Tensor x, float sigma, RandomDraw draw)
    {
        if (!float.IsFinite(sigma)) throw new ArgumentOutOfRangeException(nameof(sigma), sigma, "add noise: sigma must be finite");
        if (sigma == 0) return;
        var plan = x.Device.Plan(draw.Quads(x.Length));
        var k = x.Device.Kernel("add-noise", acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int, float, RandomDraw, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, x.Length, sigma, draw, x.View);
    }
}

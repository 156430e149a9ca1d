using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Operators;

/// <summary>
/// The amplitude residual of phase retrieval, z = scale (y z / |z| - z) in place on complex z (interleaved) with real
/// magnitudes y, and 0 where z = 0: what the inverse transform maps to the gradient of -|| |B x| - y ||^2 / (2 sigma^2)
/// (scale = 1 / sigma^2). |z| is computed as big sqrt(1 + (small / big)^2), so y z / |z| stays bounded however small
/// |z| is. One complex element per loop step.
/// </summary>
public static class AmplitudeResidual
{
    /// <summary>The specification, in double: z has 2 y.Length values.</summary>
    /// <exception cref="ArgumentException">z does not hold two values per y value.</exception>
    public static void Reference(float scale, ReadOnlySpan<float> y, Span<float> z)
    {
        if (z.Length != 2L * y.Length) throw new ArgumentException($"amplitude residual: z has {z.Length} values for {y.Length} magnitudes; expected {2L * y.Length}");
        for (int k = 0; k < y.Length; k++)
        {
            double zr = z[2 * k], zi = z[2 * k + 1], mag = Math.Sqrt(zr * zr + zi * zi);
            double f = mag > 0 ? y[k] / mag - 1 : -1;
            z[2 * k] = (float)(scale * f * zr);
            z[2 * k + 1] = (float)(scale * f * zi);
        }
    }

    internal static void Kernel(Index1D tid, ElementRange r, float scale, ArrayView<float> y, ArrayView<float> z)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int o = r.Index(tid, k);
            if (o >= r.Total) return;
            float zr = z[2 * o], zi = z[2 * o + 1];
            float ar = MathF.Abs(zr), ai = MathF.Abs(zi);
            float big = MathF.Max(ar, ai), small = MathF.Min(ar, ai);
            float q = big > 0f ? small / big : 0f;
            float mag = big * MathF.Sqrt(1f + q * q);
            // y z / |z| stays bounded however small |z| is; at z = 0 the residual is -z = 0.
            float ur = mag > 0f ? y[o] * (zr / mag) : 0f;
            float ui = mag > 0f ? y[o] * (zi / mag) : 0f;
            z[2 * o] = scale * (ur - zr);
            z[2 * o + 1] = scale * (ui - zi);
        }
    }

    /// <summary>z = scale (y z / |z| - z) in place; z is [..., 2] over y's shape.</summary>
    /// <exception cref="ArgumentException">z is not y's shape with a trailing 2.</exception>
    public static void Run(float scale, Tensor y, Tensor z)
    {
        const string op = "amplitude residual";
        Shape.RequireSameDevice(op, y, z);
        Shape.Require(op, z, "z", [.. y.Shape, 2]);
        var plan = y.Device.Plan(y.Length);
        if (plan.Total == 0) return;
        var k = y.Device.Kernel("phase-retrieval-residual", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange,
            float, ArrayView<float>, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, scale, y.View, z.View);
    }
}

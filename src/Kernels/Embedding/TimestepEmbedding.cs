using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Embedding;

/// <summary>
/// Sinusoidal timestep embedding (Vaswani et al. 2017; diffusers' get_timestep_embedding):
/// half = dim / 2, f_i = exp(-ln(maxPeriod) i / (half - shift)), e = scale t f_i, output
/// [sin e, cos e] ([cos e, sin e] with flip_sin_to_cos), a zero column appended when dim is odd.
/// </summary>
public static class TimestepEmbedding
{
    /// <summary>The specification, with float32 frequencies computed as torch does.</summary>
    public static void Reference(ReadOnlySpan<float> t, int dim, bool flipSinToCos, float shift, float scale, int maxPeriod, Span<float> y)
    {
        int half = dim / 2;
        for (int n = 0; n < t.Length; n++)
            for (int i = 0; i < half; i++)
            {
                float freq = MathF.Exp(-MathF.Log(maxPeriod) * i / (half - shift));
                double e = (double)scale * (t[n] * freq);
                float s = (float)Math.Sin(e), c = (float)Math.Cos(e);
                y[n * dim + i] = flipSinToCos ? c : s;
                y[n * dim + half + i] = flipSinToCos ? s : c;
                if (dim % 2 == 1) y[n * dim + dim - 1] = 0;
            }
    }

    internal static void Kernel(Index1D tid, ElementRange r, int dim, int flip, float shift, float scale, float logMaxPeriod,
        ArrayView<float> t, ArrayView<float> y)
    {
        int half = dim / 2;
        for (int k = 0; k < r.Count; k++)
        {
            int o = r.Index(tid, k);
            if (o >= r.Total) return;
            int n = o / dim;
            int j = o - n * dim;
            if (j >= 2 * half)
            {
                y[o] = 0;
                continue;
            }
            int i = j < half ? j : j - half;
            bool first = j < half;
            float freq = MathF.Exp(-logMaxPeriod * i / (half - shift));
            float e = scale * (t[n] * freq);
            // Sine in the first half unless flipped.
            bool sine = first != (flip != 0);
            y[o] = sine ? MathF.Sin(e) : MathF.Cos(e);
        }
    }

    /// <summary>y [N, dim] = embedding of timesteps [N] (float values).</summary>
    public static void Run(Tensor timesteps, int dim, bool flipSinToCos, float downscaleFreqShift, Tensor y, float scale = 1f, int maxPeriod = 10000)
    {
        if (dim < 2) throw new ArgumentOutOfRangeException(nameof(dim), dim, "timestep embedding: dim must be at least 2");
        if (dim / 2 - downscaleFreqShift == 0)
            throw new ArgumentException($"timestep embedding: dim {dim} with freq shift {downscaleFreqShift} divides by zero");
        Shape.RequireRank("timestep embedding", timesteps, "timesteps", 1);
        Shape.Require("timestep embedding", y, "y", timesteps.Length, dim);
        var plan = y.Device.Plan(y.Length);
        var k = y.Device.Kernel("timestep-embedding", acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int, int, float, float, float,
            ArrayView<float>, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, dim, flipSinToCos ? 1 : 0, downscaleFreqShift, scale, MathF.Log(maxPeriod), timesteps.View, y.View);
    }
}

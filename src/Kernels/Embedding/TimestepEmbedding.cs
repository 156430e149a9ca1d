using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Embedding;

/// <summary>
/// Sinusoidal timestep embedding as diffusers' get_timestep_embedding (Ho et al. 2020, after the
/// Transformer's positional encoding): half = dim/2, exponent[i] = -ln(maxPeriod) * i / (half -
/// downscaleFreqShift), e[n,i] = scale * t[n] * exp(exponent[i]), out = [sin(e), cos(e)] (or
/// [cos(e), sin(e)] when flipSinToCos), plus a zero column when dim is odd.
/// </summary>
public static class TimestepEmbedding
{
    /// <summary>The argument e[n,i], computed in float32 in the same operation order as diffusers
    /// (so the sine sees the same argument torch's does).</summary>
    internal static float Argument(float t, int i, float negLogMaxPeriod, float denominator, float scale)
    {
        float exponent = negLogMaxPeriod * i / denominator;
        return scale * (t * MathF.Exp(exponent));
    }

    /// <summary>The specification: the argument in float32 as torch computes it, sin/cos in double.</summary>
    public static void Reference(ReadOnlySpan<float> timesteps, int dim, bool flipSinToCos, float downscaleFreqShift,
        Span<float> y, float scale = 1f, int maxPeriod = 10000)
    {
        int half = dim / 2;
        float negLog = (float)-Math.Log(maxPeriod);
        float denominator = (float)(half - (double)downscaleFreqShift);
        for (int n = 0; n < timesteps.Length; n++)
        {
            var row = y.Slice(n * dim, dim);
            for (int i = 0; i < half; i++)
            {
                double e = Argument(timesteps[n], i, negLog, denominator, scale);
                float s = (float)Math.Sin(e), c = (float)Math.Cos(e);
                row[i] = flipSinToCos ? c : s;
                row[half + i] = flipSinToCos ? s : c;
            }
            if (dim % 2 == 1) row[dim - 1] = 0f;
        }
    }

    // 2*pi split in three (Cody & Waite): TwoPiHigh has 8 significant bits so k * TwoPiHigh is exact
    // for |k| < 2^16, which keeps the reduced argument accurate for |e| up to about 4e5.
    private const float TwoPiHigh = 6.28125f;
    private const float TwoPiMid = 1.9353071795864769e-3f;
    private const float TwoPiLow = (float)(6.283185307179586476925 - 6.28125 - (double)1.9353071795864769e-3f);
    private const float InvTwoPi = 0.15915494309189535f;

    /// <summary>e reduced to about [-pi, pi]: fast GPU sine/cosine (sin.approx) are accurate only there,
    /// and timesteps up to 1000 give arguments up to 1000.</summary>
    internal static float Reduce(float e)
    {
        float k = MathF.Round(e * InvTwoPi);
        return e - k * TwoPiHigh - k * TwoPiMid - k * TwoPiLow;
    }

    /// <summary>Entry j of the embedding of t (zero for an odd width's last entry); every kernel that embeds timesteps
    /// computes it here, so they agree bit for bit.</summary>
    internal static float Value(float t, int j, int dim, int flip, float negLogMaxPeriod, float denominator, float scale)
    {
        int half = dim / 2;
        if (j >= 2 * half) return 0f;
        bool first = j < half;
        int i = first ? j : j - half;
        float e = Reduce(Argument(t, i, negLogMaxPeriod, denominator, scale));
        // The first half is sin unless flipped; the second half the other one.
        return first == (flip == 0) ? MathF.Sin(e) : MathF.Cos(e);
    }

    /// <summary>One kernel for both forms: timesteps[n] per item (<paramref name="perItem"/> 1), or the one
    /// <paramref name="timestep"/> passed as an argument for every item (no host copy before the launch).</summary>
    internal static void Kernel(Index1D tid, ElementRange r, int dim, int flip, float negLogMaxPeriod, float denominator, float scale,
        int perItem, float timestep, ArrayView<float> timesteps, ArrayView<float> y)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int idx = r.Index(tid, k);
            if (idx >= r.Total) return;
            int n = idx / dim;
            float t = perItem != 0 ? timesteps[n] : timestep;
            y[idx] = Value(t, idx - n * dim, dim, flip, negLogMaxPeriod, denominator, scale);
        }
    }

    /// <summary>y[n,:] = the embedding of timesteps[n]; timesteps is [N] (float values), y is [N, dim].</summary>
    /// <exception cref="ArgumentException">Shapes do not fit (the message names them).</exception>
    /// <exception cref="ArgumentOutOfRangeException">dim &lt; 1, maxPeriod &lt; 1, or half == downscaleFreqShift
    /// (diffusers would divide by zero and return NaN).</exception>
    public static void Run(Tensor timesteps, int dim, bool flipSinToCos, float downscaleFreqShift, Tensor y, float scale = 1f, int maxPeriod = 10000)
    {
        Shape.RequireRank("timestep embedding", timesteps, "timesteps", 1);
        Shape.RequireSameDevice("timestep embedding", timesteps, y);
        Launch(timesteps.Shape[0], true, 0f, timesteps, dim, flipSinToCos, downscaleFreqShift, y, scale, maxPeriod);
    }

    /// <summary>Every row of y ([N, dim]) = the embedding of the one <paramref name="timestep"/>, passed to the kernel as
    /// an argument: a sampler step's forward pass then copies nothing from the host. Bitwise equal to
    /// <see cref="Run(Tensor, int, bool, float, Tensor, float, int)"/> with N copies of the timestep.</summary>
    /// <exception cref="ArgumentException">y is not rank 2 with dim columns.</exception>
    /// <exception cref="ArgumentOutOfRangeException">As the per-item form.</exception>
    public static void Run(float timestep, int dim, bool flipSinToCos, float downscaleFreqShift, Tensor y, float scale = 1f, int maxPeriod = 10000)
    {
        Shape.RequireRank("timestep embedding", y, "y", 2);
        Launch(y.Shape[0], false, timestep, y, dim, flipSinToCos, downscaleFreqShift, y, scale, maxPeriod);
    }

    private static void Launch(int batch, bool perItem, float timestep, Tensor timesteps, int dim, bool flipSinToCos, float downscaleFreqShift,
        Tensor y, float scale, int maxPeriod)
    {
        if (dim < 1) throw new ArgumentOutOfRangeException(nameof(dim), dim, "timestep embedding: dim must be >= 1");
        if (maxPeriod < 1) throw new ArgumentOutOfRangeException(nameof(maxPeriod), maxPeriod, "timestep embedding: maxPeriod must be >= 1");
        int half = dim / 2;
        float denominator = (float)(half - (double)downscaleFreqShift);
        if (half > 0 && denominator == 0f)
            throw new ArgumentOutOfRangeException(nameof(downscaleFreqShift), downscaleFreqShift,
                $"timestep embedding: dim/2 = {half} equals downscaleFreqShift, so the exponent divides by zero");
        Shape.Require("timestep embedding", y, "y", batch, dim);
        var plan = y.Device.Plan(y.Length);
        var k = y.Device.Kernel("timestep-embedding", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int, int,
            float, float, float, int, float, ArrayView<float>, ArrayView<float>>(Kernel));
        // The uniform form passes y as the unread timesteps view (a kernel argument must be a valid view).
        k(plan.Threads, plan, dim, flipSinToCos ? 1 : 0, (float)-Math.Log(maxPeriod), denominator, scale, perItem ? 1 : 0, timestep,
            timesteps.View, y.View);
    }
}

using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Reductions;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;
using PosteriorGpu.Models.Priors;
using PosteriorGpu.Models.Schedules;

namespace PosteriorGpu.Cli.Studies;

/// <summary>
/// A score model with a bounded error field, for robustness experiments on a prior centred at 0 with unit
/// variance per coordinate: s'(x, t) = s(x, t) + e(x) with e(x) = -Bound tanh((r - c) / w) x / ||x|| on the shell
/// Inner &lt;= r &lt;= Outer of r = ||x|| / sqrt(d) (c the shell's middle, w a tenth of its width) and 0 elsewhere:
/// a radial trap of strength at most Bound on a shell inside the prior's typical radius 1, where N(0, I_d) puts
/// little mass (about 0.2% for the shell [0.45, 0.75] in d = 64) but plain Langevin's transient, whose variance
/// dips to about a half (Xun, Gupta, Price, Figure 3), passes. In epsilon form eps' = eps - sqrt(1 - a) e(x).
/// Not thread-safe.
/// </summary>
internal sealed class RadialScoreError(IScoreModel inner, NoiseSchedule schedule, double bound, double innerRadius, double outerRadius)
    : IScoreModel, IDisposable
{
    private readonly Func<double, double> alphaBar = AlphaBar.Interpolated(schedule.AlphasCumprodDouble);
    private readonly TensorPool pool = new(inner.Device);
    private float[] host = [];

    /// <inheritdoc/>
    public GpuDevice Device => inner.Device;

    /// <inheritdoc/>
    public int Channels => inner.Channels;

    /// <inheritdoc/>
    public int Height => inner.Height;

    /// <inheritdoc/>
    public int Width => inner.Width;

    /// <summary>sup ||e||.</summary>
    public double Bound => bound;

    /// <summary>e at normalised radius r, as a multiple of -x / ||x||.</summary>
    public double Strength(double r)
    {
        if (r < innerRadius || r > outerRadius) return 0;
        double c = (innerRadius + outerRadius) / 2, w = (outerRadius - innerRadius) / 10;
        return bound * Math.Tanh((r - c) / w);
    }

    /// <summary>Whether normalised radius r lies on the shell.</summary>
    public bool OnShell(double r) => r >= innerRadius && r <= outerRadius;

    /// <inheritdoc/>
    public void PredictEpsilon(Tensor x, ReadOnlySpan<float> timesteps, Tensor epsilon)
    {
        ScoreModelTimesteps.Require(timesteps, x.N, "radial score error");
        inner.PredictEpsilon(x, timesteps, epsilon);
        int n = x.N, d = x.ItemLength;
        if (n == 0) return;
        using var norm = pool.Rent(n);
        BatchReduce.SquaredNorm(x, norm);
        if (host.Length != n) host = new float[n];
        norm.CopyTo(host);
        for (int i = 0; i < n; i++)
        {
            double a = alphaBar(ScoreModelTimesteps.Of(timesteps, i));
            double length = Math.Sqrt(host[i]);
            // eps' = eps - sqrt(1 - a) e = eps + sqrt(1 - a) Strength(r) x / ||x||.
            host[i] = length > 0 ? (float)(Math.Sqrt(1 - a) * Strength(length / Math.Sqrt(d)) / length) : 0f;
        }
        using var scale = pool.Rent(n);
        scale.CopyFrom(host);
        using var field = pool.Rent(x.Shape);
        ScalePerItem.Run(x, scale, field);
        Axpby.Run(1f, field, 1f, epsilon);
    }

    /// <summary>Frees the work buffers.</summary>
    public void Dispose() => pool.Dispose();
}

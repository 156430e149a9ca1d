using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Reductions;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Models.Schedules;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Samplers.Posterior;

/// <summary>Steps every posterior sampler shares: one measurement copied to every chain, the operator norm that sets step sizes, and the finiteness check.</summary>
internal static class PosteriorCommon
{
    /// <summary>Steps (DPS, LGD-MC) or sweeps (DPnP) between two host reads of a posterior sampler's divergence ring
    /// (<see cref="DivergenceRing"/>): the unconditional samplers' default, 16. Annealed Langevin reads after whole levels
    /// (its diagnosis replays the failing level): once per <see cref="AnnealedLangevinSampler.LevelsPerCheck"/> levels.</summary>
    public const int DivergenceCheckInterval = DiffusionSampler.DefaultDivergenceCheckInterval;

    /// <summary>A rented [N, ...] copy of y for N chains (y is one measurement [1, ...] or one per chain).</summary>
    /// <exception cref="ArgumentException">y has neither 1 nor N items, or holds NaN or infinity.</exception>
    public static Tensor PerChain(Tensor y, int n, int[] measurementShape, TensorPool pool, string sampler, string what = "the measurement y")
    {
        if (y.N != 1 && y.N != n)
            throw new ArgumentException($"{sampler}: y {Shape.Format(y.Shape)} must hold one measurement or one per chain ({n})");
        var copy = pool.Rent(new[] { n }.Concat(measurementShape).ToArray());
        if (y.N == n)
        {
            copy.CopyFrom(y);
        }
        else
        {
            copy.Clear();                       // pooled memory may hold NaN, and 0 * NaN is NaN
            Affine.Run(copy, 0f, 1f, copy);     // ones
            BroadcastMultiply.Run(copy, y, copy);
        }
        // A NaN in y would surface levels later as a diverged chain; say so now.
        using var norm = pool.Rent(n);
        var norms = new float[n];
        Divergence.SquaredNorms(copy, norm, norms);
        var bad = Divergence.NonFinite(norms);
        if (bad.Length > 0)
        {
            copy.Dispose();
            throw new ArgumentException($"{sampler}: {what} holds NaN or infinity (or values too large to square in float32) for chain(s) {string.Join(", ", bad.Take(8))}");
        }
        return copy;
    }

    /// <summary>||A||^2 by 30 power iterations on A^T A from a fixed start.</summary>
    public static double OperatorNormSquared(ILinearOperator op, TensorPool pool)
    {
        using var v = pool.Rent(new[] { 1 }.Concat(op.InputShape).ToArray());
        using var av = pool.Rent(new[] { 1 }.Concat(op.MeasurementShape).ToArray());
        using var norm = pool.Rent(1);
        var draw = new RandomDraw(1, RandomStreams.PowerIteration, 0);
        var start = new float[v.Length];
        for (int i = 0; i < start.Length; i++) start[i] = draw.Normal(i);
        v.CopyFrom(start);
        double lambda = 0;
        var host = new float[1];
        for (int it = 0; it < 30; it++)
        {
            BatchReduce.SquaredNorm(v, norm);
            norm.CopyTo(host);
            if (!(host[0] > 0)) return 0;
            Axpby.Run(0f, v, 1f / MathF.Sqrt(host[0]), v);
            op.Forward(v, av);
            op.Adjoint(av, v);
            BatchReduce.SquaredNorm(v, norm);
            norm.CopyTo(host);
            lambda = Math.Sqrt(host[0]);   // ||A^T A u|| for a unit u
        }
        return lambda;
    }

    /// <summary>Reads <paramref name="ring"/> (row 0: x's squared norms) once and throws <see cref="SamplerDivergedException"/>
    /// naming the first of steps <paramref name="first"/>..<paramref name="last"/> (0-based) where a chain stopped being finite.</summary>
    public static void CheckFinite(DivergenceRing ring, string sampler, int first, int last, int steps)
    {
        ring.Read();
        for (int i = first; i <= last; i++)
            if (Divergence.NonFinite(ring.Values(i, 0)).Length > 0) throw new SamplerDivergedException(sampler, i + 1, steps, -1);
    }
}

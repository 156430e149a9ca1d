using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;
using PosteriorGpu.Models.Schedules;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Samplers.Posterior;

/// <summary>
/// The measurement guidance of one step of <see cref="GuidedDdpm"/>: from Tweedie's estimate x0^ it writes the gradient
/// g (in x0) of the log-likelihood it approximates p(y | x_t) by, and per chain the squared residual the
/// <see cref="DpsStepRule.ResidualNorm"/> rule divides by. DPS: grad log p(y | x0^); LGD-MC: a particle average.
/// </summary>
internal interface IMeasurementGuidance : IDisposable
{
    /// <summary>Writes g and (when <paramref name="needResidual"/>) <paramref name="squaredResidual"/>; returns the first
    /// chain whose guidance is not usable (NaN or +infinity), else -1.</summary>
    int Run(Tensor x0, int step, double alphaBar, bool needResidual, Tensor g, float[] squaredResidual);
}

/// <summary>
/// The loop DPS and LGD-MC share (Chung et al.'s Algorithm 1): DDPM ancestral steps from pure noise, each followed by a
/// guidance step: Tweedie's x0^ = (x_t - sqrt(1 - a) eps) / sqrt(a), the guidance g at x0^ weighed per chain by the step
/// rule, carried to x_t through the network, (g - sqrt(1 - a) J^T g) / sqrt(a) with J the Jacobian of eps
/// (<see cref="IDifferentiableScoreModel.EpsilonVjp"/>), and added after the DDPM step.
/// </summary>
internal static class GuidedDdpm
{
    /// <summary>The model as a differentiable one that can differentiate; the errors say what <paramref name="name"/>
    /// needs the gradients for.</summary>
    /// <exception cref="ArgumentException">The model is not differentiable, or was loaded without gradients.</exception>
    public static IDifferentiableScoreModel RequireGradients(IScoreModel model, string name, string what)
    {
        ArgumentNullException.ThrowIfNull(model);
        var differentiable = model as IDifferentiableScoreModel ?? throw new ArgumentException(
            $"{name}: the score model {model.GetType().Name} is not differentiable (it does not implement IDifferentiableScoreModel); " +
            $"{what} through the network's epsilon", nameof(model));
        if (!differentiable.CanDifferentiate)
            throw new ArgumentException(
                $"{name}: the score model {model.GetType().Name} was loaded without gradients (CanDifferentiate is false); " +
                $"{name.ToUpperInvariant()} differentiates through the network: load it with withGradients: true", nameof(model));
        return differentiable;
    }

    /// <summary>Runs <paramref name="steps"/> guided DDPM steps into x (the arguments checked by the caller);
    /// <paramref name="guidance"/> makes the step's guidance from the per-chain measurements y_k.</summary>
    public static PosteriorRun Sample(string name, IDifferentiableScoreModel model, NoiseSchedule schedule, int steps, double stepSize,
        DpsStepRule rule, Tensor x, Tensor y, IForwardOperator op, float sigmaY, ulong seed, long firstSample,
        Func<TensorPool, Tensor, IMeasurementGuidance> guidance, IProgress<SamplerProgress>? progress, CancellationToken cancellationToken)
    {
        int n = x.N;
        using var exclusive = x.Device.Exclusive(cancellationToken);   // concurrent runs on one device take turns
        using var pool = new TensorPool(x.Device);
        using var yk = PosteriorCommon.PerChain(y, n, op.MeasurementShape, pool, name);
        using var eps = pool.Rent(x.Shape);
        using var x0 = pool.Rent(x.Shape);
        using var g = pool.Rent(x.Shape);
        using var jtg = pool.Rent(x.Shape);
        using var norm = pool.Rent(n);
        using var scales = pool.Rent(n);
        using var guide = guidance(pool, yk);
        var host = new float[n];
        var timestep = new float[1];
        x.Clear();
        AddNoise.Run(x, 1f, new RandomDraw(seed, RandomStreams.Start, 0).ForBatch(firstSample, x.ItemLength));

        var timesteps = schedule.Timesteps(steps);
        for (int i = 0; i < steps; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int t = timesteps[i];
            double a = schedule.AlphaCumprod(t);
            double ap = schedule.AlphaCumprodPrev(schedule.PreviousTimestep(t, steps));
            timestep[0] = t;
            float sa = (float)Math.Sqrt(a), sb = (float)Math.Sqrt(1 - a);

            // Tweedie's estimate and the guidance there, weighed per chain.
            model.PredictEpsilon(x, timestep, eps);
            x0.CopyFrom(x);
            Axpby.Run(-sb / sa, eps, 1f / sa, x0);
            int bad = guide.Run(x0, i, a, rule == DpsStepRule.ResidualNorm, g, host);
            if (bad >= 0)
                throw new SamplerDivergedException(name, i + 1, steps, $"timestep {t}", DivergenceCause.Unknown, [bad], -1,
                    "the measurement guidance (a log-likelihood) is NaN or +infinity");
            if (rule == DpsStepRule.ResidualNorm)
            {
                float w = (float)(stepSize * sigmaY * sigmaY);
                for (int k = 0; k < n; k++) host[k] = host[k] > 0 ? w / MathF.Sqrt(host[k]) : 0f;   // a zero residual: nothing to correct
            }
            else
            {
                double ratio = a / ap;
                Array.Fill(host, (float)(stepSize * (1 - ratio) / Math.Sqrt(ratio)));
            }
            scales.CopyFrom(host);
            ScalePerItem.Run(g, scales, g);

            // J^T g through the network, then the gradient in x_t: (g - sqrt(1 - a) J^T g) / sqrt(a).
            model.EpsilonVjp(x, timestep, g, eps, jtg);
            Axpby.Run(-sb / sa, jtg, 1f / sa, g);

            var c = DiffusionStep.Ddpm(a, ap);
            if (i == steps - 1) c = c with { Sigma = 0 };
            DiffusionStep.Run(x, eps, c, new RandomDraw(seed, RandomStreams.DiffusionNoise, (ulong)i).ForBatch(firstSample, x.ItemLength));
            Axpby.Run(1f, g, 1f, x);
            PosteriorCommon.CheckFinite(x, norm, host, name, i + 1, steps);
            progress?.Report(new SamplerProgress(i + 1, steps));
        }
        return new PosteriorRun(steps);
    }
}

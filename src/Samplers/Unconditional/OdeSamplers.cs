using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;
using PosteriorGpu.Models.Schedules;

namespace PosteriorGpu.Samplers.Unconditional;

/// <summary>Deterministic multistep samplers keep the previous step's prediction in a pooled buffer. Holds no device memory between calls. Thread-safe: concurrent calls on one device take turns (GpuDevice.Exclusive).</summary>
public abstract class MultistepSampler(IScoreModel model, NoiseSchedule schedule, SamplerOptions? options)
    : DiffusionSampler(model, schedule, options)
{
    private Tensor? previous;
    private StepInfo last;

    /// <summary>The previous step (valid from the second step on).</summary>
    protected StepInfo Last => last;

    /// <inheritdoc/>
    protected override void Begin(Tensor x, TensorPool pool) => previous = pool.Rent(x.Shape);

    /// <inheritdoc/>
    protected override void End()
    {
        previous?.Dispose();
        previous = null;
    }

    /// <inheritdoc/>
    protected sealed override void Step(Tensor x, Tensor eps, StepInfo info, RandomDraw draw)
    {
        if (ClipsX0) ClipEpsilon(x, eps, info.AlphaT);   // only samplers that declare support get here
        MultistepUpdate.Run(x, eps, previous!, Coefficients(info));
        last = info;
    }

    /// <inheritdoc/>
    protected override int TableWidth => MultistepUpdate.TableWidth;

    /// <inheritdoc/>
    /// <remarks>Called step by step in order, so <see cref="Last"/> is the previous row's step, as in the plain loop.</remarks>
    protected override bool TryTableRow(StepInfo info, Span<float> row)
    {
        var c = Coefficients(info);
        (row[1], row[2], row[3], row[4], row[5]) = (c.Px, c.Pe, c.Cx, c.C1, c.C2);
        last = info;
        return true;
    }

    /// <inheritdoc/>
    protected override void StepFromTable(Tensor x, Tensor eps, Tensor row, RandomDraw draw) => MultistepUpdate.RunFromTable(x, eps, previous!, row);

    /// <summary>The fused update's scalars for this step.</summary>
    protected abstract MultistepUpdate.Coefficients Coefficients(StepInfo info);

    /// <summary>The score factor: s = -eps / sqrt(1 - a).</summary>
    protected static double ScoreFactor(double alpha) => -1 / Math.Sqrt(1 - alpha);

    /// <summary>The talk's Scheme 1 for this step: alpha_t = abar_t / abar_{t-1}, 1 / sqrt(alpha_t) and
    /// the score weight (1 - alpha_t) / (2 sqrt(alpha_t)).</summary>
    protected static (double Alpha, double Inverse, double ScoreWeight) Scheme1(StepInfo info)
    {
        double alpha = info.AlphaT / info.AlphaPrev;
        double inv = 1 / Math.Sqrt(alpha);
        return (alpha, inv, inv * (1 - alpha) / 2);
    }
}

/// <summary>
/// The probability-flow ODE sampler, "Scheme 1" of Li, Huang, Efimov, Wei and Chen (ICML 2024) as in
/// the talk: X_{t-1} = (X_t + (1 - alpha_t) / 2 s_t(X_t)) / sqrt(alpha_t), alpha_t = abar_t / abar_{t-1}.
/// First order.
/// Holds no device memory between calls. Thread-safe: concurrent calls on one device take turns (GpuDevice.Exclusive).
/// </summary>
public sealed class ProbabilityFlowSampler(IScoreModel model, NoiseSchedule schedule, SamplerOptions? options = null)
    : MultistepSampler(model, schedule, options)
{
    /// <inheritdoc/>
    public override string Name => "pf-ode";

    /// <inheritdoc/>
    protected override MultistepUpdate.Coefficients Coefficients(StepInfo info)
    {
        var (_, inv, c1) = Scheme1(info);
        return new(0f, (float)ScoreFactor(info.AlphaT), (float)inv, (float)c1, 0f);
    }
}

/// <summary>
/// The accelerated deterministic sampler of Li, Huang, Efimov, Wei and Chen (ICML 2024; "Scheme 2" in
/// the talk): the score is extrapolated linearly in alpha_bar from the previous step's (reused, one
/// network call per step): X_{t-1} = [X_t + (1 - a_t)/2 s_t + (1 - a_t)^2 / (4 (1 - a_{t+1}))
/// (s_t - sqrt(a_{t+1}) s_{t+1})] / sqrt(a_t). The first step has no history and is Scheme 1.
/// Second order: error O(1/T^2) against O(1/T) for the plain ODE sampler.
/// Holds no device memory between calls. Thread-safe: concurrent calls on one device take turns (GpuDevice.Exclusive).
/// </summary>
public sealed class LiAcceleratedSampler(IScoreModel model, NoiseSchedule schedule, SamplerOptions? options = null)
    : MultistepSampler(model, schedule, options)
{
    /// <inheritdoc/>
    public override string Name => "li-accelerated";

    /// <inheritdoc/>
    protected override MultistepUpdate.Coefficients Coefficients(StepInfo info)
    {
        var (alpha, inv, c1) = Scheme1(info);
        double c2 = 0;
        if (info.Index > 0)
        {
            double alphaNext = Last.AlphaT / Last.AlphaPrev;   // alpha_{t+1}: the previous step's
            double w = inv * (1 - alpha) * (1 - alpha) / (4 * (1 - alphaNext));
            c1 += w;
            c2 = -w * Math.Sqrt(alphaNext);
        }
        return new(0f, (float)ScoreFactor(info.AlphaT), (float)inv, (float)c1, (float)c2);
    }
}

/// <summary>
/// DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2): the multistep second-order solver
/// of the data-prediction ODE in lambda = log(alpha / sigma). With D = (1 + 1/(2r)) x0_s - 1/(2r) x0_prev,
/// r = h_prev / h: x_t = (sigma_t / sigma_s) x_s - alpha_t (e^{-h} - 1) D. The first step, and a
/// last step onto sigma = 0, are first order (as diffusers' lower_order_final / final_sigmas_type "zero").
/// With the schedule's config's thresholding the data prediction x0 is dynamically thresholded first, as diffusers'
/// DPMSolverMultistepScheduler.convert_model_output does (that scheduler has no clip_sample, so clip_sample is refused).
/// Holds no device memory between calls. Thread-safe: concurrent calls on one device take turns (GpuDevice.Exclusive).
/// </summary>
public sealed class DpmSolverPlusPlus2MSampler(IScoreModel model, NoiseSchedule schedule, SamplerOptions? options = null)
    : MultistepSampler(model, schedule, options)
{
    /// <inheritdoc/>
    public override string Name => "dpmsolver++2m";

    /// <inheritdoc/>
    protected override bool SupportsThresholding => true;

    private static double Lambda(double abar) => 0.5 * Math.Log(abar / (1 - abar));

    /// <inheritdoc/>
    protected override MultistepUpdate.Coefficients Coefficients(StepInfo info)
    {
        double aS = info.AlphaT, aT = info.AlphaPrev;
        // The prediction is x0 = (x - sqrt(1 - a) eps) / sqrt(a).
        float px = (float)(1 / Math.Sqrt(aS)), pe = (float)(-Math.Sqrt((1 - aS) / aS));
        double alphaT = Math.Sqrt(aT);
        if (aT >= 1) return new(px, pe, 0f, (float)alphaT, 0f);   // sigma_t = 0: x_t = x0
        if (aT == aS) return new(px, pe, 1f, 0f, 0f);             // a step of length zero
        double sigmaS = Math.Sqrt(1 - aS), sigmaT = Math.Sqrt(1 - aT);
        double h = Lambda(aT) - Lambda(aS);
        // 1 - e^{-h}, by its series where the subtraction would cancel.
        double phi = h < 1e-4 ? h - h * h / 2 + h * h * h / 6 : 1 - Math.Exp(-h);
        double cx = sigmaT / sigmaS, c1 = alphaT * phi, c2 = 0;
        if (info.Index > 0)
        {
            double r = (Lambda(aS) - Lambda(Last.AlphaT)) / h;
            c1 = alphaT * phi * (1 + 1 / (2 * r));
            c2 = -alphaT * phi / (2 * r);
        }
        return new(px, pe, (float)cx, (float)c1, (float)c2);
    }
}

using PosteriorGpu.Kernels.Device;
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
/// Everything stays on the device: a guidance step makes no host synchronisation.
/// </summary>
internal interface IMeasurementGuidance : IDisposable
{
    /// <summary>True when <see cref="Run"/> writes a health flag per chain (its guidance can fail: a log-likelihood NaN or +infinity).</summary>
    bool ReportsHealth { get; }

    /// <summary>Writes g, (when <paramref name="needResidual"/>) <paramref name="squaredResidual"/> ([N]) and, when
    /// <see cref="ReportsHealth"/>, <paramref name="health"/> ([N]: 0 for a usable chain, NaN for one whose guidance is not).</summary>
    void Run(Tensor x0, int step, double alphaBar, bool needResidual, Tensor g, Tensor squaredResidual, Tensor? health);
}

/// <summary>
/// The loop DPS and LGD-MC share (Chung et al.'s Algorithm 1): DDPM ancestral steps from pure noise, each followed by a
/// guidance step: Tweedie's x0^ = (x_t - sqrt(1 - a) eps) / sqrt(a), the guidance g at x0^ weighed per chain by the step
/// rule, carried to x_t through the network, (g - sqrt(1 - a) J^T g) / sqrt(a) with J the Jacobian of eps
/// (<see cref="IDifferentiableScoreModel.EpsilonVjp"/>), and added after the DDPM step. A step makes no host
/// synchronisation and no host copy: the per-chain weights are a kernel's (<see cref="GuidanceScales"/>), and x's squared
/// norms and the guidance's health go to a <see cref="DivergenceRing"/> read once per
/// <see cref="PosteriorCommon.DivergenceCheckInterval"/> steps (and after the last).
/// </summary>
internal static class GuidedDdpm
{
    /// <summary>Columns of a graph-replay table row: DiffusionStep's five (timestep, X, Eps, Sigma, step), then Tweedie's
    /// coefficients (x0^ = TweedieEps eps + TweedieX x, and the same pair carries J^T g to x_t) and the guidance weight w.</summary>
    private const int TweedieEps = DiffusionStep.TableWidth, TweedieX = TweedieEps + 1, Weight = TweedieX + 1, TableWidth = Weight + 1;

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
    /// <paramref name="guidance"/> makes the step's guidance from the per-chain measurements y_k. With
    /// <paramref name="replay"/> the steps read their scalars from a per-run device table and replay as CUDA graphs where
    /// they can (<see cref="WindowReplay"/>; bitwise the plain loop), and the request gets the report. Only guidance that
    /// ignores its step and alpha_bar arguments may ask (DPS's: a replayed graph repeats the captured host values; LGD-MC's
    /// particles use them, so LGD-MC never asks).</summary>
    public static PosteriorRun Sample(string name, IDifferentiableScoreModel model, NoiseSchedule schedule, int steps, double stepSize,
        DpsStepRule rule, Tensor x, Tensor y, IForwardOperator op, float sigmaY, ulong seed, long firstSample,
        Func<TensorPool, Tensor, IMeasurementGuidance> guidance, IProgress<SamplerProgress>? progress, CancellationToken cancellationToken,
        ReplayRequest? replay = null)
    {
        int n = x.N;
        using var exclusive = x.Device.Exclusive(cancellationToken);   // concurrent runs on one device take turns
        using var pool = new TensorPool(x.Device);
        using var yk = PosteriorCommon.PerChain(y, n, op.MeasurementShape, pool, name);
        using var eps = pool.Rent(x.Shape);
        using var x0 = pool.Rent(x.Shape);
        using var g = pool.Rent(x.Shape);
        using var jtg = pool.Rent(x.Shape);
        using var residual = pool.Rent(n);
        using var scales = pool.Rent(n);
        using var guide = guidance(pool, yk);
        // Row 0 of a step's slot: x's squared norms after the step; row 1 (guidance that can fail): its health flags.
        using var ring = new DivergenceRing(pool, n, guide.ReportsHealth ? 2 : 1, Math.Min(PosteriorCommon.DivergenceCheckInterval, steps));
        var timestep = new float[1];
        x.Clear();
        AddNoise.Run(x, 1f, new RandomDraw(seed, RandomStreams.Start, 0).ForBatch(firstSample, x.ItemLength));

        var timesteps = schedule.Timesteps(steps);
        bool residualRule = rule == DpsStepRule.ResidualNorm;
        if (replay is not null)
        {
            string? why = model is not IDeviceTimestepDifferentiableScoreModel
                ? $"the model ({model.GetType().Name}) cannot read its timesteps on the device"
                : steps > StepTable.MaxSteps ? $"more than {StepTable.MaxSteps} steps"
                : null;
            replay.Report = why is null ? null : new StepLaunchReport(false, 0, 0, 0, why);
        }
        Steps step = new(model, guide, residualRule, x, eps, x0, g, jtg, residual, scales, ring);
        void Finish(int i)
        {
            if (ring.Due(i, steps - 1)) CheckFinite(name, ring, guide.ReportsHealth, ring.WindowStart(i), i, timesteps);
            progress?.Report(new SamplerProgress(i + 1, steps));
        }
        if (replay is { Report: null })
        {
            using var run = new TableRun(pool, Table(schedule, timesteps, stepSize, residualRule, sigmaY), TableWidth, n);
            using var head = run.Row.SliceBatch(0, DiffusionStep.TableWidth);   // DiffusionStep's columns
            var draw = new RandomDraw(seed, RandomStreams.DiffusionNoise, 0).ForBatch(firstSample, x.ItemLength);
            void FromTable(int i)
            {
                run.Select();
                step.FromRow(i, run.Timesteps, run.Row, head, draw);
            }
            WindowReplay.Run(x.Device, steps, ring.Interval, FromTable, Finish, replay.CaptureForTests, r => replay.Report = r,
                cancellationToken);
            return new PosteriorRun(steps);
        }
        for (int i = 0; i < steps; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var (t, a, ap) = Levels(schedule, timesteps, i);
            timestep[0] = t;
            var (sa, sb) = Tweedie(a);
            step.Plain(i, timestep, a, -sb / sa, 1f / sa, GuidanceWeight(a, ap, stepSize, residualRule, sigmaY), DdpmStep(a, ap, i, steps),
                new RandomDraw(seed, RandomStreams.DiffusionNoise, (ulong)i).ForBatch(firstSample, x.ItemLength));
            Finish(i);
        }
        return new PosteriorRun(steps);
    }

    /// <summary>Step <paramref name="i"/>'s timestep and the alpha_bar values it walks between.</summary>
    private static (int T, double A, double APrev) Levels(NoiseSchedule schedule, int[] timesteps, int i)
    {
        int t = timesteps[i];
        return (t, schedule.AlphaCumprod(t), schedule.AlphaCumprodPrev(schedule.PreviousTimestep(t, timesteps.Length)));
    }

    /// <summary>sqrt(a) and sqrt(1 - a), in float as the step's kernels take them.</summary>
    private static (float Sa, float Sb) Tweedie(double a) => ((float)Math.Sqrt(a), (float)Math.Sqrt(1 - a));

    /// <summary>The guidance weight w of the step rule (per chain divided by the residual's norm under the residual rule).</summary>
    private static float GuidanceWeight(double a, double ap, double stepSize, bool residualRule, float sigmaY)
    {
        double ratio = a / ap;
        return residualRule ? (float)(stepSize * sigmaY * sigmaY) : (float)(stepSize * (1 - ratio) / Math.Sqrt(ratio));
    }

    /// <summary>The DDPM step's coefficients (the last step adds no noise).</summary>
    private static DiffusionStep.Coefficients DdpmStep(double a, double ap, int i, int steps)
    {
        var c = DiffusionStep.Ddpm(a, ap);
        return i == steps - 1 ? c with { Sigma = 0 } : c;
    }

    /// <summary>The run's table: per step the values the plain loop passes as arguments, in <see cref="TableWidth"/> columns.</summary>
    private static float[] Table(NoiseSchedule schedule, int[] timesteps, double stepSize, bool residualRule, float sigmaY)
    {
        int steps = timesteps.Length;
        var table = new float[steps * TableWidth];
        for (int i = 0; i < steps; i++)
        {
            var (t, a, ap) = Levels(schedule, timesteps, i);
            var (sa, sb) = Tweedie(a);
            var c = DdpmStep(a, ap, i, steps);
            var row = table.AsSpan(i * TableWidth, TableWidth);
            (row[0], row[1], row[2], row[3], row[4]) = (t, c.X, c.Eps, c.Sigma, i);
            (row[TweedieEps], row[TweedieX], row[Weight]) = (-sb / sa, 1f / sa, GuidanceWeight(a, ap, stepSize, residualRule, sigmaY));
        }
        return table;
    }

    /// <summary>One guided step over the run's buffers, in its two forms side by side: <see cref="Plain"/> with the step's
    /// scalars as kernel arguments, <see cref="FromRow"/> with each of them read from the current table row instead (the
    /// same launches in the same order, so bitwise the plain step, and the same arguments at every step).</summary>
    private sealed record Steps(IDifferentiableScoreModel Model, IMeasurementGuidance Guide, bool ResidualRule, Tensor X,
        Tensor Eps, Tensor X0, Tensor G, Tensor Jtg, Tensor Residual, Tensor Scales, DivergenceRing Ring)
    {
        /// <summary>Step i at timestep <paramref name="timestep"/> (alpha_bar <paramref name="a"/>): Tweedie's
        /// x0^ = tweedieEps eps + tweedieX x, the guidance there weighed by <paramref name="w"/> (per chain by the step rule),
        /// carried to x_t through the network by the same pair, the DDPM step, and the divergence record.</summary>
        public void Plain(int i, float[] timestep, double a, float tweedieEps, float tweedieX, float w, DiffusionStep.Coefficients ddpm,
            RandomDraw draw)
        {
            // Tweedie's estimate and the guidance there, weighed per chain (on the device: no read-back of the residuals).
            Model.PredictEpsilon(X, timestep, Eps);
            X0.CopyFrom(X);
            Axpby.Run(tweedieEps, Eps, tweedieX, X0);
            Guide.Run(X0, i, a, ResidualRule, G, Residual, Guide.ReportsHealth ? Ring.Row(i, 1) : null);
            GuidanceScales.Run(ResidualRule ? Residual : null, w, Scales);
            ScalePerItem.Run(G, Scales, G);

            // J^T g through the network, then the gradient in x_t: (g - sqrt(1 - a) J^T g) / sqrt(a).
            Model.EpsilonVjp(X, timestep, G, Eps, Jtg);
            Axpby.Run(tweedieEps, Jtg, tweedieX, G);

            DiffusionStep.Run(X, Eps, ddpm, draw);
            Axpby.Run(1f, G, 1f, X);
            Ring.Record(i, 0, X);
        }

        /// <summary>Step i with its scalars from the current row (<paramref name="head"/>: the row's DiffusionStep columns;
        /// <paramref name="draw"/>: the run's first draw, which the row's step index advances).</summary>
        public void FromRow(int i, Tensor timesteps, Tensor row, Tensor head, RandomDraw draw)
        {
            var model = (IDeviceTimestepDifferentiableScoreModel)Model;
            model.PredictEpsilon(X, timesteps, Eps);
            X0.CopyFrom(X);
            Axpby.RunFromRow(row, TweedieEps, TweedieX, Eps, X0);
            Guide.Run(X0, i, double.NaN, ResidualRule, G, Residual, Guide.ReportsHealth ? Ring.Row(i, 1) : null);
            GuidanceScales.RunFromRow(ResidualRule ? Residual : null, row, Weight, Scales);
            ScalePerItem.Run(G, Scales, G);
            model.EpsilonVjp(X, timesteps, G, Eps, Jtg);
            Axpby.RunFromRow(row, TweedieEps, TweedieX, Jtg, G);
            DiffusionStep.RunFromTable(X, Eps, head, draw);
            Axpby.Run(1f, G, 1f, X);
            Ring.Record(i, 0, X);
        }
    }

    /// <summary>Reads the ring once (steps <paramref name="first"/>..<paramref name="last"/>, 0-based) and throws at the first
    /// step whose guidance failed or whose x is not finite.</summary>
    private static void CheckFinite(string name, DivergenceRing ring, bool health, int first, int last, int[] timesteps)
    {
        ring.Read();
        int steps = timesteps.Length;
        for (int i = first; i <= last; i++)
        {
            string later = i == last ? "" : $"; noticed at the check after step {last + 1} (every {ring.Interval} steps), which x holds";
            if (health && Divergence.NonFinite(ring.Values(i, 1)) is { Length: > 0 } failed)
                throw new SamplerDivergedException(name, i + 1, steps, $"timestep {timesteps[i]}", DivergenceCause.Unknown, [failed[0]], -1,
                    "the measurement guidance (a log-likelihood) is NaN or +infinity" + later);
            if (Divergence.NonFinite(ring.Values(i, 0)).Length > 0)
                throw new SamplerDivergedException(name, i + 1, steps, -1);
        }
    }
}

/// <summary>A guided run's request for graph replay (<see cref="DpsOptions.GraphReplay"/>) and, after the run, what it got.</summary>
internal sealed class ReplayRequest
{
    /// <summary>Stands in for <see cref="CudaGraph.Capture"/> in tests (<see cref="DiffusionSampler.GraphReplay"/>'s likewise).</summary>
    public Func<GpuDevice, Action, ILaunchReplay>? CaptureForTests { get; init; }

    /// <summary>How the run launched its steps.</summary>
    public StepLaunchReport? Report { get; set; }
}

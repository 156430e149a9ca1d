using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Reductions;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;
using PosteriorGpu.Models.Schedules;

namespace PosteriorGpu.Samplers.Unconditional;

/// <summary>
/// The loop every unconditional sampler shares (k-diffusion style: the subclass supplies one
/// update): for each timestep, one network call, the conversion of its output to epsilon, the
/// sampler's fused update, a finiteness check, progress and cancellation. Work buffers come from a
/// pool owned by the run, so no device memory is allocated after the first step. A run holds its
/// device (<see cref="Kernels.Device.GpuDevice.Exclusive"/>): runs started from several threads on one
/// device take turns, each giving what it gives alone.
/// </summary>
public abstract class DiffusionSampler
{
    /// <summary>Random stream of the samplers' in-loop noise (distinct from other users of a seed).</summary>
    public const uint NoiseStream = RandomStreams.DiffusionNoise;

    /// <summary>Steps between two reads of the divergence record (<see cref="DivergenceCheckInterval"/>'s default). Each step
    /// writes the squared norms of x and eps into a device ring without waiting; every 16 steps (and after the last) the
    /// host reads the ring once, so a step costs no host synchronisation: a 1000-step run reads back 63 times (and once at the start), not 1000.</summary>
    public const int DefaultDivergenceCheckInterval = 16;

    private readonly float[] timestepScratch = new float[1];
    private float[] norms = [];
    private float[] ringHost = [];
    private double largestBefore;
    private int checkInterval = DefaultDivergenceCheckInterval;

    private Tensor? thresholds;
    private Tensor? histogram;

    /// <summary>Sets the model, its schedule and the walk options (by default the schedule's config's, else diffusers' defaults).</summary>
    /// <exception cref="NotSupportedException">The schedule's config sets clip_sample or thresholding and the sampler does
    /// not implement it (<see cref="NoiseSchedule.RequireSupported"/>).</exception>
    protected DiffusionSampler(IScoreModel model, NoiseSchedule schedule, SamplerOptions? options)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(schedule);
        Model = model;
        Schedule = schedule;
        Options = options ?? (schedule.Config is { } config ? SamplerOptions.FromConfig(config) : new SamplerOptions());
        schedule.RequireSupported(Name, SupportsClipSample, SupportsThresholding);
    }

    /// <summary>Whether the sampler clamps its predicted x0 when the schedule's config sets clip_sample (DDPM and DDIM do).</summary>
    protected virtual bool SupportsClipSample => false;

    /// <summary>Whether the sampler applies dynamic thresholding when the schedule's config sets thresholding (DDPM, DDIM and DPM-Solver++ do).</summary>
    protected virtual bool SupportsThresholding => false;

    /// <summary>True when this run's steps clip or threshold x0 (<see cref="ClippedStep"/> or <see cref="ClipEpsilon"/> before the fused update).</summary>
    protected bool ClipsX0 => Schedule.ClipSample || Schedule.Thresholding;

    /// <summary>The sampler's name as the command line writes it.</summary>
    public abstract string Name { get; }

    /// <summary>The noise-prediction network.</summary>
    public IScoreModel Model { get; }

    /// <summary>The training noise schedule.</summary>
    public NoiseSchedule Schedule { get; }

    /// <summary>Timestep spacing and the other diffusers options.</summary>
    public SamplerOptions Options { get; }

    /// <summary>
    /// How many steps run between two host reads of the divergence record (default
    /// <see cref="DefaultDivergenceCheckInterval"/>). Every step's finiteness is recorded on the device, so a
    /// <see cref="SamplerDivergedException"/> names the first failing step, its items and its cause whatever the
    /// interval; with an interval above 1 the run notices it up to interval - 1 steps later, and x then holds that later
    /// step (the message says which). 1 checks after every step (one host synchronisation a step) and stops x at the
    /// failing step.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Set below 1.</exception>
    public int DivergenceCheckInterval
    {
        get => checkInterval;
        set => checkInterval = value >= 1 ? value
            : throw new ArgumentOutOfRangeException(nameof(DivergenceCheckInterval), value, $"{Name}: the divergence check interval must be at least 1 step");
    }

    /// <summary>
    /// Whether runs replay their steps as a CUDA graph (default false: every kernel launched from the host at every step).
    /// When true, and the sampler and model allow it (DDPM, DDIM, the probability-flow ODE, Li et al.'s accelerated sampler
    /// or DPM-Solver++(2M), without clip_sample or thresholding; an epsilon-predicting <see cref="IDeviceTimestepScoreModel"/>),
    /// each step reads its timestep, coefficients and noise counter from a per-run device table, so its launches are the
    /// same at every step; on a CUDA device one window of <see cref="DivergenceCheckInterval"/> steps is captured once (after a first window launched plainly, which warms the
    /// kernels and pools up) and replayed for every later full window, one graph launch per window. Results are bitwise
    /// those of the plain path. Elsewhere (the CPU accelerator, OpenCL, a sampler or model without the table form) the run
    /// falls back: to the table's steps launched one by one, or to the plain path; <see cref="LastStepLaunches"/> says which
    /// and why. Progress is reported and cancellation checked once per replayed window.
    /// </summary>
    public bool GraphReplay { get; set; }

    /// <summary>Stands in for <see cref="CudaGraph.Capture"/> (tests: a replay that re-runs the captured host code runs the
    /// window's loop off CUDA, so the CPU checks that nothing in a replayed window depends on the host's step).</summary>
    internal Func<GpuDevice, Action, ILaunchReplay>? CaptureForTests { get; set; }

    /// <summary>How the last run with <see cref="GraphReplay"/> launched its steps (null before one, or when the last run
    /// did not ask for graph replay).</summary>
    public StepLaunchReport? LastStepLaunches { get; private set; }

    /// <summary>For <see cref="GraphReplay"/>: the width of this sampler's rows in the per-run table (the timestep first, then
    /// what <see cref="StepFromTable"/> reads).</summary>
    protected virtual int TableWidth => DiffusionStep.TableWidth;

    /// <summary>For <see cref="GraphReplay"/>: writes one step's scalars into <paramref name="row"/>[1..] (row[0] holds the
    /// timestep), or returns false when this sampler's step has no table form (the run then takes the plain path). Called
    /// for every step in order, before the run's first step, and only for runs that neither clip nor threshold x0.</summary>
    protected virtual bool TryTableRow(StepInfo info, Span<float> row) => false;

    /// <summary>For <see cref="GraphReplay"/>: the step's update with its scalars read on the device from
    /// <paramref name="row"/> (the step's row of the table: the same launch at every step).</summary>
    protected virtual void StepFromTable(Tensor x, Tensor eps, Tensor row, RandomDraw draw) => DiffusionStep.RunFromTable(x, eps, row, draw);

    /// <summary>A <see cref="DiffusionStep.RunFromTable"/> row: [timestep, X, Eps, Sigma, the step's index] (the index is the
    /// noise's step offset from the run's first draw).</summary>
    protected static bool DiffusionRow(DiffusionStep.Coefficients c, StepInfo info, Span<float> row)
    {
        (row[1], row[2], row[3], row[4]) = (c.X, c.Eps, c.Sigma, info.Index);
        return true;
    }

    /// <summary>One step: the current and target timesteps and their alpha_bar values (<paramref name="Previous"/> is
    /// negative when the step lands before timestep 0, on alpha_bar 1 or alphas_cumprod[0] as set_alpha_to_one says).</summary>
    protected readonly record struct StepInfo(int Index, int Steps, int Timestep, double AlphaT, double AlphaPrev, int Previous = -1);

    /// <summary>
    /// Runs <paramref name="steps"/> steps in place on x ([N, C, H, W], holding x_T on entry and the
    /// sample on return). Noise is a function of (seed, step, global sample index): batch item n is
    /// sample <paramref name="firstSample"/> + n of the run.
    /// </summary>
    /// <exception cref="SamplerDivergedException">x stopped being finite; names the step, the items and the cause
    /// (x then holds the failing step: the items not named are finite).</exception>
    /// <exception cref="OperationCanceledException">The token was cancelled (x holds the last finished step).</exception>
    /// <exception cref="ArgumentException">x is not finite on entry, or has the wrong shape.</exception>
    public void Sample(Tensor x, int steps, ulong seed, long firstSample = 0,
        IProgress<SamplerProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        if (steps < 1) throw new ArgumentOutOfRangeException(nameof(steps), steps, $"{Name}: steps must be at least 1");
        var timesteps = Schedule.Timesteps(steps, Options.TimestepSpacing, Options.StepsOffset);
        // diffusers' convention: the step from t lands on t - T/n, whatever the spacing.
        var previous = timesteps.Select(t => Schedule.PreviousTimestep(t, steps)).ToArray();
        Run(x, timesteps, previous, seed, firstSample, 0, progress, cancellationToken);
    }

    /// <summary>
    /// Runs from x at <paramref name="timesteps"/>[0] down the given (descending) timesteps, each step
    /// landing on the next one and the last on alpha_bar = 1 (or alphas_cumprod[0] without
    /// set_alpha_to_one): sampling p(x_0 | x_t) from an intermediate level, as plug-and-play samplers
    /// need. <paramref name="drawOffset"/> shifts the noise counter so repeated calls draw fresh noise.
    /// </summary>
    public void SampleFrom(Tensor x, int[] timesteps, ulong seed, long firstSample = 0, ulong drawOffset = 0,
        IProgress<SamplerProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        if (timesteps.Length == 0) throw new ArgumentException($"{Name}: no timesteps to walk");
        for (int i = 1; i < timesteps.Length; i++)
            if (timesteps[i] >= timesteps[i - 1])
                throw new ArgumentException($"{Name}: timesteps must decrease, got {timesteps[i - 1]} then {timesteps[i]}");
        var previous = timesteps.Skip(1).Append(-1).ToArray();
        Run(x, timesteps, previous, seed, firstSample, drawOffset, progress, cancellationToken);
    }

    private void Run(Tensor x, int[] timesteps, int[] previous, ulong seed, long firstSample, ulong drawOffset,
        IProgress<SamplerProgress>? progress, CancellationToken cancellationToken)
    {
        Shape.RequireRank(Name, x, "x", 4);
        using var exclusive = x.Device.Exclusive(cancellationToken);   // concurrent runs on one device take turns
        if (x.C != Model.Channels || (Model.Height > 0 && x.H != Model.Height) || (Model.Width > 0 && x.W != Model.Width))
            throw new ArgumentException($"{Name}: the model takes [N, {Model.Channels}, {Model.Height}, {Model.Width}] but x has shape {Shape.Format(x.Shape)}");
        using var pool = new TensorPool(x.Device);
        using var eps = pool.Rent(x.Shape);
        using var norm = pool.Rent(x.N);
        if (norms.Length != x.N) norms = new float[x.N];
        Divergence.SquaredNorms(x, norm, norms);
        var bad = Divergence.NonFinite(norms);
        if (bad.Length > 0)
            throw new ArgumentException($"{Name}: the starting x holds NaN or infinity (or values too large to square in float32) in item(s) {string.Join(", ", bad)}");
        largestBefore = Divergence.Largest(norms);
        if (Schedule.Thresholding)
        {
            thresholds = pool.Rent(x.N);
            histogram = pool.Rent(x.N * DynamicThreshold.Bins);
        }
        // The divergence ring: row 0 of a step's slot holds x's squared norms after the step, row 1 eps's.
        using var ring = new DivergenceRing(pool, x.N, 2, Math.Min(checkInterval, timesteps.Length), ringHost);
        ringHost = ring.Host;
        LastStepLaunches = null;
        string? why = null;
        var table = GraphReplay ? TableOf(timesteps, previous, out why) : null;
        if (GraphReplay && table is null) LastStepLaunches = new StepLaunchReport(false, 0, 0, 0, why);
        Begin(x, pool);
        try
        {
            if (table is not null)
            {
                RunFromTable(x, eps, table, timesteps, seed, firstSample, drawOffset, pool, ring, progress, cancellationToken);
                return;
            }
            for (int i = 0; i < timesteps.Length; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                int t = timesteps[i];
                var info = InfoOf(i, timesteps, previous);
                timestepScratch[0] = t;
                Model.PredictEpsilon(x, timestepScratch, eps);
                ToEpsilon(x, eps, info.AlphaT);
                var draw = new RandomDraw(seed, NoiseStream, drawOffset + (ulong)i).ForBatch(firstSample, x.ItemLength);
                Step(x, eps, info, draw);
                ring.Record(i, 0, x);
                ring.Record(i, 1, eps);
                if (ring.Due(i, timesteps.Length - 1)) CheckFinite(ring, ring.WindowStart(i), i, timesteps);
                progress?.Report(new SamplerProgress(i + 1, timesteps.Length));
            }
        }
        finally
        {
            End();
            thresholds?.Dispose();
            histogram?.Dispose();
            thresholds = histogram = null;
        }
    }

    /// <summary>Step <paramref name="i"/> of a walk down <paramref name="timesteps"/>, each landing on <paramref name="previous"/>[i].</summary>
    private StepInfo InfoOf(int i, int[] timesteps, int[] previous) => new(i, timesteps.Length, timesteps[i],
        Schedule.AlphaCumprod(timesteps[i]), Schedule.AlphaCumprodPrev(previous[i], Options.SetAlphaToOne), previous[i]);

    /// <summary>The per-run device table of <see cref="GraphReplay"/> (rows of <see cref="TableWidth"/>: the timestep, then the
    /// sampler's scalars; host side), or null with the reason when this run cannot take that form.</summary>
    private float[]? TableOf(int[] timesteps, int[] previous, out string? why)
    {
        why = Model is not IDeviceTimestepScoreModel ? $"the model ({Model.GetType().Name}) cannot read its timesteps on the device"
            : Options.Prediction != PredictionType.Epsilon ? $"the model predicts {Options.Prediction}, which the table's step does not convert"
            : ClipsX0 ? "the schedule's config clips or thresholds x0, which the table's step does not do"
            : timesteps.Length > StepTable.MaxSteps ? $"more than {StepTable.MaxSteps} steps"
            : null;
        if (why is not null) return null;
        int width = TableWidth;
        var table = new float[timesteps.Length * width];
        for (int i = 0; i < timesteps.Length; i++)
        {
            var row = table.AsSpan(i * width, width);
            row[0] = timesteps[i];
            if (!TryTableRow(InfoOf(i, timesteps, previous), row))
            {
                why = $"the sampler '{Name}' has no table form of its step";
                return null;
            }
        }
        return table;
    }

    /// <summary>
    /// The steps of <see cref="GraphReplay"/>: every step is the same launches (the table's row selected and the counter
    /// advanced on the device, the network with device timesteps, the update from the row, the divergence record), run
    /// and replayed window by window (<see cref="WindowReplay"/>).
    /// </summary>
    private void RunFromTable(Tensor x, Tensor eps, float[] hostTable, int[] timesteps, ulong seed, long firstSample, ulong drawOffset,
        TensorPool pool, DivergenceRing ring, IProgress<SamplerProgress>? progress, CancellationToken cancellationToken)
    {
        int steps = timesteps.Length;
        var model = (IDeviceTimestepScoreModel)Model;
        using var table = new TableRun(pool, hostTable, TableWidth, x.N);
        var draw = new RandomDraw(seed, NoiseStream, drawOffset).ForBatch(firstSample, x.ItemLength);
        void Step(int i)
        {
            table.Select();
            model.PredictEpsilon(x, table.Timesteps, eps);
            StepFromTable(x, eps, table.Row, draw);
            ring.Record(i, 0, x);
            ring.Record(i, 1, eps);
        }
        void Finish(int i)
        {
            if (ring.Due(i, steps - 1)) CheckFinite(ring, ring.WindowStart(i), i, timesteps);
            progress?.Report(new SamplerProgress(i + 1, steps));
        }

        WindowReplay.Run(x.Device, steps, ring.Interval, Step, Finish, CaptureForTests, r => LastStepLaunches = r, cancellationToken);
    }

    /// <summary>For samplers that read their data prediction back from eps (DPM-Solver++): eps re-derived in place from the
    /// x0 that the schedule's config's clipping or thresholding gives at alpha_bar <paramref name="alphaT"/>.</summary>
    protected void ClipEpsilon(Tensor x, Tensor eps, double alphaT)
    {
        var config = Schedule.Config!;
        float sa = (float)Math.Sqrt(alphaT), s1 = (float)Math.Sqrt(1 - alphaT);
        if (Schedule.Thresholding)
            DynamicThreshold.Run(x, eps, sa, s1, (float)config.DynamicThresholdingRatio, (float)config.SampleMaxValue, histogram!, thresholds!);
        ClippedEpsilon.Run(x, eps, sa, s1, (float)config.ClipSampleRange, Schedule.Thresholding ? thresholds : null);
    }

    /// <summary>A DDPM/DDIM step whose predicted x0 is first clipped (clip_sample) or thresholded per item
    /// (thresholding), as the schedule's config asks (diffusers' step, stage "clip or threshold predicted x_0").</summary>
    protected void ClippedStep(Tensor x, Tensor eps, ClippedDiffusionStep.Coefficients c, RandomDraw draw)
    {
        var config = Schedule.Config!;
        if (Schedule.Thresholding)
            DynamicThreshold.Run(x, eps, c.SqrtAlpha, c.SqrtOneMinusAlpha, (float)config.DynamicThresholdingRatio,
                (float)config.SampleMaxValue, histogram!, thresholds!);
        ClippedDiffusionStep.Run(x, eps, c, (float)config.ClipSampleRange, Schedule.Thresholding ? thresholds : null, draw);
    }

    /// <summary>Called before the first step (multistep samplers rent their history here).</summary>
    protected virtual void Begin(Tensor x, TensorPool pool) { }

    /// <summary>Called after the last step or on failure; history buffers return to the pool.</summary>
    protected virtual void End() { }

    /// <summary>One fused update of x from the epsilon at <paramref name="info"/>'s timestep.</summary>
    protected abstract void Step(Tensor x, Tensor eps, StepInfo info, RandomDraw draw);

    /// <summary>v- and x0-predicting networks: eps = EpsFromOut out + EpsFromX x, in place.</summary>
    private void ToEpsilon(Tensor x, Tensor output, double alphaT)
    {
        if (Options.Prediction == PredictionType.Epsilon) return;
        var c = ModelOutput.Coefficients(Options.Prediction, alphaT);
        Axpby.Run((float)c.EpsFromX, x, (float)c.EpsFromOut, output);
    }

    /// <summary>Reads the divergence ring once (steps <paramref name="first"/>..<paramref name="last"/>, 0-based) and throws
    /// at the first step whose x is not finite. The diagnosis costs nothing on the way: the steps leave eps (the model's
    /// output as epsilon) untouched, so its norms tell whether the model failed on the (finite) input of that step, and
    /// the previous step's norms whether x had exploded.</summary>
    private void CheckFinite(DivergenceRing ring, int first, int last, int[] timesteps)
    {
        ring.Read();
        for (int i = first; i <= last; i++)
        {
            var xNorms = ring.Values(i, 0);
            var bad = Divergence.NonFinite(xNorms);
            if (bad.Length == 0)
            {
                largestBefore = Divergence.Largest(xNorms);
                continue;
            }
            var cause = largestBefore > Divergence.ExplodedSquaredNorm ? DivergenceCause.Exploded
                : Divergence.AnyNonFinite(ring.Values(i, 1), bad) ? DivergenceCause.ModelOutput
                : DivergenceCause.Update;
            string later = i == last ? "" : $"; noticed at the check after step {last + 1} (every {checkInterval} steps), which x holds";
            throw new SamplerDivergedException(Name, i + 1, timesteps.Length, $"timestep {timesteps[i]}", cause, bad, -1,
                $"largest squared norm of x before the step {largestBefore:G3}{later}");
        }
    }
}

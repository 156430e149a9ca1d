using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Samplers.Posterior;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu;

/// <summary>
/// Samples the posterior p(x | y) of y = A(x) + sigma_y z with a diffusion prior: the library's entry point.
/// Construct it from a <see cref="DiffusionModel"/>, a forward operator (<see cref="IForwardOperator"/>; the operators
/// in PosteriorGpu.Samplers.Operators, or your own) and the measurement noise level, then call
/// <see cref="Sample(ReadOnlySpan{float}, int, ulong, IProgress{SamplerProgress}?, CancellationToken)"/> with host
/// arrays or <see cref="Sample(Tensor, Tensor, ulong, long, IProgress{SamplerProgress}?, CancellationToken)"/> with
/// device tensors. Samples are a pure function of (seed, sample index): the same on every device and batching.
/// Holds no device memory between calls (each call rents and returns its buffers), so it is not IDisposable.
/// Thread-safety: <c>Sample</c> may be called from several threads; calls on one device take turns
/// (<see cref="Kernels.Device.GpuDevice.Exclusive"/>) and give the same results as sequential calls.
/// </summary>
public sealed class PosteriorSampler
{
    /// <summary>Random stream of the starting noise of the prior draw.</summary>
    public const uint PriorStream = 0x50525354;

    /// <summary>Random stream of the noise of <see cref="Measure"/> (per input index, so a batch of inputs measures each
    /// as it would be measured alone).</summary>
    public const uint MeasurementStream = 0x4D4E4F49;

    private const string PriorSampler = "ddim";
    private const int ImagePriorTimestep = 50;
    private const double ImageStepScale = 0.5;
    private readonly AnnealedLangevinSampler? langevin;
    private readonly DpnpSampler? dpnp;
    private readonly DpsSampler? dps;

    /// <summary>Checks the options against the model and the operator and builds the sampler.</summary>
    /// <exception cref="ArgumentOutOfRangeException">sigma_y is not positive and finite.</exception>
    /// <exception cref="InvalidOptionException">An option is out of range (names it).</exception>
    /// <exception cref="ArgumentException">The operator's input shape is not the model's image shape, the method needs a
    /// linear operator, or DPS is asked of a model without gradients.</exception>
    public PosteriorSampler(DiffusionModel model, IForwardOperator op, float sigmaY, PosteriorOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(op);
        Model = model;
        Operator = op;
        SigmaY = sigmaY;
        Options = options ?? new PosteriorOptions();
        if (!(sigmaY > 0) || float.IsInfinity(sigmaY))
            throw new ArgumentOutOfRangeException(nameof(sigmaY), sigmaY, "sigma_y, the measurement noise level, must be positive and finite");
        int[] image = [model.Channels, model.Height, model.Width];
        if (!op.InputShape.SequenceEqual(image))
            throw new ArgumentException(
                $"operator {op.Name} takes inputs of shape {Shape.Format(op.InputShape)} but the model makes images of shape {Shape.Format(image)}", nameof(op));
        var o = Options;
        Require(o.Levels >= 1, nameof(o.Levels), o.Levels, "must be at least 1");
        Require(o.Steps >= o.Levels, nameof(o.Steps), o.Steps, $"must be at least Levels ({o.Levels})");
        Require(o.PriorSteps >= 1, nameof(o.PriorSteps), o.PriorSteps, "must be at least 1");
        Require(o.StepScale is null or > 0, nameof(o.StepScale), o.StepScale, "must be positive");
        Require(o.EtaMax is null or > 0, nameof(o.EtaMax), o.EtaMax, "must be positive");
        Require(o.PriorTimestep is null || (o.PriorTimestep >= 0 && o.PriorTimestep < model.Schedule.NumTrainTimesteps),
            nameof(o.PriorTimestep), o.PriorTimestep, $"must lie in 0..{model.Schedule.NumTrainTimesteps - 1}");
        switch (o.Method)
        {
            case PosteriorMethod.AnnealedLangevin:
                if (!op.IsLinear)
                    throw new ArgumentException($"annealed Langevin needs a linear forward operator but {op.Name} is nonlinear; use Dpnp or Dps", nameof(op));
                var al = new AnnealedLangevinOptions();
                langevin = new AnnealedLangevinSampler(model.Network, model.Schedule, al with
                {
                    Levels = o.Levels,
                    StepsPerLevel = o.Steps / o.Levels,
                    PriorSampler = PriorSampler,
                    PriorSteps = o.PriorSteps,
                    StepScale = o.StepScale ?? ImageStepScale,
                    PriorTimestep = o.PriorTimestep ?? ImagePriorTimestep,
                    EtaMax = o.EtaMax ?? al.EtaMax,
                });
                EvaluationsPerSample = o.PriorSteps + o.Levels * (o.Steps / o.Levels);
                break;
            case PosteriorMethod.Dpnp:
                Require(o.Steps / o.Levels >= 2, nameof(o.Steps), o.Steps,
                    $"Steps / Levels = {o.Steps / o.Levels} network calls per sweep; each denoising draw needs at least 2");
                var dp = new DpnpOptions();
                dpnp = new DpnpSampler(model.Network, model.Schedule, dp with
                {
                    Iterations = o.Levels,
                    EtaMax = o.EtaMax ?? dp.EtaMax,
                    Denoiser = dp.Denoiser with { Steps = o.Steps / o.Levels - 1 },
                });
                EvaluationsPerSample = o.PriorSteps + o.Levels * (o.Steps / o.Levels);
                break;
            case PosteriorMethod.Dps:
                if (!model.HasGradients)
                    throw new ArgumentException("DPS differentiates through the network: load the model with gradients (DiffusionModel.Load(device, folder, withGradients: true))", nameof(model));
                var ds = new DpsOptions();
                dps = new DpsSampler(model.Network, model.Schedule, ds with { Steps = o.Steps + o.PriorSteps, StepSize = o.StepScale ?? ds.StepSize });
                EvaluationsPerSample = o.Steps + o.PriorSteps;
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(options), o.Method, "unknown posterior method");
        }
    }

    /// <summary>The diffusion prior.</summary>
    public DiffusionModel Model { get; }

    /// <summary>The forward operator A.</summary>
    public IForwardOperator Operator { get; }

    /// <summary>The measurement noise level sigma_y.</summary>
    public float SigmaY { get; }

    /// <summary>The options in use.</summary>
    public PosteriorOptions Options { get; }

    /// <summary>Network evaluations per sample (the unit of progress reports): prior draw plus main loop.</summary>
    public int EvaluationsPerSample { get; }

    /// <summary>What runs, with its parameters, in one sentence (for logs).</summary>
    public string Description => (langevin, dpnp, dps) switch
    {
        ({ } s, _, _) => $"annealed Langevin: prior draw by {PriorSampler} in {Options.PriorSteps} steps, then {s.Options.Levels} levels x " +
                         $"{s.Options.StepsPerLevel} Langevin steps (eta from {s.Options.EtaMax} down to sigma_y, step scale {s.Options.StepScale}, " +
                         $"prior score at timestep {s.Options.PriorTimestep})",
        (_, { } s, _) => $"DPnP: prior draw by {PriorSampler} in {Options.PriorSteps} steps, then {s.Options.Iterations} sweeps (eta {s.Options.EtaMax} down to " +
                         $"{s.Options.EtaMin}), each {s.Options.ConsistencySteps} consistency Langevin steps and a {s.Options.Denoiser.Kind} " +
                         $"denoising draw of {s.Options.Denoiser.Steps + 1} network calls",
        (_, _, { } s) => $"DPS: {s.Options.Steps} reverse-diffusion steps from noise, step size {s.Options.StepSize} ({s.Options.Rule} rule); " +
                         "each step differentiates the measurement residual through the network",
        _ => throw new InvalidOperationException("no sampler"),
    };

    /// <summary>
    /// Draws <paramref name="count"/> samples of p(x | y) for one measurement <paramref name="y"/> (the operator's
    /// measurement, flattened) and returns them as host arrays of <see cref="DiffusionModel.ImageLength"/> values
    /// ([C, H, W] order). All chains run as one batch on the device.
    /// </summary>
    /// <exception cref="ArgumentException">y does not have the operator's measurement length, or holds NaN.</exception>
    /// <exception cref="SamplerDivergedException">A chain stopped being finite (the message names the step and cause).</exception>
    /// <exception cref="OperationCanceledException">The token was cancelled.</exception>
    public float[][] Sample(ReadOnlySpan<float> y, int count, ulong seed = 0, IProgress<SamplerProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        int m = Shape.Elements(Operator.MeasurementShape);
        if (y.Length != m)
            throw new ArgumentException($"operator {Operator.Name}: expected a measurement of {m} values {Shape.Format(Operator.MeasurementShape)} but got {y.Length}", nameof(y));
        var device = Model.Device;
        using var yt = Tensor.FromHost(device, y, [1, .. Operator.MeasurementShape]);
        using var x = Tensor.Empty(device, count, Model.Channels, Model.Height, Model.Width);
        Sample(yt, x, seed, 0, progress, cancellationToken);
        var all = x.ToHost();
        int d = Model.ImageLength;
        var samples = new float[count][];
        for (int i = 0; i < count; i++) samples[i] = all.AsSpan(i * d, d).ToArray();
        return samples;
    }

    /// <summary>
    /// Draws x.N samples of p(x | y) into <paramref name="x"/> ([N, C, H, W] on the model's device); y is one
    /// measurement [1, ...MeasurementShape] shared by all chains or one per chain [N, ...]. Chain n is sample
    /// <paramref name="firstSample"/> + n of the seed's sequence (so a run split into batches equals one run).
    /// Progress counts network evaluations per chain, up to <see cref="EvaluationsPerSample"/>.
    /// </summary>
    /// <exception cref="ArgumentException">A shape or device does not match, or y holds NaN.</exception>
    /// <exception cref="SamplerDivergedException">A chain stopped being finite.</exception>
    /// <exception cref="OperationCanceledException">The token was cancelled (x holds a partial result).</exception>
    public void Sample(Tensor y, Tensor x, ulong seed = 0, long firstSample = 0, IProgress<SamplerProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(y);
        ArgumentNullException.ThrowIfNull(x);
        ArgumentOutOfRangeException.ThrowIfNegative(firstSample);
        if (x.Rank != 4 || x.C != Model.Channels || x.H != Model.Height || x.W != Model.Width)
            throw new ArgumentException($"x must have shape [N, {Model.Channels}, {Model.Height}, {Model.Width}] but has {Shape.Format(x.Shape)}", nameof(x));
        if (!ReferenceEquals(x.Device, Model.Device) || !ReferenceEquals(y.Device, Model.Device))
            throw new ArgumentException($"x and y must live on the model's device ({Model.Device.Description})");
        using var exclusive = x.Device.Exclusive(cancellationToken);   // the prior draw and the chains as one turn
        int total = EvaluationsPerSample;
        if (dps is not null)
        {
            dps.Sample(x, y, Operator, SigmaY, seed, firstSample,
                progress is null ? null : new Relay(p => progress.Report(new SamplerProgress(p.Step, total))), cancellationToken);
            return;
        }
        using var start = Tensor.Empty(x.Device, x.Shape);
        DrawPrior(start, seed, firstSample, progress, cancellationToken);
        int prior = Options.PriorSteps, perLevel = Options.Steps / Options.Levels;
        var relay = progress is null ? null : new Relay(p => progress.Report(new SamplerProgress(prior + p.Step * perLevel, total)));
        if (langevin is not null)
            langevin.Sample(x, y, (ILinearOperator)Operator, SigmaY, seed, firstSample, warmStart: start, progress: relay, cancellationToken: cancellationToken);
        else
            dpnp!.Sample(x, y, Operator, SigmaY, seed, firstSample, warmStart: start, progress: relay, cancellationToken: cancellationToken);
    }

    /// <summary>
    /// A simulated measurement of one image: y = A(x) + sigma_y z (one-bit: sign(A x + tau + sigma_y z)), with z from
    /// (<paramref name="seed"/>, <see cref="MeasurementStream"/>, <paramref name="index"/>). For tests and examples
    /// that start from a known x.
    /// </summary>
    /// <exception cref="ArgumentException">x does not have <see cref="DiffusionModel.ImageLength"/> values.</exception>
    public float[] Measure(ReadOnlySpan<float> x, ulong seed = 0, long index = 0)
    {
        if (x.Length != Model.ImageLength)
            throw new ArgumentException($"expected an image of {Model.ImageLength} values [{Model.Channels}, {Model.Height}, {Model.Width}] but got {x.Length}", nameof(x));
        var device = Model.Device;
        using var exclusive = device.Exclusive();
        using var xt = Tensor.FromHost(device, x, 1, Model.Channels, Model.Height, Model.Width);
        using var yt = Tensor.Empty(device, [1, .. Operator.MeasurementShape]);
        Operator.Simulate(xt, SigmaY, MeasurementDraw(seed, index, Shape.Elements(Operator.MeasurementShape)), yt);
        return yt.ToHost();
    }

    /// <summary>The noise draw of <see cref="Measure"/> for inputs from <paramref name="firstInput"/> on, m values each.</summary>
    public static RandomDraw MeasurementDraw(ulong seed, long firstInput, int m) =>
        new RandomDraw(seed, MeasurementStream, 0).ForBatch(firstInput, m);

    /// <summary>The starting prior draw (DDIM from seeded noise), run here so that progress moves during it.</summary>
    private void DrawPrior(Tensor start, ulong seed, long firstSample, IProgress<SamplerProgress>? progress, CancellationToken cancellationToken)
    {
        start.Clear();
        AddNoise.Run(start, 1f, new RandomDraw(seed, PriorStream, 0).ForBatch(firstSample, start.ItemLength));
        int total = EvaluationsPerSample;
        SamplerFactory.Create(PriorSampler, Model.Network, Model.Schedule).Sample(start, Options.PriorSteps, seed, firstSample,
            progress is null ? null : new Relay(p => progress.Report(new SamplerProgress(p.Step, total))), cancellationToken);
    }

    private static void Require(bool ok, string option, object? value, string rule)
    {
        if (!ok) throw new InvalidOptionException(option, $"PosteriorOptions.{option} = {value}: {rule}");
    }

    /// <summary>Synchronous progress (System.Progress would post to the thread pool, out of order).</summary>
    private sealed class Relay(Action<SamplerProgress> report) : IProgress<SamplerProgress>
    {
        public void Report(SamplerProgress value) => report(value);
    }
}

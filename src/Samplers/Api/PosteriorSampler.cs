using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Samplers.Posterior;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu;

/// <summary>
/// Samples the posterior p(x | y) of y = A(x) + sigma_y z with a diffusion prior: the library's entry point.
/// Construct it from a <see cref="DiffusionModel"/>, a forward operator (<see cref="IForwardOperator"/>; the operators
/// in PosteriorGpu.Samplers.Operators, or your own), the measurement noise level and a method's options
/// (<see cref="AnnealedLangevinOptions"/> (the default), <see cref="DpnpOptions"/>, <see cref="DpsOptions"/>, each with
/// defaults that are right on exact posteriors and an <c>Image32</c> preset for 32 x 32 image models), then call
/// <see cref="Sample(ReadOnlySpan{float}, int, ulong, IProgress{SamplerProgress}?, CancellationToken)"/> with host
/// arrays or <see cref="Sample(Tensor, Tensor, ulong, long, IProgress{SamplerProgress}?, CancellationToken)"/> with
/// device tensors. The facade only converts between host and device and holds the device; the method is an
/// <see cref="IPosteriorSampler"/> (<see cref="Method"/>). Samples are a pure function of (seed, sample index): the same
/// on every device and batching. Holds no device memory between calls, so it is not IDisposable.
/// Thread-safety: <c>Sample</c> may be called from several threads; calls on one device take turns
/// (<see cref="Kernels.Device.GpuDevice.Exclusive"/>) and give the same results as sequential calls.
/// </summary>
public sealed class PosteriorSampler
{
    /// <summary>Checks the options against the model and the operator and builds the method's sampler.</summary>
    /// <exception cref="ArgumentOutOfRangeException">sigma_y is not positive and finite.</exception>
    /// <exception cref="InvalidOptionException">An option is out of range (names it).</exception>
    /// <exception cref="ArgumentException">The operator's input shape is not the model's image shape, the method needs a
    /// linear operator, or DPS is asked of a model without gradients.</exception>
    public PosteriorSampler(DiffusionModel model, IForwardOperator op, float sigmaY, PosteriorMethodOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(op);
        if (!(sigmaY > 0) || float.IsInfinity(sigmaY))
            throw new ArgumentOutOfRangeException(nameof(sigmaY), sigmaY, "sigma_y, the measurement noise level, must be positive and finite");
        int[] image = [model.Channels, model.Height, model.Width];
        if (!op.InputShape.SequenceEqual(image))
            throw new ArgumentException(
                $"operator {op.Name} takes inputs of shape {Shape.Format(op.InputShape)} but the model makes images of shape {Shape.Format(image)}", nameof(op));
        Options = options ?? new AnnealedLangevinOptions();
        if (Options is AnnealedLangevinOptions or DpsLangevinOptions && !op.IsLinear)
            throw new ArgumentException($"annealed Langevin needs a linear forward operator but {op.Name} is nonlinear; use DPnP or DPS", nameof(op));
        if (Options is DpsOptions or DpsLangevinOptions or LgdMcOptions && !model.HasGradients)
            throw new ArgumentException("DPS differentiates through the network: load the model with gradients (DiffusionModel.Load(device, folder, withGradients: true))", nameof(model));
        Model = model;
        Operator = op;
        SigmaY = sigmaY;
        Method = Options.CreateSampler(model.Network, model.Schedule);
    }

    /// <summary>The diffusion prior.</summary>
    public DiffusionModel Model { get; }

    /// <summary>The forward operator A.</summary>
    public IForwardOperator Operator { get; }

    /// <summary>The measurement noise level sigma_y.</summary>
    public float SigmaY { get; }

    /// <summary>The method's options in use.</summary>
    public PosteriorMethodOptions Options { get; }

    /// <summary>The method that runs.</summary>
    public IPosteriorSampler Method { get; }

    /// <summary>Network evaluations per sample (the unit of progress reports), prior draw included.</summary>
    public int EvaluationsPerSample => Method.NetworkEvaluations;

    /// <summary>What runs, with its parameters, in one sentence (for logs).</summary>
    public string Description => Method.Description;

    /// <summary>What the last finished run reported about itself (e.g. DPnP's Metropolis acceptance rate); null before the first.</summary>
    public PosteriorRun? LastRun { get; private set; }

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
    public PosteriorRun Sample(Tensor y, Tensor x, ulong seed = 0, long firstSample = 0, IProgress<SamplerProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(x);
        // Shapes and devices are checked once, by the method (PosteriorArguments).
        using var exclusive = x.Device.Exclusive(cancellationToken);
        var run = Method.Sample(x, y, Operator, SigmaY, seed, firstSample, progress, cancellationToken);
        LastRun = run;
        return run;
    }

    /// <summary>
    /// A simulated measurement of one image: y = A(x) + sigma_y z (one-bit: sign(A x + tau + sigma_y z)), with z from
    /// (<paramref name="seed"/>, <see cref="RandomStreams.Measurement"/>, <paramref name="index"/>). For tests and examples
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
        new RandomDraw(seed, RandomStreams.Measurement, 0).ForBatch(firstInput, m);
}

using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu;

namespace PosteriorGpu.Cli;

/// <summary>The settings of the forward operators that `posterior` builds (each task reads its own).</summary>
internal sealed record TaskSettings
{
    /// <summary>Inpainting mask: box (a centred H/2 x W/2 box is missing), half (the bottom half is
    /// missing), random (each pixel observed with probability <see cref="Ratio"/>, default 0.25).</summary>
    public string Mask { get; init; } = DefaultMask;

    /// <summary>The default inpainting mask: each pixel observed with probability 0.25. The centred box hides nearly all
    /// of a 32 x 32 digit and leaves a posterior too wide for a 4-sample mean to show much (docs/posterior-images.md).</summary>
    public const string DefaultMask = "random";

    /// <summary>Super-resolution factor (average pooling over factor x factor blocks).</summary>
    public int Factor { get; init; } = 4;

    /// <summary>Standard deviation in pixels of the Gaussian blur (filter size 2 ceil(2 sigma) + 1).</summary>
    public double BlurSigma { get; init; } = 2.0;

    /// <summary>Measurements per pixel: m / d for cs and onebit, the sampled fraction of k-space for mri,
    /// the observed fraction for random inpainting; null means the task's default.</summary>
    public double? Ratio { get; init; }

    /// <summary>Seed of the operator itself (mask, matrix, dither, modulation), fixed across runs.</summary>
    public ulong OperatorSeed { get; init; }
}

/// <summary>
/// One inverse problem of `posteriorgpu posterior`: a table from task name to a factory of its forward operator (with
/// a description for the log and metrics.json) and its per-task defaults. Everything else about the task, how to
/// simulate y, how to measure a sample against it and how to show it, the operator owns
/// (<see cref="IForwardOperator.Simulate"/>, <see cref="IForwardOperator.Discrepancy"/>, <see cref="IForwardOperator.Preview"/>):
/// a new task is an operator file and a line in <see cref="Table"/>.
/// </summary>
internal sealed class PosteriorTask : IDisposable
{
    /// <summary>What a factory gets: the device, the image shape [C, H, W] and the settings.</summary>
    private sealed record Setup(GpuDevice Device, int C, int H, int W, TaskSettings Settings)
    {
        public int D => C * H * W;
    }

    /// <summary>
    /// One row of the table. <paramref name="DpsZeta"/> is DPS's step size zeta for the task when --step-scale is not
    /// given. With 24 steps the paper's zeta = 1 fits most measurements loosely (residual 1.5 to 4 times the noise's);
    /// zeta = 3 brings inpainting, super-resolution, deblurring, MRI and phase retrieval to about the noise's level and
    /// raises the posterior mean's PSNR by 3.5 to 13 dB, while compressed sensing (its Gaussian matrix has a large norm)
    /// overshoots and one-bit sensing overfits the signs at 3 (10.6 dB on 16 digits against 15.7 at 1), so they
    /// keep 1. Measured with the shipped model: docs/posterior-images.md, docs/talk-comparison.md.
    /// </summary>
    private sealed record Entry(string Name, double DpsZeta, Func<Setup, PosteriorTask> Create);

    private static readonly Entry[] Table =
    [
        new("inpaint", 3.0, Inpainting),
        new("superres", 3.0, SuperResolution),
        new("deblur", 3.0, Deblurring),
        new("cs", 1.0, CompressedSensing),
        new("mri", 3.0, FourierSubsampling),
        new("phase", 3.0, s => new(new PhaseRetrievalOperator(s.Device, s.C, s.H, s.W, 2, PhaseMaskKind.UniformPhase, s.Settings.OperatorSeed),
            $"coded-diffraction phase retrieval, uniform random phases, oversampling 2 (seed {s.Settings.OperatorSeed})")),
        new("onebit", 1.0, OneBit),
    ];

    /// <summary>The task names, as --task takes them.</summary>
    public static readonly IReadOnlyList<string> Names = Table.Select(e => e.Name).ToArray();

    /// <summary>DPS's step size zeta for a task when --step-scale is not given (see the table's rows).</summary>
    /// <exception cref="UsageException">Unknown task.</exception>
    public static double DpsZeta(string task) => Find(task).DpsZeta;

    private PosteriorTask(ForwardOperator op, string description)
    {
        Operator = op;
        Description = description;
    }

    /// <summary>The task name.</summary>
    public string Name { get; private set; } = "";

    /// <summary>The forward operator.</summary>
    public ForwardOperator Operator { get; }

    /// <summary>What the operator does, with its parameters (for the log and metrics.json).</summary>
    public string Description { get; }

    /// <summary>The missing pixels of inpainting ([H, W], 1 = missing), null for the other tasks.</summary>
    public float[]? MissingMask { get; private init; }

    private static Entry Find(string name) => Table.FirstOrDefault(e => e.Name == name)
        ?? throw new UsageException($"unknown task '{name}'; --task takes {string.Join(", ", Names)}");

    /// <summary>Builds the operator of <paramref name="name"/> for images [C, H, W].</summary>
    /// <exception cref="UsageException">Unknown task, or settings that do not fit the image size.</exception>
    public static PosteriorTask Create(string name, GpuDevice device, int c, int h, int w, TaskSettings s)
    {
        var entry = Find(name);
        try
        {
            var task = entry.Create(new Setup(device, c, h, w, s));
            task.Name = name;
            return task;
        }
        catch (ArgumentException e)
        {
            throw new UsageException($"task {name} does not fit images of {c} x {h} x {w}: {e.Message}");
        }
    }

    private static PosteriorTask Inpainting(Setup s)
    {
        var (c, h, w, t) = (s.C, s.H, s.W, s.Settings);
        InpaintingOperator op = t.Mask switch
        {
            "box" => InpaintingOperator.Box(s.Device, c, h, w, h / 4, w / 4, h / 2, w / 2),
            "half" => InpaintingOperator.HalfImage(s.Device, c, h, w, ImageHalf.Top),
            "random" => InpaintingOperator.RandomPixels(s.Device, c, h, w, t.Ratio ?? 0.25, t.OperatorSeed),
            _ => throw new UsageException($"--mask must be box, half or random but got '{t.Mask}'"),
        };
        string what = t.Mask switch
        {
            "box" => $"a centred {h / 2} x {w / 2} box missing",
            "half" => "bottom half missing",
            _ => $"each pixel observed with probability {t.Ratio ?? 0.25} (seed {t.OperatorSeed})",
        };
        return new PosteriorTask(op, $"inpainting, {what}, {op.ObservedFraction:P0} of pixels observed")
        {
            MissingMask = op.Mask.Take(h * w).Select(v => v == 0 ? 1f : 0f).ToArray(),
        };
    }

    private static PosteriorTask SuperResolution(Setup s)
    {
        int f = s.Settings.Factor;
        if (f < 2 || s.H % f != 0 || s.W % f != 0)
            throw new UsageException($"--factor {f} must be at least 2 and divide the image size {s.H} x {s.W}");
        return new PosteriorTask(new SuperResolutionOperator(s.Device, s.C, s.H, s.W, f),
            $"super-resolution, {f} x {f} average pooling to {s.H / f} x {s.W / f}");
    }

    private static PosteriorTask Deblurring(Setup s)
    {
        double sigma = s.Settings.BlurSigma;
        if (!(sigma > 0) || sigma > Math.Min(s.H, s.W))
            throw new UsageException($"--blur-sigma must be positive and at most the image size, got {sigma}");
        int size = 2 * (int)Math.Ceiling(2 * sigma) + 1;
        return new PosteriorTask(BlurOperator.Gaussian(s.Device, s.C, s.H, s.W, size, (float)sigma),
            $"Gaussian blur, sigma {sigma} px, {size} x {size} filter, zero boundary");
    }

    private static PosteriorTask CompressedSensing(Setup s)
    {
        int m = Rows(s.Settings.Ratio ?? 0.25, s.D);
        ulong seed = s.Settings.OperatorSeed;
        return new PosteriorTask(new CompressedSensingOperator(s.Device, [s.C, s.H, s.W], m, seed),
            $"compressed sensing, {m} Gaussian measurements of {s.D} pixels (entries N(0, 1/m), seed {seed})");
    }

    private static PosteriorTask FourierSubsampling(Setup s)
    {
        double fraction = s.Settings.Ratio ?? 0.25;
        if (!(fraction > 0 && fraction <= 1)) throw new UsageException($"--ratio must lie in (0, 1] for mri, got {fraction}");
        double centre = Math.Min(0.08, fraction);
        ulong seed = s.Settings.OperatorSeed;
        var op = FourierSubsamplingOperator.RandomLines(s.Device, s.C, s.H, s.W, fraction, centre, seed);
        return new PosteriorTask(op,
            $"Fourier subsampling, random k-space columns, {op.SampledFraction:P0} sampled ({centre:P0} centre band, seed {seed})");
    }

    private static PosteriorTask OneBit(Setup s)
    {
        int m = Rows(s.Settings.Ratio ?? 1.0, s.D);
        ulong seed = s.Settings.OperatorSeed;
        return new PosteriorTask(new OneBitOperator(s.Device, [s.C, s.H, s.W], m, 1f, seed),
            $"one-bit dithered sensing, {m} signs of Gaussian projections, dither uniform in [-1, 1] (seed {seed}); " +
            "NOTE: DPS (the default) recovers the digit; the sign agreement alone is no quality measure (the truth's is below " +
            "100 % too, and speckle reproduces most signs): see the README");
    }

    private static int Rows(double ratio, int d)
    {
        if (!(ratio > 0) || ratio > 16) throw new UsageException($"--ratio must lie in (0, 16], got {ratio}");
        return Math.Max(1, (int)Math.Round(ratio * d));
    }

    /// <summary>The operator's simulated measurement (<see cref="IForwardOperator.Simulate"/>), with the noise drawn per
    /// input: input <paramref name="firstInput"/> + n of the run uses the same noise whatever the batch.</summary>
    public void Measure(Tensor x, float sigma, ulong seed, long firstInput, Tensor y) =>
        Operator.Simulate(x, sigma, PosteriorSampler.MeasurementDraw(seed, firstInput, Shape.Elements(Operator.MeasurementShape)), y);

    /// <summary>The trivial inpainting: missing pixels filled with the mean of the image's observed pixels
    /// (per channel); the baseline a posterior sampler must beat.</summary>
    public float[] TrivialFill(ReadOnlySpan<float> truth, int n)
    {
        if (MissingMask is null) throw new InvalidOperationException("trivial fill is for inpainting");
        var shape = Operator.InputShape;
        int plane = shape[1] * shape[2];
        var result = truth.ToArray();
        for (int p = 0; p < n * shape[0]; p++)
        {
            var img = result.AsSpan(p * plane, plane);
            double sum = 0;
            int count = 0;
            for (int i = 0; i < plane; i++) if (MissingMask[i] == 0) { sum += img[i]; count++; }
            float fill = count > 0 ? (float)(sum / count) : 0f;
            for (int i = 0; i < plane; i++) if (MissingMask[i] != 0) img[i] = fill;
        }
        return result;
    }

    /// <inheritdoc/>
    public void Dispose() => Operator.Dispose();
}

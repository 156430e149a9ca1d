using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu;

namespace PosteriorGpu.Cli;

/// <summary>The settings of the forward operators that `posterior` builds (each task reads its own).</summary>
public sealed record TaskSettings
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
/// One inverse problem of `posteriorgpu posterior`: the forward operator for a task name, how to take a
/// noisy measurement y = A(x) + sigma_y z (for onebit the noise enters before the quantizer), and how to
/// show y as an image in the output grid.
/// </summary>
public sealed class PosteriorTask : IDisposable
{
    /// <summary>The task names, as --task takes them.</summary>
    public static readonly IReadOnlyList<string> Names = ["inpaint", "superres", "deblur", "cs", "mri", "phase", "onebit"];

    /// <summary>
    /// DPS's step size zeta for a task when --step-scale is not given. With 24 steps the paper's zeta = 1 fits most
    /// measurements loosely (residual 1.5 to 4 times the noise's); zeta = 3 brings inpainting, super-resolution,
    /// deblurring, MRI and phase retrieval to about the noise's level and raises the posterior mean's PSNR by 3.5 to
    /// 13 dB, while compressed sensing (its Gaussian matrix has a large norm) overshoots and one-bit sensing overfits the
    /// signs at 3, so they keep 1. Measured with the shipped model: docs/posterior-images.md.
    /// </summary>
    public static double DpsZeta(string task) => task is "cs" or "onebit" ? 1.0 : 3.0;

    private PosteriorTask(string name, ForwardOperator op, string description)
    {
        Name = name;
        Operator = op;
        Description = description;
    }

    /// <summary>The task name.</summary>
    public string Name { get; }

    /// <summary>The forward operator.</summary>
    public ForwardOperator Operator { get; }

    /// <summary>What the operator does, with its parameters (for the log and metrics.json).</summary>
    public string Description { get; }

    /// <summary>The missing pixels of inpainting ([H, W], 1 = missing), null for the other tasks.</summary>
    public float[]? MissingMask { get; private init; }

    /// <summary>Builds the operator of <paramref name="name"/> for images [C, H, W].</summary>
    /// <exception cref="UsageException">Unknown task, or settings that do not fit the image size.</exception>
    public static PosteriorTask Create(string name, GpuDevice device, int c, int h, int w, TaskSettings s)
    {
        int d = c * h * w;
        try
        {
            switch (name)
            {
                case "inpaint":
                {
                    InpaintingOperator op = s.Mask switch
                    {
                        "box" => InpaintingOperator.Box(device, c, h, w, h / 4, w / 4, h / 2, w / 2),
                        "half" => InpaintingOperator.HalfImage(device, c, h, w, ImageHalf.Top),
                        "random" => InpaintingOperator.RandomPixels(device, c, h, w, s.Ratio ?? 0.25, s.OperatorSeed),
                        _ => throw new UsageException($"--mask must be box, half or random but got '{s.Mask}'"),
                    };
                    var observed = op.Mask;
                    string what = s.Mask switch
                    {
                        "box" => $"a centred {h / 2} x {w / 2} box missing",
                        "half" => "bottom half missing",
                        _ => $"each pixel observed with probability {s.Ratio ?? 0.25} (seed {s.OperatorSeed})",
                    };
                    return new PosteriorTask(name, op, $"inpainting, {what}, {op.ObservedFraction:P0} of pixels observed")
                    {
                        MissingMask = observed.Take(h * w).Select(v => v == 0 ? 1f : 0f).ToArray(),
                    };
                }
                case "superres":
                    if (s.Factor < 2 || h % s.Factor != 0 || w % s.Factor != 0)
                        throw new UsageException($"--factor {s.Factor} must be at least 2 and divide the image size {h} x {w}");
                    return new PosteriorTask(name, new SuperResolutionOperator(device, c, h, w, s.Factor),
                        $"super-resolution, {s.Factor} x {s.Factor} average pooling to {h / s.Factor} x {w / s.Factor}");
                case "deblur":
                {
                    if (!(s.BlurSigma > 0) || s.BlurSigma > Math.Min(h, w))
                        throw new UsageException($"--blur-sigma must be positive and at most the image size, got {s.BlurSigma}");
                    int size = 2 * (int)Math.Ceiling(2 * s.BlurSigma) + 1;
                    return new PosteriorTask(name, BlurOperator.Gaussian(device, c, h, w, size, (float)s.BlurSigma),
                        $"Gaussian blur, sigma {s.BlurSigma} px, {size} x {size} filter, zero boundary");
                }
                case "cs":
                {
                    int m = Rows(s.Ratio ?? 0.25, d);
                    return new PosteriorTask(name, new CompressedSensingOperator(device, [c, h, w], m, s.OperatorSeed),
                        $"compressed sensing, {m} Gaussian measurements of {d} pixels (entries N(0, 1/m), seed {s.OperatorSeed})");
                }
                case "mri":
                {
                    double fraction = s.Ratio ?? 0.25;
                    if (!(fraction > 0 && fraction <= 1)) throw new UsageException($"--ratio must lie in (0, 1] for mri, got {fraction}");
                    double centre = Math.Min(0.08, fraction);
                    var op = FourierSubsamplingOperator.RandomLines(device, c, h, w, fraction, centre, s.OperatorSeed);
                    return new PosteriorTask(name, op,
                        $"Fourier subsampling, random k-space columns, {op.SampledFraction:P0} sampled ({centre:P0} centre band, seed {s.OperatorSeed})");
                }
                case "phase":
                    return new PosteriorTask(name, new PhaseRetrievalOperator(device, c, h, w, 2, PhaseMaskKind.UniformPhase, s.OperatorSeed),
                        $"coded-diffraction phase retrieval, uniform random phases, oversampling 2 (seed {s.OperatorSeed})");
                case "onebit":
                {
                    int m = Rows(s.Ratio ?? 1.0, d);
                    return new PosteriorTask(name, new OneBitOperator(device, [c, h, w], m, 1f, s.OperatorSeed),
                        $"one-bit dithered sensing, {m} signs of Gaussian projections, dither uniform in [-1, 1] (seed {s.OperatorSeed})");
                }
                default:
                    throw new UsageException($"unknown task '{name}'; --task takes {string.Join(", ", Names)}");
            }
        }
        catch (ArgumentException e)
        {
            throw new UsageException($"task {name} does not fit images of {c} x {h} x {w}: {e.Message}");
        }
    }

    private static int Rows(double ratio, int d)
    {
        if (!(ratio > 0) || ratio > 16) throw new UsageException($"--ratio must lie in (0, 16], got {ratio}");
        return Math.Max(1, (int)Math.Round(ratio * d));
    }

    /// <summary>y = A(x) + sigma z (one-bit: sign(A x + tau + sigma z)), with z drawn per input:
    /// input <paramref name="firstInput"/> + n of the run uses the same noise whatever the batch.</summary>
    public void Measure(Tensor x, float sigma, ulong seed, long firstInput, Tensor y) =>
        Measurements.Simulate(Operator, x, sigma, PosteriorSampler.MeasurementDraw(seed, firstInput, Shape.Elements(Operator.MeasurementShape)), y);

    /// <summary>The measurements of <paramref name="n"/> inputs shown as [n, C, H, W] images in [-1, 1]:
    /// inpainting: mask y (missing pixels at 0, mid grey); super-resolution: y upsampled by pixel repetition;
    /// deblurring: y; mri: the zero-filled reconstruction A^T y; cs and onebit: the back-projection A^T y
    /// stretched to [-1, 1] per image; phase: log(1 + |y|) of the centred spectrum, 2 x 2 averaged, stretched.</summary>
    public float[] Visualise(Tensor y, int n)
    {
        var shape = Operator.InputShape;
        int c = shape[0], h = shape[1], w = shape[2], d = c * h * w;
        var result = new float[n * d];
        var host = y.ToHost();
        switch (Operator)
        {
            case BlurOperator:
                Array.Copy(host, result, result.Length);
                break;
            case InpaintingOperator inpaint:
            {
                // y carries noise on every entry; the sampler sees only the observed ones (A^T y = mask y).
                using var x = Tensor.Empty(y.Device, [n, .. shape]);
                inpaint.Adjoint(y, x);
                x.CopyTo(result);
                break;
            }
            case SuperResolutionOperator sr:
            {
                int f = sr.Factor, hs = h / f, ws = w / f;
                for (int p = 0; p < n * c; p++)
                    for (int i = 0; i < h; i++)
                        for (int j = 0; j < w; j++)
                            result[(p * h + i) * w + j] = host[(p * hs + i / f) * ws + j / f];
                break;
            }
            case FourierSubsamplingOperator mri:
            {
                using var x = Tensor.Empty(y.Device, [n, .. shape]);
                mri.Adjoint(y, x);
                x.CopyTo(result);
                break;
            }
            case CompressedSensingOperator cs:
            {
                using var x = Tensor.Empty(y.Device, [n, .. shape]);
                cs.Adjoint(y, x);
                x.CopyTo(result);
                Stretch(result, n);
                break;
            }
            case OneBitOperator oneBit:
            {
                // A^T y on the host: the operator is nonlinear and has no adjoint of its own.
                var a = oneBit.Matrix;
                int m = oneBit.Rows;
                for (int k = 0; k < n; k++)
                    for (int r = 0; r < m; r++)
                    {
                        float v = host[k * m + r];
                        for (int i = 0; i < d; i++) result[k * d + i] += a[r * d + i] * v;
                    }
                Stretch(result, n);
                break;
            }
            case PhaseRetrievalOperator:
            {
                int hp = Operator.MeasurementShape[1], wp = Operator.MeasurementShape[2], sh = hp / h, sw = wp / w;
                for (int p = 0; p < n * c; p++)
                    for (int i = 0; i < h; i++)
                        for (int j = 0; j < w; j++)
                        {
                            double sum = 0;
                            for (int a = 0; a < sh; a++)
                                for (int b = 0; b < sw; b++)
                                {
                                    int u = (i * sh + a + hp / 2) % hp, v = (j * sw + b + wp / 2) % wp;   // fftshift
                                    sum += Math.Log(1 + Math.Abs(host[(p * hp + u) * wp + v]));
                                }
                            result[(p * h + i) * w + j] = (float)(sum / (sh * sw));
                        }
                Stretch(result, n);
                break;
            }
        }
        return result;
    }

    /// <summary>Maps each of the n images linearly onto [-1, 1] (constant images become 0).</summary>
    private static void Stretch(float[] images, int n)
    {
        int d = images.Length / n;
        for (int k = 0; k < n; k++)
        {
            var img = images.AsSpan(k * d, d);
            float lo = float.PositiveInfinity, hi = float.NegativeInfinity;
            foreach (float v in img) { lo = Math.Min(lo, v); hi = Math.Max(hi, v); }
            for (int i = 0; i < img.Length; i++) img[i] = hi > lo ? 2 * (img[i] - lo) / (hi - lo) - 1 : 0f;
        }
    }

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

using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Fft;
using PosteriorGpu.Kernels.Operators;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Samplers.Operators;

/// <summary>The random modulation of <see cref="PhaseRetrievalOperator"/>.</summary>
public enum PhaseMaskKind
{
    /// <summary>Random signs: each pixel multiplied by +1 or -1.</summary>
    RandomSigns,
    /// <summary>Uniform phases: each pixel multiplied by e^{i theta}, theta uniform in [0, 2 pi).</summary>
    UniformPhase,
}

/// <summary>
/// Coded-diffraction phase retrieval: y = |F Z (P ⊙ x)| per channel, where P is a complex modulation
/// [C, H, W] (random signs or phases, seeded), Z zero-pads each H x W plane to (s H) x (s W) (s the
/// oversampling factor) and F is the orthonormal 2-D DFT; y is [C, s H, s W] magnitudes.
/// Nonlinear. The log-likelihood is the amplitude-based one, log p(y | x) = -|| |B x| - y ||^2 / (2 sigma^2)
/// with B = F Z diag(P), whose gradient in real x is (Wirtinger calculus, e.g. Candès, Li and
/// Soltanolkotabi 2015; the amplitude flow of Wang, Giannakis and Eldar 2018)
/// Re B^H (y ⊙ z / |z| - z) / sigma^2 with z = B x, and z / |z| := 0 where z = 0. Its kernels:
/// <see cref="PadModulate"/>, the FFT, <see cref="AmplitudeResidual"/> and <see cref="CropDemodulate"/>.
/// Holds device memory (its data and a scratch pool): dispose it. Not thread-safe on its own; samplers call it within their turn on the device.
/// </summary>
public sealed class PhaseRetrievalOperator : ForwardOperator
{
    private readonly float[] modulation;
    private readonly Tensor modulationTensor;

    /// <summary>An operator with a seeded random modulation of the given kind.</summary>
    public PhaseRetrievalOperator(GpuDevice device, int channels, int height, int width, int oversampling,
        PhaseMaskKind kind, ulong seed)
        : this(device, channels, height, width, oversampling, RandomModulation(channels * height * width, kind, seed)) { }

    /// <summary>An operator with the given complex modulation ([C, H, W, 2] interleaved real, imaginary).</summary>
    /// <exception cref="ArgumentException">s H or s W is not a power of two, or the modulation does not hold 2 C H W values.</exception>
    public PhaseRetrievalOperator(GpuDevice device, int channels, int height, int width, int oversampling, float[] modulation)
        : base(device, "phase-retrieval", [channels, height, width], [channels, Padded(height, oversampling), Padded(width, oversampling)])
    {
        if (modulation.Length != 2 * channels * height * width)
            throw new ArgumentException(
                $"operator phase-retrieval: expected a modulation of shape [{channels}, {height}, {width}, 2] ({2 * channels * height * width} values) but got {modulation.Length}");
        Oversampling = oversampling;
        this.modulation = (float[])modulation.Clone();
        modulationTensor = Tensor.FromHost(device, modulation, modulation.Length);
    }

    private static int Padded(int size, int oversampling)
    {
        long p = (long)size * oversampling;
        if (oversampling < 1 || p > int.MaxValue || !IsPowerOfTwo((int)p))
            throw new ArgumentException(
                $"operator phase-retrieval: the padded size {size} x {oversampling} must be a power of two (oversampling >= 1)");
        return (int)p;
    }

    private static bool IsPowerOfTwo(int n) => n > 0 && (n & (n - 1)) == 0;

    /// <summary>The modulation of the seeded constructor: [count, 2] interleaved unit complex numbers.</summary>
    public static float[] RandomModulation(int count, PhaseMaskKind kind, ulong seed)
    {
        var draw = new RandomDraw(seed, RandomStreams.PhaseMask, 0);
        var m = new float[2 * count];
        for (int i = 0; i < count; i++)
        {
            double u = draw.Uniform(i);
            if (kind == PhaseMaskKind.RandomSigns)
                m[2 * i] = u < 0.5 ? 1f : -1f;
            else
            {
                var (s, c) = Math.SinCos(2 * Math.PI * u);
                m[2 * i] = (float)c;
                m[2 * i + 1] = (float)s;
            }
        }
        return m;
    }

    /// <inheritdoc/>
    public override bool IsLinear => false;

    /// <summary>The oversampling (zero-padding) factor s.</summary>
    public int Oversampling { get; }

    /// <summary>A copy of the modulation ([C, H, W, 2]).</summary>
    public float[] Modulation => (float[])modulation.Clone();

    private int H => InputShape[1];
    private int W => InputShape[2];
    private int Hp => MeasurementShape[1];
    private int Wp => MeasurementShape[2];

    // ---- references -------------------------------------------------------------------------

    /// <summary>The specification of z = F Z (P ⊙ x): padded complex planes [planes, Hp, Wp, 2]
    /// (naive DFT, <see cref="Fft2d.Reference"/>).</summary>
    public float[] TransformReference(ReadOnlySpan<float> x)
    {
        int n = ItemsOf(x, InputLength, "input");
        int planes = n * InputShape[0];
        var z = new float[2 * planes * Hp * Wp];
        PadModulate.Reference(modulation, InputLength, x, z, planes, H, W, Hp, Wp);
        Fft2d.Reference(z, z, [planes, Hp, Wp, 2], inverse: false, FftNorm.Ortho);
        return z;
    }

    /// <inheritdoc/>
    public override float[] ForwardReference(ReadOnlySpan<float> x)
    {
        var z = TransformReference(x);
        var y = new float[z.Length / 2];
        ComplexOps.MagnitudeReference(z, y);
        return y;
    }

    /// <inheritdoc/>
    public override float[] LogLikelihoodGradientReference(ReadOnlySpan<float> x, ReadOnlySpan<float> y, float sigma)
    {
        var z = TransformReference(x);
        if (y.Length != z.Length / 2)
            throw new ArgumentException($"operator phase-retrieval: {y.Length} measurement values but |B x| has {z.Length / 2}");
        AmplitudeResidual.Reference((float)(1.0 / ((double)sigma * sigma)), y, z);
        int planes = y.Length / (Hp * Wp);
        Fft2d.Reference(z, z, [planes, Hp, Wp, 2], inverse: true, FftNorm.Ortho);
        var grad = new float[x.Length];
        CropDemodulate.Reference(modulation, InputLength, z, grad, planes, H, W, Hp, Wp);
        return grad;
    }

    /// <summary>
    /// The log-likelihood -|| |B x| - y ||^2 / (2 sigma^2) per item, all in double with B x summed
    /// directly from the DFT's definition (O(H W s^2 H W) per plane: for small test sizes), so tests
    /// can take finite differences of it independently of the FFT.
    /// </summary>
    public double[] LogLikelihoodReference(ReadOnlySpan<double> x, ReadOnlySpan<float> y, double sigma)
    {
        if (x.Length % InputLength != 0) throw new ArgumentException($"operator phase-retrieval: {x.Length} input values are not whole items of {InputLength}");
        int n = x.Length / InputLength, c = InputShape[0];
        var ll = new double[n];
        double norm = 1 / Math.Sqrt((double)Hp * Wp);
        var re = new double[H * W];
        var im = new double[H * W];
        for (int item = 0; item < n; item++)
            for (int ch = 0; ch < c; ch++)
            {
                int plane = item * c + ch;
                for (int i = 0; i < H * W; i++)
                {
                    int m = ch * H * W + i;
                    double v = x[plane * H * W + i];
                    re[i] = v * modulation[2 * m];
                    im[i] = v * modulation[2 * m + 1];
                }
                for (int k = 0; k < Hp; k++)
                    for (int l = 0; l < Wp; l++)
                    {
                        double zr = 0, zi = 0;
                        for (int i = 0; i < H; i++)
                            for (int j = 0; j < W; j++)
                            {
                                var (sn, cs) = Math.SinCos(-2 * Math.PI * ((double)(k * i % Hp) / Hp + (double)(l * j % Wp) / Wp));
                                double a = re[i * W + j], b = im[i * W + j];
                                zr += a * cs - b * sn;
                                zi += a * sn + b * cs;
                            }
                        double d = norm * Math.Sqrt(zr * zr + zi * zi) - y[(plane * Hp + k) * Wp + l];
                        ll[item] -= d * d / (2 * sigma * sigma);
                    }
            }
        return ll;
    }

    // ---- device ------------------------------------------------------------------------------

    private void Transform(Tensor x, Tensor z)
    {
        PadModulate.Run(modulationTensor, x, z);
        Fft2d.Forward(z, z, FftNorm.Ortho);
    }

    private int[] PaddedShape(int n) => [n, InputShape[0], Hp, Wp, 2];

    /// <inheritdoc/>
    protected override void ForwardCore(Tensor x, Tensor y)
    {
        using var z = Pool.Rent(PaddedShape(x.N));
        Transform(x, z);
        ComplexOps.Magnitude(z, y);
    }

    /// <inheritdoc/>
    protected override void LogLikelihoodGradientCore(Tensor x, Tensor y, float sigma, Tensor grad)
    {
        using var z = Pool.Rent(PaddedShape(x.N));
        Transform(x, z);
        AmplitudeResidual.Run(1f / (sigma * sigma), y, z);
        Fft2d.Inverse(z, z, FftNorm.Ortho);
        CropDemodulate.Run(modulationTensor, z, grad);
    }

    /// <summary>log(1 + |y|) of each channel's centred (fftshifted) spectrum, averaged over s x s blocks down to the
    /// image's size and stretched to [-1, 1] per image: the diffraction pattern, not an image of x.</summary>
    /// <exception cref="ArgumentException">y does not have the operator's measurement shape.</exception>
    public override float[] Preview(Tensor y)
    {
        int n = ValidateMeasurement(y);
        var host = y.ToHost();
        int c = InputShape[0], sh = Hp / H, sw = Wp / W;
        var result = new float[n * InputLength];
        for (int p = 0; p < n * c; p++)
            for (int i = 0; i < H; i++)
                for (int j = 0; j < W; j++)
                {
                    double sum = 0;
                    for (int a = 0; a < sh; a++)
                        for (int b = 0; b < sw; b++)
                        {
                            int u = (i * sh + a + Hp / 2) % Hp, v = (j * sw + b + Wp / 2) % Wp;   // fftshift
                            sum += Math.Log(1 + Math.Abs(host[(p * Hp + u) * Wp + v]));
                        }
                    result[(p * H + i) * W + j] = (float)(sum / (sh * sw));
                }
        MeasurementPreview.Stretch(result, n);
        return result;
    }

    /// <inheritdoc/>
    protected override void DisposeDeviceData() => modulationTensor.Dispose();
}

using BenchmarkDotNet.Attributes;
using PosteriorGpu.Bench.Harness;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Samplers.Operators;

namespace PosteriorGpu.Bench.Samplers;

/// <summary>
/// One log-likelihood gradient per operator on a batch of [16, 3, 64, 64] images, the call a
/// posterior sampler makes every step. Napkin math: the masks, pooling and blur are memory-bound
/// (a few passes over 786 KB per item); compressed sensing and one-bit are two GEMMs of 2 m d N
/// flops each; the Fourier operators are two FFTs (phase retrieval on 4x the pixels). Smoke runs
/// use [2, 3, 32, 32] and 256 measurements.
/// </summary>
[MemoryDiagnoser]
public class OperatorBench
{
    private GpuDevice device = null!;
    private ForwardOperator op = null!;
    private Tensor x = null!;
    private Tensor y = null!;
    private Tensor grad = null!;

    /// <summary>Which operator.</summary>
    [Params("inpainting", "super-resolution", "blur", "compressed-sensing", "fourier", "phase-retrieval", "one-bit")]
    public string Operator { get; set; } = "inpainting";

    private const int C = 3;
    private static int N => BenchMode.Smoke ? 2 : 16;
    private static int S => BenchMode.Smoke ? 32 : 64;
    private static int M => BenchMode.Smoke ? 256 : 2048;

    [GlobalSetup]
    public void Setup()
    {
        device = GpuDevice.Open();
        op = Operator switch
        {
            "inpainting" => InpaintingOperator.RandomPixels(device, C, S, S, 0.3, 1),
            "super-resolution" => new SuperResolutionOperator(device, C, S, S, 4),
            "blur" => BlurOperator.Gaussian(device, C, S, S, 9, 2f),
            "compressed-sensing" => new CompressedSensingOperator(device, [C, S, S], M, 1),
            "fourier" => FourierSubsamplingOperator.RandomLines(device, C, S, S, 0.25, 0.08, 1),
            "phase-retrieval" => new PhaseRetrievalOperator(device, C, S, S, 2, PhaseMaskKind.UniformPhase, 1),
            _ => new OneBitOperator(device, [C, S, S], M, 0.1f, 1),
        };
        x = Tensor.Zeros(device, N, C, S, S);
        y = Tensor.Zeros(device, [N, .. op.MeasurementShape]);
        grad = Tensor.Zeros(device, N, C, S, S);
        op.Forward(x, y);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        x.Dispose();
        y.Dispose();
        grad.Dispose();
        op.Dispose();
        device.Dispose();
    }

    [Benchmark]
    public void LogLikelihoodGradient()
    {
        op.LogLikelihoodGradient(x, y, 0.1f, grad);
        device.Synchronize();
    }
}

using NUnit.Framework;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Samplers.Operators;

namespace PosteriorGpu.Tests.Operators;

/// <summary>Every operator at realistic sizes on the GPU against the same operator on the CPU
/// accelerator: forward, adjoint (linear) or log-likelihood gradient (nonlinear).</summary>
[Category("Gpu")]
public class OperatorGpuTests
{
    private static readonly OperatorCase[] Realistic =
    [
        new("inpainting-random-pixels", d => InpaintingOperator.RandomPixels(d, 3, 64, 64, 0.3, 1)),
        new("super-resolution-4", d => new SuperResolutionOperator(d, 3, 64, 64, 4)),
        new("blur-gaussian-zero", d => BlurOperator.Gaussian(d, 3, 64, 64, 9, 2f, BlurBoundary.Zero)),
        new("blur-uniform-circular", d => BlurOperator.Uniform(d, 3, 64, 64, 7, BlurBoundary.Circular)),
        new("compressed-sensing", d => new CompressedSensingOperator(d, [3, 32, 32], 1024, 7)),
        new("fourier-lines", d => FourierSubsamplingOperator.RandomLines(d, 3, 64, 64, 0.25, 0.08, 2)),
        new("phase-retrieval", d => new PhaseRetrievalOperator(d, 3, 64, 64, 2, PhaseMaskKind.UniformPhase, 3)),
        new("one-bit", d => new OneBitOperator(d, [3, 32, 32], 2048, 0.1f, 4)),
    ];

    [Test]
    public void Gpu_AllOperators_MatchCpu()
    {
        var gpu = TestDevices.Gpu;
        var cpu = TestDevices.Cpu;
        const int n = 4;
        foreach (var c in Realistic)
        {
            using var onGpu = c.Create(gpu);
            using var onCpu = c.Create(cpu);
            var x = TestData.Random(n * onCpu.InputLength, 1);
            var forwardCpu = Run(onCpu, x, n, (op, tx, ty) => op.Forward(tx, ty), measurementOut: true);
            var forwardGpu = Run(onGpu, x, n, (op, tx, ty) => op.Forward(tx, ty), measurementOut: true);
            Report($"{c.Name} forward", forwardGpu, forwardCpu, onCpu is OneBitOperator ? 1e-2 : 1e-4);
            if (onCpu is LinearOperator)
            {
                var y = TestData.Random(n * onCpu.MeasurementLength, 2);
                Report($"{c.Name} adjoint", Adjoint(onGpu, y, n), Adjoint(onCpu, y, n), 1e-4);
            }
            else
            {
                Report($"{c.Name} gradient", Gradient(onGpu, x, forwardCpu, n), Gradient(onCpu, x, forwardCpu, n), 1e-3);
            }
        }
    }

    private static float[] Run(ForwardOperator op, float[] x, int n, Action<ForwardOperator, Tensor, Tensor> f, bool measurementOut)
    {
        using var tx = Tensor.FromHost(op.Device, x, OperatorCases.Batched(n, op.InputShape));
        using var ty = Tensor.Empty(op.Device, OperatorCases.Batched(n, op.MeasurementShape));
        f(op, tx, ty);
        return measurementOut ? ty.ToHost() : tx.ToHost();
    }

    private static float[] Adjoint(ForwardOperator op, float[] y, int n)
    {
        using var ty = Tensor.FromHost(op.Device, y, OperatorCases.Batched(n, op.MeasurementShape));
        using var tx = Tensor.Empty(op.Device, OperatorCases.Batched(n, op.InputShape));
        ((LinearOperator)op).Adjoint(ty, tx);
        return tx.ToHost();
    }

    private static float[] Gradient(ForwardOperator op, float[] x, float[] y, int n)
    {
        // The gradient at a point other than the one measured, so it is not zero.
        var x2 = x.Select((v, i) => v + 0.1f * MathF.Sin(i)).ToArray();
        using var tx = Tensor.FromHost(op.Device, x2, OperatorCases.Batched(n, op.InputShape));
        using var ty = Tensor.FromHost(op.Device, y, OperatorCases.Batched(n, op.MeasurementShape));
        using var grad = Tensor.Empty(op.Device, tx.Shape);
        op.LogLikelihoodGradient(tx, ty, 0.5f, grad);
        return grad.ToHost();
    }

    private static void Report(string what, float[] gpu, float[] cpu, double tol)
    {
        double rel = TestData.RelativeError(gpu, cpu), max = TestData.MaxAbsError(gpu, cpu);
        TestContext.Out.WriteLine($"{what,-36} relative L2 {rel:E2}  max abs {max:E2}");
        Assert.That(rel, Is.LessThan(tol), what);
    }
}

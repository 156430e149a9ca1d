using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Gemm;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Samplers.Operators;

/// <summary>Compressed sensing: y = A vec(x) with a dense m x d matrix (d = C*H*W), seeded Gaussian
/// with entries N(0, 1/m) or given; forward and adjoint are GEMMs over the batch.</summary>
public sealed class CompressedSensingOperator : LinearOperator
{
    private readonly Tensor matrix;

    /// <summary>A given row-major m x d matrix.</summary>
    public CompressedSensingOperator(GpuDevice device, int[] inputShape, int measurements, float[] matrix)
    {
        int d = Shape.Elements(inputShape);
        if (measurements < 1 || matrix.Length != measurements * d)
            throw new ArgumentException($"compressed sensing: a {measurements} x {d} matrix needs {measurements * d} values, got {matrix.Length}");
        InputShape = (int[])inputShape.Clone();
        MeasurementShape = [measurements];
        Matrix = (float[])matrix.Clone();
        this.matrix = Tensor.FromHost(device, matrix, measurements, d);
    }

    /// <summary>A seeded Gaussian matrix with N(0, 1/m) entries (drawn with the counter-based generator).</summary>
    public static CompressedSensingOperator Gaussian(GpuDevice device, int[] inputShape, int measurements, ulong seed)
    {
        int d = Shape.Elements(inputShape);
        var draw = new RandomDraw(seed, 0x43534D41, 0);
        var a = new float[measurements * d];
        float scale = 1f / MathF.Sqrt(measurements);
        for (int i = 0; i < a.Length; i++) a[i] = scale * draw.Normal(i);
        return new CompressedSensingOperator(device, inputShape, measurements, a);
    }

    /// <inheritdoc/>
    public override string Name => "compressed sensing";

    /// <inheritdoc/>
    public override int[] InputShape { get; }

    /// <inheritdoc/>
    public override int[] MeasurementShape { get; }

    /// <summary>The matrix, row-major m x d (host copy).</summary>
    public float[] Matrix { get; }

    /// <inheritdoc/>
    public override void Forward(Tensor x, Tensor y)
    {
        CheckInput(x);
        CheckMeasurement(y, x.N);
        using var flat = x.Reshape(x.N, x.ItemLength);
        Gemm.Run(flat, false, matrix, true, y);   // y [N, m] = x [N, d] A^T
    }

    /// <inheritdoc/>
    public override void Adjoint(Tensor y, Tensor x)
    {
        CheckInput(x);
        CheckMeasurement(y, x.N);
        using var flat = x.Reshape(x.N, x.ItemLength);
        Gemm.Run(y, false, matrix, false, flat);  // x [N, d] = y [N, m] A
    }

    /// <inheritdoc/>
    public override void Dispose()
    {
        matrix.Dispose();
        base.Dispose();
    }
}

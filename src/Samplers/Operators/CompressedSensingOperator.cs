using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Samplers.Operators;

/// <summary>
/// Compressed sensing: y = A vec(x) with an m x d matrix A, d = the elements of one input item
/// (C H W for images). Forward and adjoint are one GEMM each (x [N, d] A^T and y [N, m] A).
/// Holds device memory (its data and a scratch pool): dispose it. Not thread-safe on its own; samplers call it within their turn on the device.
/// </summary>
public sealed class CompressedSensingOperator : LinearOperator
{
    private readonly float[] matrix;
    private readonly Tensor matrixTensor;

    /// <summary>An operator with a seeded Gaussian matrix, entries N(0, 1/m) (<see cref="GaussianMatrix.Create"/>).</summary>
    public CompressedSensingOperator(GpuDevice device, int[] inputShape, int m, ulong seed)
        : this(device, inputShape, m, GaussianMatrix.Create(m, Shape.Elements(inputShape), seed)) { }

    /// <summary>An operator with the given row-major m x d matrix (d = the product of <paramref name="inputShape"/>).</summary>
    /// <exception cref="ArgumentException">The matrix does not hold m d values.</exception>
    public CompressedSensingOperator(GpuDevice device, int[] inputShape, int m, float[] matrix)
        : base(device, "compressed-sensing", inputShape, [m])
    {
        int d = Shape.Elements(inputShape);
        if (m < 1 || matrix.Length != (long)m * d)
            throw new ArgumentException(
                $"operator compressed-sensing: expected a {m} x {d} matrix ({(long)m * d} values) for input shape {Shape.Format(inputShape)} but got {matrix.Length} values");
        this.matrix = (float[])matrix.Clone();
        matrixTensor = Tensor.FromHost(device, matrix, m, d);
    }

    /// <summary>Rows m of A.</summary>
    public int Rows => MeasurementShape[0];

    /// <summary>Columns d of A.</summary>
    public int Columns => InputLength;

    /// <summary>A copy of A (row-major m x d).</summary>
    public float[] Matrix => (float[])matrix.Clone();

    /// <inheritdoc/>
    protected override void ForwardCore(Tensor x, Tensor y)
    {
        using var flat = x.Reshape(x.N, Columns);
        Kernels.Gemm.Gemm.Run(flat, false, matrixTensor, true, y);
    }

    /// <inheritdoc/>
    protected override void AdjointCore(Tensor y, Tensor x)
    {
        using var flat = x.Reshape(x.N, Columns);
        Kernels.Gemm.Gemm.Run(y, false, matrixTensor, false, flat);
    }

    /// <inheritdoc/>
    public override float[] ForwardReference(ReadOnlySpan<float> x)
    {
        ItemsOf(x, InputLength, "input");
        return GaussianMatrix.MultiplyReference(matrix, Rows, Columns, x);
    }

    /// <inheritdoc/>
    public override float[] AdjointReference(ReadOnlySpan<float> y)
    {
        ItemsOf(y, MeasurementLength, "measurement");
        return GaussianMatrix.TransposeMultiplyReference(matrix, Rows, Columns, y);
    }

    /// <inheritdoc/>
    protected override void DisposeDeviceData() => matrixTensor.Dispose();
}

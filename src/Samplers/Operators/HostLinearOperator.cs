using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Samplers.Operators;

/// <summary>
/// The easiest way to bring your own linear measurement: implement <see cref="ForwardItem"/> (y = A x) and
/// <see cref="AdjointItem"/> (x = A^T y) for one item on host spans, and the base does the rest (batching, shape
/// checks, the likelihood gradient A^T (y - A x) / sigma^2, device transfers through reused host buffers, so
/// repeated calls allocate nothing). Check your pair with <see cref="OperatorChecks.CheckAdjoint"/>. Each call
/// copies the batch to the host and back: fine for the CPU accelerator and small problems; for speed on a GPU,
/// derive from <see cref="LinearOperator"/> and write the two directions as kernels.
/// Holds device memory only in its scratch pool: dispose it. Not thread-safe (samplers serialise their calls).
/// </summary>
public abstract class HostLinearOperator : LinearOperator
{
    private float[] inputs = [], measurements = [];

    /// <summary>Sets the device, a short name for messages, and the shapes of one input and one measurement.</summary>
    protected HostLinearOperator(GpuDevice device, string name, int[] inputShape, int[] measurementShape)
        : base(device, name, inputShape, measurementShape) { }

    /// <summary>y = A x for one item: x has <see cref="ForwardOperator.InputLength"/> values, y
    /// <see cref="ForwardOperator.MeasurementLength"/>; write every value of y.</summary>
    protected abstract void ForwardItem(ReadOnlySpan<float> x, Span<float> y);

    /// <summary>x = A^T y for one item, the adjoint of <see cref="ForwardItem"/> (&lt;A x, y&gt; = &lt;x, A^T y&gt;);
    /// write every value of x.</summary>
    protected abstract void AdjointItem(ReadOnlySpan<float> y, Span<float> x);

    /// <inheritdoc/>
    protected sealed override void ForwardCore(Tensor x, Tensor y) =>
        OnHost(x, y, forward: true);

    /// <inheritdoc/>
    protected sealed override void AdjointCore(Tensor y, Tensor x) =>
        OnHost(y, x, forward: false);

    /// <inheritdoc/>
    public sealed override float[] ForwardReference(ReadOnlySpan<float> x)
    {
        int n = ItemsOf(x, InputLength, "input");
        var y = new float[n * MeasurementLength];
        for (int i = 0; i < n; i++) ForwardItem(x.Slice(i * InputLength, InputLength), y.AsSpan(i * MeasurementLength, MeasurementLength));
        return y;
    }

    /// <inheritdoc/>
    public sealed override float[] AdjointReference(ReadOnlySpan<float> y)
    {
        int n = ItemsOf(y, MeasurementLength, "measurement");
        var x = new float[n * InputLength];
        for (int i = 0; i < n; i++) AdjointItem(y.Slice(i * MeasurementLength, MeasurementLength), x.AsSpan(i * InputLength, InputLength));
        return x;
    }

    // One pair of host buffers, grown to the largest batch seen: no allocation in a sampler's loop.
    private void OnHost(Tensor from, Tensor to, bool forward)
    {
        int n = from.N, fromLength = forward ? InputLength : MeasurementLength, toLength = forward ? MeasurementLength : InputLength;
        if (inputs.Length < n * InputLength) inputs = new float[n * InputLength];
        if (measurements.Length < n * MeasurementLength) measurements = new float[n * MeasurementLength];
        var src = forward ? inputs : measurements;
        var dst = forward ? measurements : inputs;
        from.CopyTo(src.AsSpan(0, n * fromLength));
        for (int i = 0; i < n; i++)
        {
            var a = src.AsSpan(i * fromLength, fromLength);
            var b = dst.AsSpan(i * toLength, toLength);
            if (forward) ForwardItem(a, b);
            else AdjointItem(a, b);
        }
        to.CopyFrom(dst.AsSpan(0, n * toLength));
    }
}

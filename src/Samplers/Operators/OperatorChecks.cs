using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Samplers.Operators;

/// <summary>
/// Checks for forward operators, public so that you can run them on your own: a wrong adjoint makes every
/// posterior sampler quietly wrong (the likelihood gradient A^T (y - A x) / sigma^2 uses it), so test it once.
/// </summary>
public static class OperatorChecks
{
    /// <summary>Random stream of the test vectors.</summary>
    private const uint CheckStream = RandomStreams.AdjointCheck;

    /// <summary>
    /// The adjoint test on <paramref name="batch"/> random pairs (x, y) ~ N(0, I) from <paramref name="seed"/>: returns
    /// |&lt;A x, y&gt; - &lt;x, A^T y&gt;| / (||A x|| ||y||), in double precision over the batch. A correct adjoint gives
    /// float32 round-off (below 1e-5 for the library's operators); a wrong one typically 1e-2 or more.
    /// </summary>
    /// <exception cref="ArgumentException">A x is zero for every test vector (nothing to compare).</exception>
    public static double AdjointGap(ILinearOperator op, GpuDevice device, int batch = 2, ulong seed = 0)
    {
        ArgumentNullException.ThrowIfNull(op);
        ArgumentNullException.ThrowIfNull(device);
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        int d = Shape.Elements(op.InputShape), m = Shape.Elements(op.MeasurementShape);
        var x = new float[batch * d];
        var y = new float[batch * m];
        Measurements.AddGaussianNoiseReference(x, 1f, new RandomDraw(seed, CheckStream, 0));
        Measurements.AddGaussianNoiseReference(y, 1f, new RandomDraw(seed, CheckStream, 1));
        using var exclusive = device.Exclusive();
        using var tx = Tensor.FromHost(device, x, [batch, .. op.InputShape]);
        using var ty = Tensor.FromHost(device, y, [batch, .. op.MeasurementShape]);
        using var ax = Tensor.Empty(device, ty.Shape);
        using var aty = Tensor.Empty(device, tx.Shape);
        op.Forward(tx, ax);
        op.Adjoint(ty, aty);
        var axHost = ax.ToHost();
        double left = Dot(axHost, y), right = Dot(x, aty.ToHost());
        double scale = Math.Sqrt(Dot(axHost, axHost) * Dot(y, y));
        if (!(scale > 0)) throw new ArgumentException($"operator {op.Name}: A x is zero for every test vector; the adjoint test needs A != 0");
        return Math.Abs(left - right) / scale;
    }

    /// <summary>Runs <see cref="AdjointGap"/> and throws when the gap exceeds <paramref name="tolerance"/>.</summary>
    /// <exception cref="InvalidOperationException">The adjoint does not match the forward map; the message gives the gap.</exception>
    public static void CheckAdjoint(ILinearOperator op, GpuDevice device, double tolerance = 1e-5, int batch = 2, ulong seed = 0)
    {
        double gap = AdjointGap(op, device, batch, seed);
        if (!(gap <= tolerance))
            throw new InvalidOperationException(
                $"operator {op.Name}: the adjoint does not match the forward map: |<A x, y> - <x, A^T y>| / (||A x|| ||y||) = {gap:E2} > {tolerance:E0}");
    }

    private static double Dot(float[] a, float[] b)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++) s += (double)a[i] * b[i];
        return s;
    }
}

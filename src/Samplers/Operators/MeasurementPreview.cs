using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Samplers.Operators;

/// <summary>
/// Helpers for <see cref="IForwardOperator.Preview"/>, which shows a measurement y as images of the input's shape
/// (for a grid beside the truth and the samples): the back-projection A^T y, and a per-image stretch onto [-1, 1]
/// for previews whose scale means nothing (a back-projection through a random matrix, a log spectrum).
/// </summary>
public static class MeasurementPreview
{
    /// <summary>The default preview of any operator: for a linear one the back-projection A^T y stretched to [-1, 1] per
    /// image; for a nonlinear one without a preview of its own, mid-grey images (zeros).</summary>
    /// <exception cref="ArgumentException">y does not have the operator's measurement shape.</exception>
    public static float[] Default(IForwardOperator op, Tensor y)
    {
        ArgumentNullException.ThrowIfNull(op);
        ArgumentNullException.ThrowIfNull(y);
        if (op is ILinearOperator linear) return BackProjection(linear, y, stretch: true);
        RequireMeasurement(op, y);
        return new float[y.N * Shape.Elements(op.InputShape)];
    }

    /// <summary>A^T y as [N, ...InputShape] host values, optionally stretched per image (<see cref="Stretch"/>).</summary>
    /// <exception cref="ArgumentException">y does not have the operator's measurement shape.</exception>
    public static float[] BackProjection(ILinearOperator op, Tensor y, bool stretch)
    {
        ArgumentNullException.ThrowIfNull(op);
        ArgumentNullException.ThrowIfNull(y);
        RequireMeasurement(op, y);
        using var x = Tensor.Empty(y.Device, [y.N, .. op.InputShape]);
        op.Adjoint(y, x);
        var result = x.ToHost();
        if (stretch) Stretch(result, y.N);
        return result;
    }

    /// <summary>Maps each of the <paramref name="n"/> images in <paramref name="images"/> linearly onto [-1, 1], in place
    /// (its minimum to -1, its maximum to +1; a constant image becomes 0).</summary>
    /// <exception cref="ArgumentException">The values are not n whole images.</exception>
    public static void Stretch(Span<float> images, int n)
    {
        if (n < 0 || (n == 0 ? images.Length != 0 : images.Length % n != 0))
            throw new ArgumentException($"preview: {images.Length} values are not {n} whole images");
        if (n == 0) return;
        int d = images.Length / n;
        for (int k = 0; k < n; k++)
        {
            var img = images.Slice(k * d, d);
            float lo = float.PositiveInfinity, hi = float.NegativeInfinity;
            foreach (float v in img) { lo = Math.Min(lo, v); hi = Math.Max(hi, v); }
            for (int i = 0; i < img.Length; i++) img[i] = hi > lo ? 2 * (img[i] - lo) / (hi - lo) - 1 : 0f;
        }
    }

    /// <summary>Checks that y is [N, ...MeasurementShape] of <paramref name="op"/>.</summary>
    /// <exception cref="ArgumentException">It is not; the message names both shapes.</exception>
    internal static void RequireMeasurement(IForwardOperator op, Tensor y)
    {
        var s = y.Shape;
        var item = op.MeasurementShape;
        if (s.Length != item.Length + 1 || !s.AsSpan(1).SequenceEqual(item))
            throw new ArgumentException($"operator {op.Name}: expected measurement of shape [N, {string.Join(", ", item)}] but got {Shape.Format(s)}");
    }
}

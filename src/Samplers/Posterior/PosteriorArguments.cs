using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Samplers.Posterior;

/// <summary>The argument checks every posterior sampler makes once, before any work.</summary>
internal static class PosteriorArguments
{
    /// <exception cref="ArgumentException">x is not [N, C, H, W] of the model's image shape, the operator takes other
    /// inputs, or y has the wrong shape or count.</exception>
    /// <exception cref="ArgumentOutOfRangeException">sigma_y is not positive and finite, or firstSample is negative.</exception>
    public static void Check(string sampler, Tensor x, Tensor y, IForwardOperator op, float sigmaY, long firstSample, IScoreModel model)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        ArgumentNullException.ThrowIfNull(op);
        if (!(sigmaY > 0 && float.IsFinite(sigmaY)))
            throw new ArgumentOutOfRangeException(nameof(sigmaY), sigmaY,
                $"{sampler}: sigma_y must be positive and finite (it is the measurement noise level and the likelihood divides by its square; " +
                "for noise-free measurements use a small positive sigma_y)");
        ArgumentOutOfRangeException.ThrowIfNegative(firstSample);
        Shape.RequireRank(sampler, x, "x", 4);
        if (x.C != model.Channels || (model.Height > 0 && x.H != model.Height) || (model.Width > 0 && x.W != model.Width))
            throw new ArgumentException($"{sampler}: the model takes [N, {model.Channels}, {model.Height}, {model.Width}] but x has shape {Shape.Format(x.Shape)}");
        if (!op.InputShape.SequenceEqual(x.Shape[1..]))
            throw new ArgumentException($"{sampler}: operator {op.Name} takes inputs of shape {Shape.Format(op.InputShape)} but x has items of shape {Shape.Format(x.Shape[1..])}");
        if (!y.Shape[1..].SequenceEqual(op.MeasurementShape) || (y.N != 1 && y.N != x.N))
            throw new ArgumentException($"{sampler}: y {Shape.Format(y.Shape)} must be one measurement [1, {string.Join(", ", op.MeasurementShape)}] " +
                                        $"or one per chain [{x.N}, {string.Join(", ", op.MeasurementShape)}] of operator {op.Name}");
        if (!ReferenceEquals(x.Device, model.Device) || !ReferenceEquals(y.Device, model.Device))
            throw new ArgumentException($"{sampler}: x and y must live on the model's device ({model.Device.Description})");
    }
}

/// <summary>Synchronous progress (System.Progress would post to the thread pool, out of order).</summary>
internal sealed class ProgressRelay(Action<SamplerProgress> report) : IProgress<SamplerProgress>
{
    public void Report(SamplerProgress value) => report(value);
}

using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;

namespace PosteriorGpu.Cli.Studies;

/// <summary>A score model that counts what the samplers ask of the network it wraps: image-evaluations of epsilon
/// (one per item of a <see cref="PredictEpsilon"/> batch) and image-evaluations of the vector-Jacobian product (one per
/// item of an <see cref="EpsilonVjp"/> batch: a forward and a backward pass through the network). A study's budget in
/// network evaluations is then counted, not taken on trust from the options.</summary>
internal sealed class CountingScoreModel(IScoreModel network) : IDifferentiableScoreModel
{
    /// <summary>Items evaluated by <see cref="PredictEpsilon"/> (forward passes alone).</summary>
    public long Forward { get; private set; }

    /// <summary>Items evaluated by <see cref="EpsilonVjp"/> (a forward and a backward pass each).</summary>
    public long Vjp { get; private set; }

    /// <summary>Sets both counts to zero.</summary>
    public void Reset() => (Forward, Vjp) = (0, 0);

    /// <inheritdoc/>
    public GpuDevice Device => network.Device;

    /// <inheritdoc/>
    public int Channels => network.Channels;

    /// <inheritdoc/>
    public int Height => network.Height;

    /// <inheritdoc/>
    public int Width => network.Width;

    /// <inheritdoc/>
    public bool CanDifferentiate => network is IDifferentiableScoreModel { CanDifferentiate: true };

    /// <inheritdoc/>
    public void PredictEpsilon(Tensor x, ReadOnlySpan<float> timesteps, Tensor epsilon)
    {
        network.PredictEpsilon(x, timesteps, epsilon);
        Forward += x.N;
    }

    /// <inheritdoc/>
    public void EpsilonVjp(Tensor x, ReadOnlySpan<float> timesteps, Tensor cotangent, Tensor epsilon, Tensor gradient)
    {
        if (network is not IDifferentiableScoreModel d)
            throw new InvalidOperationException("the wrapped network cannot differentiate");
        d.EpsilonVjp(x, timesteps, cotangent, epsilon, gradient);
        Vjp += x.N;
    }
}

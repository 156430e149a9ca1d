using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Models;

/// <summary>
/// A noise-prediction network: given a batch x_t and one timestep per item (or one for all), predicts the epsilon
/// with x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) epsilon (a_t = alphas_cumprod[t]). The score follows as
/// s = -epsilon / sqrt(1 - a_t) (<see cref="ScoreConversion"/>). Not thread-safe.
/// </summary>
public interface IScoreModel
{
    /// <summary>The device the model's weights live on; inputs must live there too.</summary>
    GpuDevice Device { get; }

    /// <summary>Image channels the model takes and returns.</summary>
    int Channels { get; }

    /// <summary>Image height the model was built for.</summary>
    int Height { get; }

    /// <summary>Image width the model was built for.</summary>
    int Width { get; }

    /// <summary>Writes the predicted epsilon for x ([N, C, H, W]) at <paramref name="timesteps"/> into <paramref name="epsilon"/>.</summary>
    /// <param name="x">The noisy batch, [N, C, H, W] on <see cref="Device"/>.</param>
    /// <param name="timesteps">Diffusion-time indices (diffusers' timesteps, possibly fractional): N values, one per item,
    /// or 1 value used for every item; the result is the same as for N copies of it. Implementations check this with
    /// <see cref="ScoreModelTimesteps.Require"/>.</param>
    /// <param name="epsilon">The output, shaped as x.</param>
    /// <exception cref="ArgumentException">timesteps holds neither N values nor one, or the shapes do not fit.</exception>
    void PredictEpsilon(Tensor x, ReadOnlySpan<float> timesteps, Tensor epsilon);
}

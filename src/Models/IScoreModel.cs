using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Models;

/// <summary>
/// A noise-prediction network: given a batch x_t and one timestep per item, predicts the epsilon
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

    /// <summary>Writes the predicted epsilon for x ([N, C, H, W]) at <paramref name="timesteps"/>
    /// (N values, diffusion-time indices, possibly fractional) into <paramref name="epsilon"/>.</summary>
    void PredictEpsilon(Tensor x, ReadOnlySpan<float> timesteps, Tensor epsilon);
}

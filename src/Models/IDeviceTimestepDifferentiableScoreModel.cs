using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Models;

/// <summary>
/// A differentiable noise-prediction network whose vector-Jacobian product can also take its timesteps from device
/// memory, as <see cref="IDeviceTimestepScoreModel"/> does for the forward pass: a guided step (DPS) that reads every
/// per-step scalar on the device launches the same kernels at every step, so one CUDA graph replays any of them. The
/// result is bitwise that of <see cref="IDifferentiableScoreModel.EpsilonVjp"/> with the same values from the host.
/// </summary>
public interface IDeviceTimestepDifferentiableScoreModel : IDifferentiableScoreModel, IDeviceTimestepScoreModel
{
    /// <summary>As <see cref="IDifferentiableScoreModel.EpsilonVjp"/>, with the timesteps held in <paramref name="timesteps"/>
    /// (a device tensor [N], one value per item, read when the pass runs on the device).</summary>
    /// <exception cref="ArgumentException">timesteps is not [N] on x's device, or the shapes do not fit.</exception>
    /// <exception cref="InvalidOperationException">The model cannot differentiate (<see cref="IDifferentiableScoreModel.CanDifferentiate"/>).</exception>
    void EpsilonVjp(Tensor x, Tensor timesteps, Tensor cotangent, Tensor epsilon, Tensor gradient);
}

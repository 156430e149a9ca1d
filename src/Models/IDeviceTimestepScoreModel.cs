using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Models;

/// <summary>
/// A noise-prediction network that can also take its timesteps from device memory. A sampler step that reads every
/// per-step scalar on the device (the timestep here, its update's coefficients from a per-run table) launches the same
/// kernels with the same arguments at every step, which is what lets one CUDA graph, captured once, replay any step
/// (<see cref="Kernels.Device.CudaGraph"/>). The result is bitwise that of <see cref="IScoreModel.PredictEpsilon"/> with
/// the same values passed from the host.
/// </summary>
public interface IDeviceTimestepScoreModel : IScoreModel
{
    /// <summary>Writes the predicted epsilon for x ([N, C, H, W]) at the timesteps held in <paramref name="timesteps"/>
    /// (a device tensor [N], one value per item, read when the pass runs on the device) into <paramref name="epsilon"/>.</summary>
    /// <exception cref="ArgumentException">timesteps is not [N] on x's device, or the shapes do not fit.</exception>
    void PredictEpsilon(Tensor x, Tensor timesteps, Tensor epsilon);
}

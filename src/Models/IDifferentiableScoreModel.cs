using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Models;

/// <summary>
/// A score model that can also pull a cotangent back through its epsilon prediction: the
/// vector-Jacobian product g = (d eps(x, t) / d x)^T v. DPS (Chung et al. 2023) needs it to
/// differentiate the measurement residual at Tweedie's estimate x0(x_t) through the network.
/// Not thread-safe.
/// </summary>
public interface IDifferentiableScoreModel : IScoreModel
{
    /// <summary>
    /// Writes the predicted epsilon for x at <paramref name="timesteps"/> into <paramref name="epsilon"/>
    /// and J^T <paramref name="cotangent"/> into <paramref name="gradient"/>, where J is the Jacobian
    /// of epsilon with respect to x. All tensors are [N, C, H, W] on the model's device.
    /// </summary>
    void EpsilonVjp(Tensor x, ReadOnlySpan<float> timesteps, Tensor cotangent, Tensor epsilon, Tensor gradient);

    /// <summary>
    /// True when <see cref="EpsilonVjp"/> works on this instance. A type that can differentiate only in one
    /// mode (a U-Net loaded without gradients, <c>UNet2DModel.Load(device, folder, withGradients: false)</c>)
    /// says false, and callers that need the product (DPS) check it before sampling.
    /// </summary>
    bool CanDifferentiate => true;
}

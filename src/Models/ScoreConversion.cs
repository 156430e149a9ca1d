using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Models;

/// <summary>The one place where epsilon predictions become scores: s = -eps / sqrt(1 - a_t)
/// (Song et al. 2021, the epsilon parametrisation of the score of q(x_t)).</summary>
public static class ScoreConversion
{
    /// <summary>The factor that maps epsilon to the score at alphas_cumprod value <paramref name="alphaCumprod"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is not in [0, 1).</exception>
    public static float EpsilonToScoreFactor(double alphaCumprod)
    {
        if (!(alphaCumprod >= 0 && alphaCumprod < 1))
            throw new ArgumentOutOfRangeException(nameof(alphaCumprod), alphaCumprod, "alphas_cumprod must lie in [0, 1) to define a score");
        return (float)(-1.0 / Math.Sqrt(1 - alphaCumprod));
    }

    /// <summary>score[n] = -eps[n] / sqrt(1 - a[n]); <paramref name="factors"/> is an [N] device
    /// tensor filled with <see cref="EpsilonToScoreFactor"/> values; score may be eps.</summary>
    public static void EpsilonToScore(Tensor epsilon, Tensor factors, Tensor score) => ScalePerItem.Run(epsilon, factors, score);
}

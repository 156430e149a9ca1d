using PosteriorGpu.Bench.Models;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Models;
using PosteriorGpu.Models.Priors;
using PosteriorGpu.Models.UNet;
using PosteriorGpu.Models.Schedules;

namespace PosteriorGpu.Bench.Samplers;

/// <summary>The score models the sampler benchmarks run on [N, 3, 32, 32]: "gaussian" (an exact
/// diagonal Gaussian prior, one elementwise kernel, so the sampler's own cost shows) or a U-Net
/// architecture with random weights (the cost a user sees).</summary>
internal static class ScoreModels
{
    /// <summary>The schedule every sampler benchmark uses: DDPM's linear betas, 1000 steps.</summary>
    public static NoiseSchedule Schedule { get; } = NoiseSchedule.Linear(1000, 1e-4, 0.02);

    /// <summary>Opens the named model on <paramref name="device"/>; dispose it (it owns device memory).</summary>
    public static IScoreModel Open(GpuDevice device, string name)
    {
        if (name == "gaussian")
        {
            int d = 3 * 32 * 32;
            var rng = new Random(3);
            var mean = Enumerable.Range(0, d).Select(_ => rng.NextDouble() - 0.5).ToArray();
            var variance = Enumerable.Range(0, d).Select(_ => 0.1 + rng.NextDouble()).ToArray();
            return GaussianPrior.Diagonal(device, 3, 32, 32, mean, variance, Schedule);
        }
        string folder = UNetArchitectures.TemporaryCheckpoint(UNetArchitectures.ByName(name));
        try
        {
            return UNet2DModel.Load(device, folder);
        }
        finally
        {
            Directory.Delete(folder, true);
        }
    }
}

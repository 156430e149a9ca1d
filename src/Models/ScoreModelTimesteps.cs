namespace PosteriorGpu.Models;

/// <summary>The timestep contract of <see cref="IScoreModel.PredictEpsilon"/>: N values (one per batch item) or one
/// (the same for every item), checked in one place by every score model.</summary>
public static class ScoreModelTimesteps
{
    /// <summary>Checks that <paramref name="timesteps"/> holds <paramref name="batch"/> values or one.</summary>
    /// <param name="timesteps">The timesteps a caller passed.</param>
    /// <param name="batch">N, the batch size of x.</param>
    /// <param name="model">The model's name, for the message.</param>
    /// <exception cref="ArgumentException">Any other count (none, or neither 1 nor N); the message names both counts.</exception>
    public static void Require(ReadOnlySpan<float> timesteps, int batch, string model = "score model")
    {
        if (timesteps.Length == batch || (timesteps.Length == 1 && batch >= 0)) return;
        throw new ArgumentException(
            $"{model}: {timesteps.Length} timesteps for a batch of {batch}; give one per item ({batch}) or one for all (1)", nameof(timesteps));
    }

    /// <summary>Item <paramref name="item"/>'s timestep: timesteps[item], or timesteps[0] when one is given for all.</summary>
    public static float Of(ReadOnlySpan<float> timesteps, int item) => timesteps.Length == 1 ? timesteps[0] : timesteps[item];
}

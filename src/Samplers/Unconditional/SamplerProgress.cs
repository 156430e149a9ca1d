namespace PosteriorGpu.Samplers.Unconditional;

/// <summary>Progress of a sampler run: <see cref="Step"/> of <see cref="Steps"/> network calls done.</summary>
public readonly record struct SamplerProgress(int Step, int Steps);

/// <summary>Thrown when a sampler's state stops being finite; names the sampler and the step.</summary>
public sealed class SamplerDivergedException(string sampler, int step, int steps, int timestep)
    : Exception($"{sampler}: the sample became NaN or infinite at step {step} of {steps} (timestep {timestep}); " +
                "check the model's output and the step sizes")
{
    /// <summary>The 1-based step at which the state stopped being finite.</summary>
    public int Step { get; } = step;
}

namespace PosteriorGpu.Samplers.Unconditional;

/// <summary>Progress of a sampler run: <see cref="Step"/> of <see cref="Steps"/> network calls done.</summary>
public readonly record struct SamplerProgress(int Step, int Steps);

/// <summary>What stopped being finite first when a sampler diverged.</summary>
public enum DivergenceCause
{
    /// <summary>Not determined (the step was not replayed, or the replay did not fail again).</summary>
    Unknown,

    /// <summary>The score model returned NaN, infinity or values too large to square in float32, for finite input.</summary>
    ModelOutput,

    /// <summary>The likelihood gradient (from the measurement and the operator) was not finite, for finite input.</summary>
    LikelihoodGradient,

    /// <summary>The update itself overflowed although its inputs were finite (a step size far too large).</summary>
    Update,

    /// <summary>The state grew by many orders of magnitude before it overflowed: the iteration is unstable
    /// (a step size too large for the model's curvature, or a score that explodes).</summary>
    Exploded,
}

/// <summary>Thrown when a sampler's state stops being finite (NaN, infinity, or a norm beyond float32);
/// names the sampler, the step, the batch items (chains) that diverged and, where found, the cause.
/// <see cref="LastFiniteStep"/> says what the output tensor holds afterwards.</summary>
public sealed class SamplerDivergedException : Exception
{
    /// <summary>Creates the exception without a diagnosis (<see cref="DivergenceCause.Unknown"/>); a negative
    /// <paramref name="timestep"/> is left out of the message.</summary>
    public SamplerDivergedException(string sampler, int step, int steps, int timestep)
        : this(sampler, step, steps, timestep >= 0 ? $"timestep {timestep}" : null, DivergenceCause.Unknown, [], -1, null)
    {
    }

    /// <summary>Creates the exception with a diagnosis.</summary>
    /// <param name="sampler">The sampler's name.</param>
    /// <param name="step">The 1-based step at which the state stopped being finite.</param>
    /// <param name="steps">The run's number of steps.</param>
    /// <param name="where">Where in the run, e.g. "timestep 500" or "noise level 3 of 20"; null for none.</param>
    /// <param name="cause">What stopped being finite first.</param>
    /// <param name="items">The batch items (chains) that diverged, 0-based.</param>
    /// <param name="lastFiniteStep">The step whose state the output holds (0: the start), or -1 when it holds the failing step.</param>
    /// <param name="detail">Numbers that explain the cause (norms, the step size), or null.</param>
    public SamplerDivergedException(string sampler, int step, int steps, string? where, DivergenceCause cause,
        IReadOnlyList<int> items, int lastFiniteStep, string? detail)
        : base(Format(sampler, step, steps, where, cause, items, lastFiniteStep, detail))
    {
        Sampler = sampler;
        Step = step;
        Steps = steps;
        Cause = cause;
        Items = items;
        LastFiniteStep = lastFiniteStep;
    }

    /// <summary>The sampler's name.</summary>
    public string Sampler { get; }

    /// <summary>The 1-based step at which the state stopped being finite.</summary>
    public int Step { get; }

    /// <summary>The run's number of steps.</summary>
    public int Steps { get; }

    /// <summary>What stopped being finite first.</summary>
    public DivergenceCause Cause { get; }

    /// <summary>The batch items (chains) that diverged, 0-based (empty when not determined).</summary>
    public IReadOnlyList<int> Items { get; }

    /// <summary>The step whose state the output tensor holds, every item finite (0: the starting state), or -1:
    /// the output holds the failing step, finite in the items not listed in <see cref="Items"/> (or, for an
    /// unconditional sampler with a <see cref="DiffusionSampler.DivergenceCheckInterval"/> above 1, the later step the
    /// message names).</summary>
    public int LastFiniteStep { get; }

    private static string Format(string sampler, int step, int steps, string? where, DivergenceCause cause,
        IReadOnlyList<int> items, int lastFiniteStep, string? detail)
    {
        string at = where is null ? "" : $" ({where})";
        string which = items.Count == 0 ? "" : $" in item{(items.Count > 1 ? "s" : "")} " +
            string.Join(", ", items.Take(8)) + (items.Count > 8 ? $" and {items.Count - 8} more" : "");
        string why = cause switch
        {
            DivergenceCause.ModelOutput => "the score model returned NaN, infinity or values beyond float32 range for a finite input",
            DivergenceCause.LikelihoodGradient => "the likelihood gradient was not finite for a finite input (check the measurement y, sigma and the operator)",
            DivergenceCause.Update => "the update overflowed although the score and gradient were finite: the step size is far too large",
            DivergenceCause.Exploded => "the state grew without bound before it overflowed: the iteration is unstable (reduce the step size)",
            _ => "check the model's output and the step sizes",
        };
        string holds = lastFiniteStep switch
        {
            < 0 => "",
            0 => "; the output holds the starting state",
            _ => $"; the output holds the state after step {lastFiniteStep}, the last finite one",
        };
        return $"{sampler}: the sample became NaN or infinite at step {step} of {steps}{at}{which}: {why}" +
               (detail is null ? "" : $" ({detail})") + holds;
    }
}

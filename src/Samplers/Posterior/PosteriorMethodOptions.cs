using PosteriorGpu.Models;
using PosteriorGpu.Models.Schedules;

namespace PosteriorGpu.Samplers.Posterior;

/// <summary>
/// The options of one posterior method; each method has its own record whose names are the method's own
/// (<see cref="AnnealedLangevinOptions"/>, <see cref="DpnpOptions"/>, <see cref="DpsOptions"/>). The defaults are
/// right on exact posteriors (the tests check them on Gaussian priors); the <c>Image32</c> presets are the budgets
/// for 32 x 32 image models that the command line uses.
/// </summary>
public abstract record PosteriorMethodOptions
{
    /// <summary>Checks every option against the schedule once; <see cref="InvalidOptionException"/> names the one at fault.</summary>
    public abstract void Validate(NoiseSchedule schedule);

    /// <summary>The sampler these options describe, over a score model and its schedule (validates first).</summary>
    public abstract IPosteriorSampler CreateSampler(IScoreModel model, NoiseSchedule schedule);

    /// <summary>Throws <see cref="InvalidOptionException"/> for <paramref name="option"/> unless <paramref name="ok"/>.</summary>
    protected void Require(bool ok, string option, object? value, string rule)
    {
        if (!ok) throw new InvalidOptionException(GetType().Name, option, value, rule);
    }
}

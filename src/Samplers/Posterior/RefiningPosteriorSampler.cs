using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;
using PosteriorGpu.Models.Schedules;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Samplers.Posterior;

/// <summary>
/// "Draw from the prior, then refine" as one composable step: <see cref="Sample"/> makes the prior draw
/// (<see cref="PriorDraw"/>) and hands it to <see cref="Refine"/>, which any refining method (annealed Langevin, DPnP)
/// implements; a caller with a better start (another sampler's output, the paper's local variant) calls
/// <see cref="Refine"/> directly. Holds no device memory between calls; concurrent calls on one device take turns.
/// </summary>
public abstract class RefiningPosteriorSampler : IPosteriorSampler
{
    /// <summary>The model, its schedule and the prior draw that starts the chains.</summary>
    protected RefiningPosteriorSampler(IScoreModel model, NoiseSchedule schedule, PriorDraw start)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(schedule);
        Model = model;
        Schedule = schedule;
        Start = start;
    }

    /// <summary>The score model of the prior.</summary>
    protected IScoreModel Model { get; }

    /// <summary>Its noise schedule.</summary>
    protected NoiseSchedule Schedule { get; }

    /// <summary>The prior draw that starts the chains in <see cref="Sample"/>.</summary>
    public PriorDraw Start { get; }

    /// <inheritdoc/>
    public abstract string Name { get; }

    /// <inheritdoc/>
    public string Description => $"{RefinementDescription}, from {Start}";

    /// <summary>The refinement in one sentence.</summary>
    protected abstract string RefinementDescription { get; }

    /// <summary>Network evaluations per chain of <see cref="Refine"/>.</summary>
    public abstract int RefinementEvaluations { get; }

    /// <inheritdoc/>
    public int NetworkEvaluations => Start.Steps + RefinementEvaluations;

    /// <inheritdoc/>
    public PosteriorRun Sample(Tensor x, Tensor y, IForwardOperator op, float sigmaY, ulong seed, long firstSample = 0,
        IProgress<SamplerProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        PosteriorArguments.Check(Name, x, y, op, sigmaY, firstSample, Model);
        RequireOperator(op);
        using var exclusive = x.Device.Exclusive(cancellationToken);   // the prior draw and the chains as one turn
        int total = NetworkEvaluations;
        Start.Draw(x, Model, Schedule, seed, firstSample,
            progress is null ? null : new ProgressRelay(p => progress.Report(new SamplerProgress(p.Step, total))), cancellationToken);
        int prior = Start.Steps;
        var run = RefineCore(x, y, op, sigmaY, seed, firstSample,
            progress is null ? null : new ProgressRelay(p => progress.Report(new SamplerProgress(prior + p.Step, total))), cancellationToken);
        return run with { NetworkEvaluations = total };
    }

    /// <summary>
    /// Refines the chains in <paramref name="x"/> (their start: a prior draw, or any sampler's output) into samples of
    /// p(x | y). Progress counts network evaluations up to <see cref="RefinementEvaluations"/>.
    /// </summary>
    /// <exception cref="ArgumentException">A shape does not fit, the method cannot use this operator, or y holds NaN.</exception>
    /// <exception cref="SamplerDivergedException">A chain stopped being finite.</exception>
    public PosteriorRun Refine(Tensor x, Tensor y, IForwardOperator op, float sigmaY, ulong seed, long firstSample = 0,
        IProgress<SamplerProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        PosteriorArguments.Check(Name, x, y, op, sigmaY, firstSample, Model);
        RequireOperator(op);
        using var exclusive = x.Device.Exclusive(cancellationToken);
        return RefineCore(x, y, op, sigmaY, seed, firstSample, progress, cancellationToken);
    }

    /// <summary>The refinement, arguments checked and the device held.</summary>
    protected abstract PosteriorRun RefineCore(Tensor x, Tensor y, IForwardOperator op, float sigmaY, ulong seed, long firstSample,
        IProgress<SamplerProgress>? progress, CancellationToken cancellationToken);

    /// <summary>Throws when the method cannot use <paramref name="op"/> (e.g. needs a linear operator).</summary>
    protected virtual void RequireOperator(IForwardOperator op) { }
}

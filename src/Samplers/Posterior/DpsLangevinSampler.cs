using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;
using PosteriorGpu.Models.Schedules;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Samplers.Posterior;

/// <summary>The options of <see cref="DpsLangevinSampler"/>: the DPS warm start, the level it is re-noised to, and the
/// local annealed Langevin that follows.</summary>
public sealed record DpsLangevinOptions : PosteriorMethodOptions
{
    /// <summary>The DPS run that makes the warm start x0.</summary>
    public DpsOptions Dps { get; init; } = new();

    /// <summary>t0: the warm start is re-noised to x~ = x0 + sigma w with sigma = sqrt((1 - alpha_bar) / alpha_bar) at this
    /// timestep (100: sigma about 0.33 on the linear 1e-4..0.02 schedule), and the reverse diffusion runs down from it.</summary>
    public int Timestep { get; init; } = 100;

    /// <summary>The local annealed Langevin: its levels, steps and step scale; its PriorSampler / PriorSteps are the reverse
    /// diffusion from t0 (at most t0 + 1 steps).</summary>
    public AnnealedLangevinOptions Langevin { get; init; } = new();

    /// <summary>The preset for 32 x 32 image models (the command line's): DPS's Image32 (24 steps), t0 = 100, and annealed
    /// Langevin's Image32 (a DDIM-8 reverse diffusion from t0, then 4 levels x 4 steps): 48 network evaluations and 24
    /// vector-Jacobian products a sample.</summary>
    public static DpsLangevinOptions Image32 { get; } = new() { Dps = DpsOptions.Image32, Langevin = AnnealedLangevinOptions.Image32 };

    /// <inheritdoc/>
    public override void Validate(NoiseSchedule schedule)
    {
        Require(Dps is not null, nameof(Dps), Dps, "must be set");
        Require(Langevin is not null, nameof(Langevin), Langevin, "must be set");
        Require(Timestep >= 1 && Timestep < schedule.NumTrainTimesteps, nameof(Timestep), Timestep,
            $"must lie in 1..{schedule.NumTrainTimesteps - 1} (the re-noising level needs sigma > 0)");
        Dps!.Validate(schedule);
        Langevin!.Validate(schedule);
    }

    /// <inheritdoc/>
    public override IPosteriorSampler CreateSampler(IScoreModel model, NoiseSchedule schedule) => new DpsLangevinSampler(model, schedule, this);
}

/// <summary>
/// Xun, Gupta and Price's image pipeline (their Algorithms 2 and 3, "local" sampling): DPS makes a warm start x0; it is
/// re-noised, x~ = x0 + sigma w, with sigma the noise of timestep t0; reverse diffusion from t0 draws from p(x | x~); then
/// annealed Langevin runs on p(x | x~, y) with the score s(x) + (x~ - x) / sigma^2 and the nested measurements
/// (<see cref="AnnealedLangevinSampler.SampleLocal"/>). When x0 is itself a draw of p(x | y), so is the output: the
/// local step is exact in that sense, and corrects part of DPS's bias otherwise. Linear operators; the model needs
/// gradients (for DPS). Holds no device memory between calls; concurrent calls on one device take turns.
/// </summary>
public sealed class DpsLangevinSampler : IPosteriorSampler
{
    private readonly DpsSampler dps;
    private readonly AnnealedLangevinSampler langevin;
    private readonly IScoreModel model;
    private readonly NoiseSchedule schedule;

    /// <summary>The pipeline; the options are validated here.</summary>
    /// <exception cref="InvalidOptionException">An option is out of range (names it).</exception>
    /// <exception cref="ArgumentException">The model cannot differentiate (DPS needs it).</exception>
    public DpsLangevinSampler(IScoreModel model, NoiseSchedule schedule, DpsLangevinOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(schedule);
        Options = options ?? new DpsLangevinOptions();
        Options.Validate(schedule);
        this.model = model;
        this.schedule = schedule;
        dps = new DpsSampler(model, schedule, Options.Dps);
        langevin = new AnnealedLangevinSampler(model, schedule, Options.Langevin);
    }

    /// <summary>The options in use.</summary>
    public DpsLangevinOptions Options { get; }

    /// <summary>sigma, the noise of the re-noised warm start: sqrt((1 - alpha_bar) / alpha_bar) at t0.</summary>
    public double Sigma => schedule.Sigma(Options.Timestep);

    /// <inheritdoc/>
    public string Name => "dps-langevin";

    /// <inheritdoc/>
    public string Description => $"DPS warm start ({dps.Description}), re-noised to t0 = {Options.Timestep} (sigma {Sigma:G3}), " +
                                 $"reverse diffusion by {Options.Langevin.PriorSampler} in {ReverseSteps} steps, then local {langevin.Description}";

    /// <summary>Steps of the reverse diffusion from t0.</summary>
    public int ReverseSteps => Math.Min(Options.Langevin.PriorSteps, Options.Timestep + 1);

    /// <summary>Network evaluations per chain of <see cref="Refine"/>: the reverse diffusion and the Langevin steps.</summary>
    public int RefinementEvaluations => ReverseSteps + langevin.RefinementEvaluations;

    /// <inheritdoc/>
    public int NetworkEvaluations => dps.NetworkEvaluations + RefinementEvaluations;

    /// <inheritdoc/>
    public PosteriorRun Sample(Tensor x, Tensor y, IForwardOperator op, float sigmaY, ulong seed, long firstSample = 0,
        IProgress<SamplerProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        RequireLinear(op);
        using var exclusive = x.Device.Exclusive(cancellationToken);
        int total = NetworkEvaluations, first = dps.NetworkEvaluations;
        dps.Sample(x, y, op, sigmaY, seed, firstSample,
            progress is null ? null : new ProgressRelay(p => progress.Report(new SamplerProgress(p.Step, total))), cancellationToken);
        var refined = Refine(x, y, op, sigmaY, seed, firstSample,
            progress is null ? null : new ProgressRelay(p => progress.Report(new SamplerProgress(first + p.Step, total))), cancellationToken);
        return new PosteriorRun(total) { Annealing = refined.Annealing };
    }

    /// <summary>
    /// The local half from the warm starts in <paramref name="x"/> (one per chain): re-noise to t0, reverse diffusion,
    /// local annealed Langevin. Progress counts <see cref="RefinementEvaluations"/> (reported per Langevin level).
    /// </summary>
    public PosteriorRun Refine(Tensor x, Tensor y, IForwardOperator op, float sigmaY, ulong seed, long firstSample = 0,
        IProgress<SamplerProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        PosteriorArguments.Check(Name, x, y, op, sigmaY, firstSample, model);
        var linear = RequireLinear(op);
        using var exclusive = x.Device.Exclusive(cancellationToken);
        using var xTilde = Tensor.Empty(x.Device, x.Shape);
        float sigma = (float)Sigma;
        if (sigma < Sigma) sigma = MathF.BitIncrement(sigma);   // the reverse diffusion starts at the last level with noise <= sigma: t0 itself
        AnnealedLangevinSampler.GaussianMeasurement(x, sigma, new RandomDraw(seed, RandomStreams.WarmStartNoise, 0).ForBatch(firstSample, x.ItemLength), xTilde);
        int reverse = ReverseSteps, total = RefinementEvaluations;
        var local = langevin.SampleLocal(x, y, linear, sigmaY, xTilde, sigma, seed, firstSample,
            progress is null ? null : new ProgressRelay(p => progress.Report(new SamplerProgress(reverse + p.Step, total))), cancellationToken);
        return new PosteriorRun(total) { Annealing = local.Annealing };
    }

    private ILinearOperator RequireLinear(IForwardOperator op) => op as ILinearOperator
        ?? throw new ArgumentException($"{Name}: the local annealed Langevin needs a linear forward operator but {op.Name} is nonlinear; use DPS or DPnP", nameof(op));
}

using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Reductions;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Models.Schedules;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Samplers.Posterior;

/// <summary>How DPS weighs its measurement gradient.</summary>
public enum DpsStepRule
{
    /// <summary>Chung et al.'s Algorithm 1: x -= zeta grad_x ||y - A(x0^(x))|| (the gradient of the residual norm, so
    /// each chain's step is normalised by its own residual). For non-Gaussian likelihoods the residual gradient is
    /// sigma_y^2 times the log-likelihood gradient.</summary>
    ResidualNorm,

    /// <summary>The posterior score approximation of Chung et al.'s eq. 16 taken literally: grad_x log p(y | x0^(x)) added
    /// to the prior score inside the DDPM step (weight (1 - a_t/a_p) / sqrt(a_t/a_p)), times zeta.</summary>
    Likelihood,
}

/// <summary>The options of <see cref="DpsSampler"/> (Chung et al.'s Algorithm 1 with its step size zeta).
/// <see cref="Image32"/> is the budget the command line uses for 32 x 32 image models. DPS is the biased baseline:
/// even with an exact score its samples are not the posterior's (the tests measure by how much).</summary>
public sealed record DpsOptions : PosteriorMethodOptions
{
    /// <summary>DDPM steps (leading spacing, as the unconditional DDPM sampler).</summary>
    public int Steps { get; init; } = 100;

    /// <summary>The step size zeta.</summary>
    public double StepSize { get; init; } = 1.0;

    /// <summary>How the measurement gradient is weighed.</summary>
    public DpsStepRule Rule { get; init; } = DpsStepRule.ResidualNorm;

    /// <summary>Whether runs read each step's scalars from a per-run device table and, on CUDA, replay each window of
    /// <see cref="PosteriorCommon.DivergenceCheckInterval"/> steps as one CUDA graph (default false), as
    /// <see cref="DiffusionSampler.GraphReplay"/> does for the unconditional samplers: the first window runs plainly, a last
    /// shorter one too; the samples are bitwise the plain path's. Needs a model with device timesteps
    /// (<see cref="IDeviceTimestepDifferentiableScoreModel"/>, as the U-Net); elsewhere the run falls back and
    /// <see cref="DpsSampler.LastStepLaunches"/> says why. The operator's kernels must not copy from or wait for the host
    /// inside a step (none of the library's do).</summary>
    public bool GraphReplay { get; init; }

    /// <summary>The preset for 32 x 32 image models (the command line's): 24 reverse-diffusion steps (24 network
    /// evaluations and 24 vector-Jacobian products a sample), zeta 1 (the command sets zeta per task).</summary>
    public static DpsOptions Image32 { get; } = new() { Steps = 24 };

    /// <inheritdoc/>
    public override void Validate(NoiseSchedule schedule)
    {
        Require(Steps >= 1 && Steps <= schedule.NumTrainTimesteps, nameof(Steps), Steps, $"must lie in 1..{schedule.NumTrainTimesteps} (the schedule's timesteps)");
        Require(StepSize >= 0 && double.IsFinite(StepSize), nameof(StepSize), StepSize, "must be at least 0 and finite");
        Require(Enum.IsDefined(Rule), nameof(Rule), Rule, "must be a DpsStepRule");
    }

    /// <inheritdoc/>
    public override IPosteriorSampler CreateSampler(IScoreModel model, NoiseSchedule schedule) => new DpsSampler(model, schedule, this);
}

/// <summary>
/// Diffusion posterior sampling (DPS; Chung, Kim, Mccann, Klasky and Ye 2023, "Diffusion posterior sampling for
/// general noisy inverse problems", Algorithm 1): DDPM ancestral steps from pure noise, each followed by a
/// gradient step on the measurement residual at Tweedie's estimate x0^(x_t) = (x_t - sqrt(1 - a_t) eps(x_t)) / sqrt(a_t),
/// differentiated through the network: grad_x f(x0^) = (g - sqrt(1 - a_t) J^T g) / sqrt(a_t) with g = grad f at x0^
/// and J the Jacobian of eps (<see cref="IDifferentiableScoreModel.EpsilonVjp"/>). Works with any forward operator
/// (through its log-likelihood gradient). A baseline: p(y | x_t) is approximated by p(y | E[x_0 | x_t]), so its samples
/// are biased even with an exact score.
/// Holds no device memory between calls. Thread-safe: concurrent calls on one device take turns (GpuDevice.Exclusive).
/// </summary>
public sealed class DpsSampler : IPosteriorSampler
{
    private readonly IDifferentiableScoreModel model;
    private readonly NoiseSchedule schedule;

    /// <summary>A DPS sampler over a differentiable score model; the options are validated here.</summary>
    /// <exception cref="ArgumentException">The model does not implement <see cref="IDifferentiableScoreModel"/>, or it
    /// cannot differentiate (<see cref="IDifferentiableScoreModel.CanDifferentiate"/> false: loaded without gradients).</exception>
    /// <exception cref="InvalidOptionException">An option is out of range (names it).</exception>
    public DpsSampler(IScoreModel model, NoiseSchedule schedule, DpsOptions? options = null)
    {
        this.model = GuidedDdpm.RequireGradients(model, "dps", "DPS differentiates the measurement residual");
        ArgumentNullException.ThrowIfNull(schedule);
        this.schedule = schedule;
        Options = options ?? new DpsOptions();
        Options.Validate(schedule);
        // Its DDPM steps use Tweedie's x0 as it is: a schedule that asks for clipping or thresholding is refused, not ignored.
        schedule.RequireSupported(Name, supportsClipSample: false, supportsThresholding: false);
    }

    /// <summary>The options in use.</summary>
    public DpsOptions Options { get; }

    /// <summary>How the last run with <see cref="DpsOptions.GraphReplay"/> launched its steps (null before one, or when the
    /// last run did not ask for graph replay).</summary>
    public StepLaunchReport? LastStepLaunches { get; private set; }

    /// <summary>Stands in for <see cref="Kernels.Device.CudaGraph.Capture"/> (tests: the window loop run off CUDA).</summary>
    internal Func<GpuDevice, Action, ILaunchReplay>? CaptureForTests { get; set; }

    /// <inheritdoc/>
    public string Name => "dps";

    /// <inheritdoc/>
    public string Description => $"DPS: {Options.Steps} reverse-diffusion steps from noise, step size {Options.StepSize} ({Options.Rule} rule); " +
                                 "each step differentiates the measurement residual through the network";

    /// <inheritdoc/>
    public int NetworkEvaluations => Options.Steps;

    /// <summary>
    /// Draws x.N posterior samples of p(x | y) into x ([N, C, H, W]); y is one measurement ([1, ...]) or one per chain.
    /// Noise is a function of (seed, step, global sample index), so a chain is the same alone or in a batch.
    /// </summary>
    /// <exception cref="SamplerDivergedException">A chain stopped being finite; names the step.</exception>
    /// <exception cref="OperationCanceledException">The token was cancelled.</exception>
    public PosteriorRun Sample(Tensor x, Tensor y, IForwardOperator op, float sigmaY, ulong seed, long firstSample = 0,
        IProgress<SamplerProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        PosteriorArguments.Check(Name, x, y, op, sigmaY, firstSample, model);
        LastStepLaunches = null;
        var replay = Options.GraphReplay ? new ReplayRequest { CaptureForTests = CaptureForTests } : null;
        try
        {
            return GuidedDdpm.Sample(Name, model, schedule, Options.Steps, Options.StepSize, Options.Rule, x, y, op, sigmaY, seed, firstSample,
                (pool, yk) => new PointGuidance(pool, op, yk, sigmaY), progress, cancellationToken, replay);
        }
        finally
        {
            LastStepLaunches = replay?.Report;
        }
    }

    /// <summary>DPS's guidance: grad log p(y | x0^) at Tweedie's estimate itself, and the squared residual ||y - A(x0^)||^2
    /// (for an operator with a likelihood of its own, its general form -2 sigma_y^2 log p(y | x0^):
    /// <see cref="ILogLikelihood.SquaredResidual"/>).</summary>
    private sealed class PointGuidance(TensorPool pool, IForwardOperator op, Tensor y, float sigmaY) : IMeasurementGuidance
    {
        private readonly Tensor ax = pool.Rent(y.Shape);

        public bool ReportsHealth => false;

        public void Run(Tensor x0, int step, double alphaBar, bool needResidual, Tensor g, Tensor squaredResidual, Tensor? health)
        {
            op.LogLikelihoodGradient(x0, y, sigmaY, g);
            if (!needResidual) return;
            if (op is ILogLikelihood own)
            {
                own.LogLikelihood(x0, y, sigmaY, squaredResidual);
                ILogLikelihood.SquaredResidual(squaredResidual, sigmaY, squaredResidual);
                return;
            }
            op.Forward(x0, ax);
            Axpby.Run(1f, y, -1f, ax);   // r = y - A(x0^)
            BatchReduce.SquaredNorm(ax, squaredResidual);
        }

        public void Dispose() => ax.Dispose();
    }
}

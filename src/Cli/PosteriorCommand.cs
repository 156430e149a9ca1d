using System.CommandLine;
using System.Diagnostics;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.IO;
using PosteriorGpu.Models;
using PosteriorGpu.Models.Training;
using PosteriorGpu.Models.UNet;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Cli;

/// <summary>
/// `posteriorgpu posterior`: posterior samples for an inverse problem on real images. Takes the inputs
/// (default: the committed MNIST test digits), measures each with the task's forward operator and noise
/// sigma_y, draws --samples posterior samples per input with the chosen sampler and the model (default:
/// the shipped MNIST U-Net), and writes grid.png, metrics.json and the arrays (.npy) to --out.
/// Inputs run in batches of --batch; Ctrl-C stops after the running batch is abandoned and writes
/// what the finished batches produced (exit code 130).
/// </summary>
/// <summary>The typed settings of `posteriorgpu posterior` (one property per option; defaults as --help shows them).</summary>
internal sealed record PosteriorSettings
{
    /// <summary>--task.</summary>
    public string Task { get; init; } = "inpaint";

    /// <summary>--sampler.</summary>
    public string Sampler { get; init; } = PosteriorCommand.DefaultSampler;

    /// <summary>--model (null: the shipped models/mnist-unet).</summary>
    public string? Model { get; init; }

    /// <summary>--input (null: the committed MNIST test digits).</summary>
    public string? Input { get; init; }

    /// <summary>--invert.</summary>
    public bool Invert { get; init; }

    /// <summary>--count.</summary>
    public int Count { get; init; } = PosteriorCommand.DefaultCount;

    /// <summary>--samples.</summary>
    public int Samples { get; init; } = PosteriorCommand.DefaultSamples;

    /// <summary>--sigma-y.</summary>
    public double SigmaY { get; init; } = 0.05;

    /// <summary>--steps, --levels, --prior-steps, --step-scale, --prior-timestep, --eta-max.</summary>
    public PosteriorBudget Budget { get; init; } = new();

    /// <summary>--seed.</summary>
    public ulong Seed { get; init; }

    /// <summary>--batch (null: 16 chains a batch on the CPU, 256 on a GPU).</summary>
    public int? Batch { get; init; }

    /// <summary>--mask, --factor, --blur-sigma, --ratio, --operator-seed.</summary>
    public TaskSettings Operator { get; init; } = new();

    /// <summary>--device (null: automatic).</summary>
    public DeviceKind? Device { get; init; }

    /// <summary>--out.</summary>
    public string Out { get; init; } = Path.Combine("out", "posterior");
}

internal static class PosteriorCommand
{
    /// <summary>Default inputs and samples per input. With the default sampler (DPS, 24 reverse-diffusion steps, each a
    /// forward and a backward pass through the network) the 16 samples take 80 to 95 s with the shipped model on a 2-core CPU,
    /// which keeps the README's main command under 3 minutes on a fresh machine with the build.</summary>
    public const int DefaultCount = 4, DefaultSamples = 4;

    /// <summary>
    /// The default sampler: DPS. On the shipped model and the default inpainting it is the sampler that uses the
    /// measurement (8 MNIST test digits, a quarter of the pixels observed, default budgets: PSNR of the posterior mean on
    /// the missing pixels 20.3 dB for DPS, 13.2 dB for annealed Langevin, 12.0 dB for the trivial fill; docs/posterior-images.md).
    /// </summary>
    public const string DefaultSampler = "dps";

    /// <summary>Runs the command; <see cref="CliContext.Cancel"/> stops it like Ctrl-C (what the finished batches produced
    /// is written, exit code 130). <paramref name="batchDone"/> is told the number of inputs finished after each batch.</summary>
    public static int Run(PosteriorSettings s, CliContext cli, Action<int>? batchDone = null)
    {
        var total = Stopwatch.StartNew();
        TextWriter stdout = cli.Out, stderr = cli.Err;
        var cancel = cli.Cancel;
        string taskName = s.Task, samplerName = PosteriorSamplers.Require(s.Sampler);
        if (!PosteriorTask.Names.Contains(taskName))
            throw new UsageException($"unknown task '{taskName}'; --task takes {string.Join(", ", PosteriorTask.Names)}");
        int count = s.Count, samples = s.Samples;
        double sigmaY = s.SigmaY;
        var budget = s.Budget with
        {
            StepScale = s.Budget.StepScale ?? (PosteriorSamplers.NeedsGradients(samplerName) ? PosteriorTask.DpsZeta(taskName) : null),
        };
        PosteriorSamplers.Options(samplerName, budget);   // flag errors before any loading
        ulong seed = s.Seed;
        string outDir = s.Out;
        var settings = s.Operator;
        if (count < 1) throw new UsageException("--count must be at least 1");
        if (samples < 1) throw new UsageException("--samples must be at least 1");
        if (!(sigmaY > 0) || double.IsInfinity(sigmaY)) throw new UsageException($"--sigma-y must be positive, got {sigmaY}");
        string modelDir = CliFiles.ModelFolder(s.Model);

        using var dev = GpuDevice.Open(s.Device);
        // DPS differentiates through the network: it needs the U-Net with a backward pass.
        using var model = DiffusionModel.Load(dev, modelDir, withGradients: PosteriorSamplers.NeedsGradients(samplerName));
        int c = model.Channels, h = model.Height, w = model.Width;

        var (allImages, available, inputSource) = PosteriorInputs.Load(s.Input, c, h, w, s.Invert);
        if (count > available)
        {
            cli.Warn($"--count {count} asks for more inputs than the input images hold ({available} in {inputSource}); running {available}");
            count = available;
        }
        int d = c * h * w;
        var truth = allImages.AsSpan(0, count * d).ToArray();

        using var task = PosteriorTask.Create(taskName, dev, c, h, w, settings);
        var sampler = PosteriorSamplers.Create(model, task.Operator, (float)sigmaY, samplerName, budget);
        int batchInputs = s.Batch ?? (dev.IsCpu ? Math.Max(1, 16 / samples) : Math.Max(1, 256 / samples));
        if (batchInputs < 1) throw new UsageException("--batch (inputs per batch) must be at least 1");
        batchInputs = Math.Min(batchInputs, count);
        CliFiles.CreateOutputFolder(outDir);

        stdout.WriteLine($"posterior: {taskName} ({task.Description}), sigma_y {sigmaY}");
        stdout.WriteLine($"  sampler: {sampler.Description}");
        stdout.WriteLine($"  model {modelDir} [{c}, {h}, {w}], {count} input(s) from {inputSource}, {samples} sample(s) each, seed {seed}, on {dev.Description}");

        int m = Shape.Elements(task.Operator.MeasurementShape);
        var samplesHost = new float[count * samples * d];
        var measurementView = new float[count * d];
        var residuals = new double[count * samples];
        var truthResiduals = new double[count];
        int batches = (count + batchInputs - 1) / batchInputs;
        using var bar = cli.Progress("posterior", (long)batches * sampler.EvaluationsPerSample, "steps");
        int done = 0;
        bool interrupted = false;
        var sampling = Stopwatch.StartNew();
        for (int b = 0; b < batches; b++)
        {
            int first = b * batchInputs, k = Math.Min(batchInputs, count - first), chains = k * samples;
            using var x0 = Tensor.FromHost(dev, truth.AsSpan(first * d, k * d), k, c, h, w);
            using var y = Tensor.Empty(dev, [k, .. task.Operator.MeasurementShape]);
            task.Measure(x0, (float)sigmaY, seed, first, y);
            var yHost = y.ToHost();
            task.Operator.Preview(y).CopyTo(measurementView, first * d);
            task.Operator.Discrepancy.Evaluate(task.Operator, x0, y, sigmaY).CopyTo(truthResiduals, first);

            var yChains = new float[chains * m];
            for (int i = 0; i < chains; i++) Array.Copy(yHost, (i / samples) * m, yChains, i * m, m);
            using var yc = Tensor.FromHost(dev, yChains, [chains, .. task.Operator.MeasurementShape]);
            using var x = Tensor.Empty(dev, chains, c, h, w);
            long before = (long)b * sampler.EvaluationsPerSample;
            try
            {
                sampler.Sample(yc, x, seed, (long)first * samples, new Relay<SamplerProgress>(p => bar.Update(before + p.Step)), cancel);
            }
            catch (OperationCanceledException) when (cancel.IsCancellationRequested)
            {
                interrupted = true;
                break;
            }
            var xs = x.ToHost();
            xs.CopyTo(samplesHost, first * samples * d);
            task.Operator.Discrepancy.Evaluate(task.Operator, x, yc, sigmaY).CopyTo(residuals, first * samples);
            done = first + k;
            batchDone?.Invoke(done);
            if (cancel.IsCancellationRequested) { interrupted = done < count; break; }
        }
        double samplingSeconds = sampling.Elapsed.TotalSeconds;
        bar.Finish(interrupted
            ? $"interrupted after {done} of {count} input(s) ({samplingSeconds:F1} s)"
            : $"{count * samples} sample(s) in {samplingSeconds:F1} s");
        // Once per run (every batch walks the same ladder): an inadmissible ladder is worth knowing about.
        if (sampler.LastRun?.Annealing?.Warning is string warning) cli.Warn(warning);

        if (done == 0)
        {
            stderr.WriteLine($"posteriorgpu: interrupted before the first batch finished; nothing written to {outDir}");
            return ExitCodes.Interrupted;
        }

        var report = new PosteriorReport(task, c, h, w, samples)
        {
            Title = $"{taskName}, {samplerName}, sigma_y {sigmaY.ToString(System.Globalization.CultureInfo.InvariantCulture)}",
            Truth = truth.AsSpan(0, done * d).ToArray(),
            Samples = samplesHost.AsSpan(0, done * samples * d).ToArray(),
            Measurements = measurementView.AsSpan(0, done * d).ToArray(),
            Residuals = residuals.AsSpan(0, done * samples).ToArray(),
            TruthResiduals = truthResiduals.AsSpan(0, done).ToArray(),
        };
        var files = CliFiles.Writing("output folder", outDir, () => report.Write(outDir));
        var options = new Dictionary<string, object?>
        {
            ["task"] = taskName, ["sampler"] = samplerName, ["model"] = Path.GetFullPath(modelDir), ["input"] = inputSource,
            ["count"] = count, ["samples"] = samples, ["sigma_y"] = sigmaY, ["steps"] = budget.Steps, ["levels"] = samplerName == "dps" ? null : budget.LevelCount,
            ["prior_steps"] = budget.PriorSteps, ["step_scale"] = budget.StepScale, ["prior_timestep"] = budget.PriorTimestep,
            ["eta_max"] = budget.EtaMax, ["step_size"] = budget.StepSize, ["seed"] = seed, ["device"] = s.Device?.Name(), ["out"] = outDir,
            ["batch"] = batchInputs, ["mask"] = settings.Mask, ["factor"] = settings.Factor, ["blur_sigma"] = settings.BlurSigma,
            ["ratio"] = settings.Ratio, ["operator_seed"] = settings.OperatorSeed, ["invert"] = s.Invert,
        };
        var run = new Dictionary<string, object?>
        {
            ["task_description"] = task.Description,
            ["sampler_description"] = sampler.Description,
            ["device"] = dev.Description,
            ["seed"] = seed,
            ["measurement_size"] = m,
            ["inputs_requested"] = count,
            ["inputs_completed"] = done,
            ["interrupted"] = interrupted,
            ["network_evaluations_per_sample"] = sampler.EvaluationsPerSample,
            ["annealing"] = sampler.LastRun?.Annealing is { } a ? new Dictionary<string, object?>
            {
                ["levels"] = a.Levels.Count, ["eta_first"] = a.Levels[0], ["eta_last"] = a.Levels[^1], ["steps_per_level"] = a.StepsPerLevel,
                ["largest_increment"] = Math.Round(a.LargestIncrement, 4), ["admissible"] = a.Warning is null, ["warning"] = a.Warning,
                ["step_sizes"] = a.StepSizes.Select(v => Math.Round(v, 8)).ToArray(),
                ["langevin_time_per_level"] = a.LangevinTimes.Select(v => Math.Round(v, 8)).ToArray(),
                ["langevin_time_total"] = Math.Round(a.TotalLangevinTime, 6),
            } : null,
            ["batches"] = (done + batchInputs - 1) / batchInputs,
            ["sampling_seconds"] = Math.Round(samplingSeconds, 3),
            ["time_per_sample_seconds"] = Math.Round(samplingSeconds / (done * samples), 4),
            ["seconds_per_network_evaluation_of_a_batch"] = Math.Round(samplingSeconds / ((done + batchInputs - 1) / batchInputs * (double)sampler.EvaluationsPerSample), 5),
            ["total_seconds"] = Math.Round(total.Elapsed.TotalSeconds, 3),
        };
        string metricsPath = CliFiles.Writing("output folder", outDir, () => report.WriteMetrics(outDir, options, run));
        report.WriteSummary(cli);
        stdout.WriteLine($"wrote {string.Join(", ", files.Append(metricsPath))} in {total.Elapsed.TotalSeconds:F1} s" +
                         (interrupted ? $" (interrupted: {done} of {count} inputs)" : ""));
        return interrupted ? ExitCodes.Interrupted : ExitCodes.Ok;
    }

    /// <summary>The `posterior` command: its options (typed, with defaults and descriptions for --help) and the glue that
    /// turns a parse into <see cref="PosteriorSettings"/> for <see cref="Run"/>.</summary>
    public static Command Create(CommandSetup setup)
    {
        var d = new PosteriorSettings();
        var o = new PosteriorOptionSet(d);
        var input = CliOptions.Text("--input", $"input images: a .npy [N, C, H, W] in [-1, 1] (or uint8), or PNG/JPEG files separated by commas " +
            $"(resized, grey for 1-channel models). Default: the committed {DefaultPaths.Digits} (16 MNIST test digits)", "file(s)");
        var count = CliOptions.Int("--count", d.Count, "how many input images to use (the first ones); more than there are warns and uses all", min: 1);
        var output = CliOptions.Path("--out", d.Out, "output folder: grid.png, metrics.json and the arrays (.npy) are written there");
        var command = new Command("posterior", "posterior samples for an inverse problem on images: measure each input with the task's " +
            "operator and noise, draw samples of p(x | y), write a labelled grid.png (truth | measurement | samples | mean | std), " +
            "metrics.json (PSNR, SSIM, residual, timing) and .npy arrays. Ctrl-C writes what the finished batches produced (exit 130).")
        {
            input, count,
        };
        o.AddTo(command);
        command.Options.Add(output);
        command.SetAction(p => Run(new PosteriorSettings
        {
            Task = p.GetValue(o.Task)!, Sampler = p.GetValue(o.Sampler)!, Model = p.GetValue(o.Model), Input = p.GetValue(input),
            Invert = p.GetValue(o.Invert), Count = p.GetValue(count), Samples = p.GetValue(o.Samples), SigmaY = p.GetValue(o.SigmaY),
            Budget = o.Budget(p), Seed = p.GetValue(o.Seed), Batch = p.GetValue(o.Batch), Operator = o.Operator(p),
            Device = setup.DeviceOf(p), Out = p.GetValue(output)!,
        }, setup.Context));
        return command;
    }
}

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
internal static class PosteriorCommand
{
    /// <summary>The options this command takes (besides --verbose).</summary>
    public static readonly string[] Known =
    [
        "task", "sampler", "model", "input", "count", "samples", "sigma-y", "steps", "levels", "prior-steps", "seed",
        "device", "out", "batch", "mask", "factor", "blur-sigma", "ratio", "operator-seed", "step-scale", "prior-timestep", "eta-max",
    ];

    /// <summary>Flags (no value) besides --verbose.</summary>
    public static readonly string[] Flags = ["invert"];

    /// <summary>Exit code of a run stopped by Ctrl-C (128 + SIGINT, as shells report it).</summary>
    public const int InterruptedExitCode = 130;

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

    /// <summary>Runs the command from the console: Ctrl-C cancels the run.</summary>
    public static int Run(Options o, TextWriter stdout, TextWriter stderr)
    {
        using var cts = new CancellationTokenSource();
        void OnCancel(object? sender, ConsoleCancelEventArgs e)
        {
            if (cts.IsCancellationRequested) return;   // a second Ctrl-C kills the process
            e.Cancel = true;
            stderr.WriteLine();
            stderr.WriteLine("posteriorgpu: stopping (Ctrl-C again to kill); writing what is done ...");
            cts.Cancel();
        }
        Console.CancelKeyPress += OnCancel;
        try
        {
            return Run(o, stdout, stderr, cts.Token);
        }
        finally
        {
            Console.CancelKeyPress -= OnCancel;
        }
    }

    /// <summary>Runs the command; <paramref name="cancel"/> stops it like Ctrl-C. <paramref name="batchDone"/>
    /// is told the number of inputs finished after each batch (for embedding and tests).</summary>
    public static int Run(Options o, TextWriter stdout, TextWriter stderr, CancellationToken cancel, Action<int>? batchDone = null)
    {
        var total = Stopwatch.StartNew();
        string taskName = o.Get("task") ?? "inpaint";
        string samplerName = o.Get("sampler") ?? DefaultSampler;
        if (!PosteriorTask.Names.Contains(taskName))
            throw new UsageException($"unknown task '{taskName}'; --task takes {string.Join(", ", PosteriorTask.Names)}");
        PosteriorSamplers.Require(samplerName);
        int count = o.Int("count", DefaultCount);
        int samples = o.Int("samples", DefaultSamples);
        double sigmaY = o.Double("sigma-y", 0.05);
        var defaults = new PosteriorBudget();
        var budget = new PosteriorBudget(
            Steps: o.Int("steps", defaults.Steps),
            Levels: o.Int("levels", defaults.Levels),
            PriorSteps: o.Int("prior-steps", defaults.PriorSteps),
            StepScale: o.Get("step-scale") is { } ? o.Double("step-scale", 0)
                : PosteriorSamplers.NeedsGradients(samplerName) ? PosteriorTask.DpsZeta(taskName) : null,
            PriorTimestep: o.Get("prior-timestep") is null ? null : o.Int("prior-timestep", 0),
            EtaMax: o.Get("eta-max") is null ? null : o.Double("eta-max", 0));
        PosteriorSamplers.Options(samplerName, budget);   // flag errors before any loading
        ulong seed = (ulong)o.Int("seed", 0);
        string outDir = o.Get("out") ?? Path.Combine("out", "posterior");
        var settings = new TaskSettings
        {
            Mask = o.Get("mask") ?? TaskSettings.DefaultMask,
            Factor = o.Int("factor", 4),
            BlurSigma = o.Double("blur-sigma", 2.0),
            Ratio = o.Get("ratio") is null ? null : o.Double("ratio", 0),
            OperatorSeed = (ulong)o.Int("operator-seed", 0),
        };
        if (count < 1) throw new UsageException("--count must be at least 1");
        if (samples < 1) throw new UsageException("--samples must be at least 1");
        if (!(sigmaY > 0) || double.IsInfinity(sigmaY)) throw new UsageException($"--sigma-y must be positive, got {sigmaY}");
        var deviceKind = DeviceKinds.Parse(o.Get("device"), "--device");

        string modelDir = o.Get("model") ?? DefaultPaths.Find(DefaultPaths.Model)
            ?? throw new FileNotFoundException(
                $"the default model {DefaultPaths.Model} was not found (looked in {Path.GetFullPath(DefaultPaths.Model)} and above the executable); give --model DIR (a diffusers UNet2DModel folder)");
        if (!Directory.Exists(modelDir)) throw new FileNotFoundException($"{modelDir}: model folder not found; give --model DIR (a diffusers UNet2DModel folder)");

        using var dev = GpuDevice.Open(deviceKind);
        // DPS differentiates through the network: it needs the U-Net with a backward pass.
        using var model = DiffusionModel.Load(dev, modelDir, withGradients: PosteriorSamplers.NeedsGradients(samplerName));
        int c = model.Channels, h = model.Height, w = model.Width;

        var (allImages, available, inputSource) = PosteriorInputs.Load(o.Get("input"), c, h, w, o.Flag("invert"));
        count = Math.Min(count, available);
        int d = c * h * w;
        var truth = allImages.AsSpan(0, count * d).ToArray();

        using var task = PosteriorTask.Create(taskName, dev, c, h, w, settings);
        var sampler = PosteriorSamplers.Create(model, task.Operator, (float)sigmaY, samplerName, budget);
        int batchInputs = o.Int("batch", dev.IsCpu ? Math.Max(1, 16 / samples) : Math.Max(1, 256 / samples));
        if (batchInputs < 1) throw new UsageException("--batch (inputs per batch) must be at least 1");
        batchInputs = Math.Min(batchInputs, count);
        Directory.CreateDirectory(outDir);

        stdout.WriteLine($"posterior: {taskName} ({task.Description}), sigma_y {sigmaY}");
        stdout.WriteLine($"  sampler: {sampler.Description}");
        stdout.WriteLine($"  model {modelDir} [{c}, {h}, {w}], {count} input(s) from {inputSource}, {samples} sample(s) each, seed {seed}, on {dev.Description}");

        int m = Shape.Elements(task.Operator.MeasurementShape);
        var samplesHost = new float[count * samples * d];
        var measurementView = new float[count * d];
        var residuals = new double[count * samples];
        var truthResiduals = new double[count];
        int batches = (count + batchInputs - 1) / batchInputs;
        var bar = new ProgressBar(stderr, ProgressBar.IsTerminal(stderr), "posterior", (long)batches * sampler.EvaluationsPerSample,
            (double)sampler.EvaluationsPerSample / (batchInputs * samples));
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
                sampler.Sample(yc, x, seed, (long)first * samples, new Relay(p => bar.Update(before + p.Step)), cancel);
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

        if (done == 0)
        {
            stderr.WriteLine($"posteriorgpu: interrupted before the first batch finished; nothing written to {outDir}");
            return InterruptedExitCode;
        }

        var report = new PosteriorReport(task, c, h, w, samples)
        {
            Truth = truth.AsSpan(0, done * d).ToArray(),
            Samples = samplesHost.AsSpan(0, done * samples * d).ToArray(),
            Measurements = measurementView.AsSpan(0, done * d).ToArray(),
            Residuals = residuals.AsSpan(0, done * samples).ToArray(),
            TruthResiduals = truthResiduals.AsSpan(0, done).ToArray(),
        };
        var files = report.Write(outDir);
        var options = new Dictionary<string, object?>
        {
            ["task"] = taskName, ["sampler"] = samplerName, ["model"] = Path.GetFullPath(modelDir), ["input"] = inputSource,
            ["count"] = count, ["samples"] = samples, ["sigma_y"] = sigmaY, ["steps"] = budget.Steps, ["levels"] = budget.Levels,
            ["prior_steps"] = budget.PriorSteps, ["step_scale"] = budget.StepScale, ["prior_timestep"] = budget.PriorTimestep,
            ["eta_max"] = budget.EtaMax, ["seed"] = seed, ["device"] = o.Get("device"), ["out"] = outDir,
            ["batch"] = batchInputs, ["mask"] = settings.Mask, ["factor"] = settings.Factor, ["blur_sigma"] = settings.BlurSigma,
            ["ratio"] = settings.Ratio, ["operator_seed"] = settings.OperatorSeed, ["invert"] = o.Flag("invert"),
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
            ["batches"] = (done + batchInputs - 1) / batchInputs,
            ["sampling_seconds"] = Math.Round(samplingSeconds, 3),
            ["time_per_sample_seconds"] = Math.Round(samplingSeconds / (done * samples), 4),
            ["seconds_per_network_evaluation_of_a_batch"] = Math.Round(samplingSeconds / ((done + batchInputs - 1) / batchInputs * (double)sampler.EvaluationsPerSample), 5),
            ["total_seconds"] = Math.Round(total.Elapsed.TotalSeconds, 3),
        };
        string metricsPath = report.WriteMetrics(outDir, options, run);
        stdout.WriteLine(report.Summary());
        stdout.WriteLine($"wrote {string.Join(", ", files.Append(metricsPath))} in {total.Elapsed.TotalSeconds:F1} s" +
                         (interrupted ? $" (interrupted: {done} of {count} inputs)" : ""));
        return interrupted ? InterruptedExitCode : 0;
    }

    private sealed class Relay(Action<SamplerProgress> report) : IProgress<SamplerProgress>
    {
        public void Report(SamplerProgress value) => report(value);
    }
}

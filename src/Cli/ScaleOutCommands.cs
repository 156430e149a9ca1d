using PosteriorGpu.Kernels.Device;

namespace PosteriorGpu.Cli;

/// <summary>
/// The command-line glue of `batch` and `merge`: turns their options into <see cref="BatchSettings"/> and
/// <see cref="MergeSettings"/> and runs them; everything else lives in <see cref="BatchCommand"/> and
/// <see cref="MergeCommand"/>, so another parser only has to build the two settings records.
/// </summary>
internal static class ScaleOutCommands
{
    /// <summary>The usage lines of the two commands.</summary>
    public const string Usage = """
        usage: posteriorgpu batch (--input IMAGES | --measurements Y) --out DIR [--shard i/n] [--shard-count N] [--devices N]
                 [--batch ITEMS] [--samples 4] [--seed S] and the options of `posterior` (--task, --sampler, --model, --sigma-y,
                 --steps, --levels, --prior-steps, --step-scale, --prior-timestep, --eta-max, --mask, --factor, --blur-sigma,
                 --ratio, --operator-seed, --device, --invert)
               IMAGES / Y: a .npy stack or a folder (.npy and picture files, in name order). Without --shard the shard comes from
               SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT/SLURM_ARRAY_TASK_MIN or JOB_COMPLETION_INDEX with --shard-count or
               POSTERIORGPU_SHARD_COUNT. Rerunning a shard skips the items it finished.
               posteriorgpu merge --out DIR   (checks every item and assembles merged/samples.npy, metrics.json, summary.md)
        """;

    /// <summary>The options `batch` takes (besides the flags --invert and --verbose).</summary>
    public static readonly string[] BatchKnown =
    [
        "input", "measurements", "out", "shard", "shard-count", "devices", "batch", "task", "sampler", "model", "samples", "sigma-y",
        "steps", "levels", "prior-steps", "seed", "device", "mask", "factor", "blur-sigma", "ratio", "operator-seed", "step-scale",
        "prior-timestep", "eta-max",
    ];

    /// <summary>The flags `batch` takes.</summary>
    public static readonly string[] BatchFlags = ["invert", "verbose"];

    /// <summary>Runs `batch` or `merge` and returns the exit code, or null when <paramref name="args"/> is another command.</summary>
    public static int? TryRun(string[] args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Length == 0 || args[0] is not ("batch" or "merge")) return null;
        bool verbose = args.Contains("--verbose");
        try
        {
            if (args.Contains("--help") || args.Contains("-h"))
            {
                stdout.WriteLine(Usage);
                return 0;
            }
            if (args[0] == "merge")
                return MergeCommand.Run(new MergeSettings(new Options("merge", args.Skip(1), ["out"], "verbose").Required("out", "the batch run's folder")), stdout);
            using var cts = new CancellationTokenSource();
            void OnCancel(object? sender, ConsoleCancelEventArgs e)
            {
                if (cts.IsCancellationRequested) return;   // a second Ctrl-C kills the process (a rerun resumes)
                e.Cancel = true;
                cts.Cancel();
            }
            Console.CancelKeyPress += OnCancel;
            try
            {
                return BatchCommand.Run(Batch(new Options("batch", args.Skip(1), BatchKnown, BatchFlags), Environment.GetEnvironmentVariable),
                    stdout, stderr, cts.Token);
            }
            finally
            {
                Console.CancelKeyPress -= OnCancel;
            }
        }
        catch (Exception e) when (!verbose)
        {
            stderr.WriteLine($"posteriorgpu: error: {e.Message}");
            return e is UsageException ? 2 : 1;
        }
    }

    /// <summary>The settings of a `batch` command line; <paramref name="environment"/> gives the scheduler's variables.</summary>
    public static BatchSettings Batch(Options o, Func<string, string?> environment)
    {
        string task = o.Get("task") ?? "inpaint";
        var defaults = new PosteriorBudget();
        return new BatchSettings
        {
            Out = o.Required("out", "the output folder, shared by every shard"),
            Input = o.Get("input"),
            Measurements = o.Get("measurements"),
            Task = task,
            Sampler = o.Get("sampler") ?? PosteriorCommand.DefaultSampler,
            Model = o.Get("model"),
            Samples = o.Int("samples", PosteriorCommand.DefaultSamples),
            SigmaY = o.Double("sigma-y", 0.05),
            Budget = new PosteriorBudget(
                Steps: o.Int("steps", defaults.Steps),
                Levels: o.Int("levels", defaults.Levels),
                PriorSteps: o.Int("prior-steps", defaults.PriorSteps),
                StepScale: o.Get("step-scale") is null ? null : o.Double("step-scale", 0),
                PriorTimestep: o.Get("prior-timestep") is null ? null : o.Int("prior-timestep", 0),
                EtaMax: o.Get("eta-max") is null ? null : o.Double("eta-max", 0)),
            TaskSettings = new TaskSettings
            {
                Mask = o.Get("mask") ?? TaskSettings.DefaultMask,
                Factor = o.Int("factor", 4),
                BlurSigma = o.Double("blur-sigma", 2.0),
                Ratio = o.Get("ratio") is null ? null : o.Double("ratio", 0),
                OperatorSeed = (ulong)o.Int("operator-seed", 0),
            },
            Seed = (ulong)o.Int("seed", 0),
            Batch = o.Get("batch") is null ? null : o.Int("batch", 0),
            Shard = ShardSpec.Resolve(o.Get("shard"), o.Get("shard-count") is null ? null : o.Int("shard-count", 0), environment),
            Device = DeviceKinds.Parse(o.Get("device"), "--device"),
            Devices = o.Get("devices") is null ? null : o.Int("devices", 0),
            Invert = o.Flag("invert"),
        };
    }
}

using System.CommandLine;
using PosteriorGpu.Kernels.Device;

namespace PosteriorGpu.Cli;

/// <summary>
/// The command-line glue of `batch` and `merge`: their options (the posterior run's, from <see cref="PosteriorOptionSet"/>,
/// plus the shard and the folders) turned into <see cref="BatchSettings"/> and <see cref="MergeSettings"/>; everything else
/// lives in <see cref="BatchCommand"/> and <see cref="MergeCommand"/>.
/// </summary>
internal static class ScaleOutCommands
{
    /// <summary>The `batch` command (the shard from --shard, else the scheduler's variables in the environment).</summary>
    public static Command CreateBatch(CommandSetup setup) => DefineBatch(setup, Environment.GetEnvironmentVariable,
        s => BatchCommand.Run(s, setup.Context));

    /// <summary>The `merge` command.</summary>
    public static Command CreateMerge(CommandSetup setup)
    {
        var output = CliOptions.Text("--out", "the batch run's folder (as given to every shard's --out)", "dir", required: true);
        var command = new Command("merge", "check every item of a sharded `batch` run (missing, corrupt, stale or partial files are named) and assemble " +
            "merged/samples.npy, metrics.json and summary.md (docs/scale-out.md)")
        {
            output,
        };
        command.SetAction(p => MergeCommand.Run(new MergeSettings(p.GetValue(output)!), setup.Context.Out));
        return command;
    }

    /// <summary>The settings a `batch` command line (the words after `batch`) gives, with <paramref name="environment"/>
    /// as the scheduler's variables: what the docs' Slurm script and Kubernetes manifest are checked with.</summary>
    /// <exception cref="UsageException">The command line does not parse (names the option).</exception>
    public static BatchSettings ParseBatch(IEnumerable<string> args, Func<string, string?> environment)
    {
        var setup = new CommandSetup(CliContext.Plain(TextWriter.Null, TextWriter.Null),
            new Option<string>("--device") { Recursive = true, DefaultValueFactory = _ => "auto" });
        BatchSettings? settings = null;
        var root = new RootCommand { setup.Device };
        root.Subcommands.Add(DefineBatch(setup, environment, s =>
        {
            settings = s;
            return ExitCodes.Ok;
        }));
        var parse = root.Parse(["batch", .. args]);
        if (parse.Errors.Count > 0) throw new UsageException(string.Join("; ", parse.Errors.Select(e => e.Message)));
        parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        return settings ?? throw new InvalidOperationException("batch: the command line was not run");
    }

    private static Command DefineBatch(CommandSetup setup, Func<string, string?> environment, Func<BatchSettings, int> run)
    {
        var d = new BatchSettings { Out = "" };
        var o = new PosteriorOptionSet(new PosteriorSettings());
        var output = CliOptions.Text("--out", "the output folder, shared by every shard (items/, then merged/ after `merge`)", "dir", required: true);
        var input = CliOptions.Text("--input", "ground-truth images to measure and reconstruct: a .npy stack or a folder of .npy and picture files (name order)", "path");
        var measurements = CliOptions.Text("--measurements", "measurements to reconstruct: a .npy stack [N, ...] or a folder of .npy files (name order)", "path");
        var shard = CliOptions.Text("--shard", "this process's shard i/n (0-based); default: SLURM_ARRAY_TASK_ID/COUNT/MIN, or JOB_COMPLETION_INDEX " +
            $"with --shard-count or {ShardSpec.CountVariable}; else the whole run", "i/n");
        var shardCount = CliOptions.OptionalInt("--shard-count", "the number of shards when the index comes from JOB_COMPLETION_INDEX", min: 1);
        var devices = CliOptions.OptionalInt("--devices", "most devices of the kind to use (default: all visible); with --device cpu, this many CPU " +
            "accelerators (to check the multi-device path)", min: 1);
        var command = new Command("batch", "posterior samples for many measurements, sharded: each finished item is written atomically with its " +
            "metrics, a rerun resumes, `merge` assembles the run (docs/scale-out.md)")
        {
            output, input, measurements, shard, shardCount, devices,
        };
        o.AddTo(command);
        command.SetAction(p => run(new BatchSettings
        {
            Out = p.GetValue(output)!, Input = p.GetValue(input), Measurements = p.GetValue(measurements),
            Task = p.GetValue(o.Task)!, Sampler = p.GetValue(o.Sampler)!, Model = p.GetValue(o.Model), Samples = p.GetValue(o.Samples),
            SigmaY = p.GetValue(o.SigmaY), Budget = o.Budget(p), TaskSettings = o.Operator(p), Seed = p.GetValue(o.Seed), Batch = p.GetValue(o.Batch),
            Shard = ShardSpec.Resolve(p.GetValue(shard), p.GetValue(shardCount), environment),
            Device = setup.DeviceOf(p), Devices = p.GetValue(devices), Invert = p.GetValue(o.Invert),
        }));
        return command;
    }
}

using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.IO;

namespace PosteriorGpu.Cli;

/// <summary>The settings of `posteriorgpu batch` (one typed record, whatever parses the command line).</summary>
internal sealed record BatchSettings
{
    /// <summary>The output folder (shared by every shard of the run).</summary>
    public required string Out { get; init; }

    /// <summary>Ground-truth images to measure and reconstruct: a .npy stack (as `posterior --input` takes) or a folder
    /// of .npy and picture files, in ordinal name order. Exactly one of this and <see cref="Measurements"/>.</summary>
    public string? Input { get; init; }

    /// <summary>Measurements to reconstruct: a .npy stack [N, ...measurement shape] or a folder of .npy files (each one
    /// measurement or a stack), in ordinal name order.</summary>
    public string? Measurements { get; init; }

    /// <summary>The inverse problem (`posterior --task`).</summary>
    public string Task { get; init; } = "inpaint";

    /// <summary>The method (`posterior --sampler`).</summary>
    public string Sampler { get; init; } = PosteriorCommand.DefaultSampler;

    /// <summary>The model folder (null: the shipped model).</summary>
    public string? Model { get; init; }

    /// <summary>Posterior samples per item.</summary>
    public int Samples { get; init; } = PosteriorCommand.DefaultSamples;

    /// <summary>Measurement noise level sigma_y.</summary>
    public double SigmaY { get; init; } = 0.05;

    /// <summary>The budget flags (StepScale null: the preset's, or the task's DPS zeta).</summary>
    public PosteriorBudget Budget { get; init; } = new();

    /// <summary>The operator's settings.</summary>
    public TaskSettings TaskSettings { get; init; } = new();

    /// <summary>The run's seed: item i's samples are samples i S .. i S + S - 1 of its sequence, its measurement noise
    /// draw i, whatever the shard or device.</summary>
    public ulong Seed { get; init; }

    /// <summary>Items per batch (null: 16 / S on the CPU, 256 / S on a GPU). Fixes the batching and so the bits; it is
    /// part of the run's fingerprint.</summary>
    public int? Batch { get; init; }

    /// <summary>This process's shard.</summary>
    public ShardSpec Shard { get; init; } = ShardSpec.Single;

    /// <summary>The device kind (null: POSTERIORGPU_DEVICE, else CUDA, OpenCL, CPU).</summary>
    public DeviceKind? Device { get; init; }

    /// <summary>Most devices of that kind to use (null: all that are visible, e.g. through CUDA_VISIBLE_DEVICES). With
    /// <see cref="Device"/> cpu, this many CPU accelerators (they share the cores: for checking the multi-device path).</summary>
    public int? Devices { get; init; }

    /// <summary>Negate the input images (dark digit on a light background).</summary>
    public bool Invert { get; init; }

    /// <summary>The budget with the task's DPS zeta filled in where the sampler differentiates and no scale was given.</summary>
    public PosteriorBudget ResolvedBudget => Budget.StepScale is null && PosteriorSamplers.NeedsGradients(Sampler)
        ? Budget with { StepScale = PosteriorTask.DpsZeta(Task) } : Budget;
}

/// <summary>
/// `posteriorgpu batch`: posterior samples for every item of a folder or .npy stack, one shard of the run per process
/// (--shard i/n or a job array's index variables, <see cref="ShardSpec"/>), on every device of the process
/// (<see cref="MultiDevicePosteriorSampler"/>). Items are cut into batches of <see cref="BatchSettings.Batch"/> in input
/// order; a shard takes a contiguous slice of batches. Each finished item is written at once and atomically
/// (<see cref="BatchStore"/>): items/ID.npy and items/ID.json with its metrics. A rerun skips the items already done, so
/// a killed shard resumes; as an item's samples depend only on the seed, its global index and its batch, a resumed run
/// writes the bytes an uninterrupted one writes. `merge` (<see cref="MergeCommand"/>) assembles the items.
/// </summary>
internal static class BatchCommand
{
    /// <summary>Runs one shard; returns the exit code (0 done, 130 cancelled). <paramref name="itemsDone"/> is told each
    /// item id once its files are committed (for tests and embedding).</summary>
    public static int Run(BatchSettings s, TextWriter stdout, TextWriter stderr, CancellationToken cancel, Action<string>? itemsDone = null) =>
        Run(s, CliContext.Plain(stdout, stderr, cancel), itemsDone);

    /// <summary>Runs one shard with the shell's context (progress on a terminal, plain lines otherwise); returns the exit code.</summary>
    public static int Run(BatchSettings s, CliContext cli, Action<string>? itemsDone = null)
    {
        TextWriter stdout = cli.Out, stderr = cli.Err;
        var cancel = cli.Cancel;
        var total = Stopwatch.StartNew();
        if ((s.Input is null) == (s.Measurements is null))
            throw new UsageException("batch: give exactly one of --input (images to measure) and --measurements (measurements to reconstruct)");
        if (!PosteriorTask.Names.Contains(s.Task))
            throw new UsageException($"unknown task '{s.Task}'; --task takes {string.Join(", ", PosteriorTask.Names)}");
        PosteriorSamplers.Require(s.Sampler);
        if (s.Samples < 1) throw new UsageException("--samples must be at least 1");
        if (!(s.SigmaY > 0) || double.IsInfinity(s.SigmaY)) throw new UsageException($"--sigma-y must be positive, got {s.SigmaY}");
        if (s.Batch is < 1) throw new UsageException("--batch (items per batch) must be at least 1");
        if (s.Devices is < 1) throw new UsageException("--devices (most devices to use) must be at least 1");
        var budget = s.ResolvedBudget;
        PosteriorSamplers.Options(s.Sampler, budget);
        string modelDir = s.Model ?? DefaultPaths.Find(DefaultPaths.Model)
            ?? throw new FileNotFoundException($"the default model {DefaultPaths.Model} was not found; give --model DIR");
        if (!Directory.Exists(modelDir)) throw new FileNotFoundException($"{modelDir}: model folder not found (a diffusers UNet2DModel folder)");

        // --device cpu --devices N opens N CPU accelerators: they share the host's cores (no faster), which lets a machine
        // without GPUs run and check the multi-device path; for other kinds N caps the devices that are there.
        using var devices = s.Device == DeviceKind.Cpu && s.Devices is > 1 ? DeviceSet.Open(DeviceKind.Cpu, s.Devices.Value)
            : DeviceSet.OpenAll(s.Device, s.Devices);
        var parts = new List<(DiffusionModel Model, PosteriorTask Task, PosteriorSampler Sampler)>();
        try
        {
            bool gradients = PosteriorSamplers.NeedsGradients(s.Sampler);
            foreach (var dev in devices)
            {
                var model = DiffusionModel.Load(dev, modelDir, gradients);
                PosteriorTask? task = null;
                try
                {
                    task = PosteriorTask.Create(s.Task, dev, model.Channels, model.Height, model.Width, s.TaskSettings);
                    parts.Add((model, task, PosteriorSamplers.Create(model, task.Operator, (float)s.SigmaY, s.Sampler, budget)));
                }
                catch
                {
                    task?.Dispose();
                    model.Dispose();
                    throw;
                }
            }
            return RunShard(s, budget, modelDir, devices, parts, cli, itemsDone, total);
        }
        finally
        {
            foreach (var p in parts)
            {
                p.Task.Dispose();
                p.Model.Dispose();
            }
        }
    }

    private static int RunShard(BatchSettings s, PosteriorBudget budget, string modelDir, DeviceSet devices,
        List<(DiffusionModel Model, PosteriorTask Task, PosteriorSampler Sampler)> parts,
        CliContext cli, Action<string>? itemsDone, Stopwatch total)
    {
        TextWriter stdout = cli.Out, stderr = cli.Err;
        var cancel = cli.Cancel;
        var first = parts[0];
        int c = first.Model.Channels, h = first.Model.Height, w = first.Model.Width, d = c * h * w, S = s.Samples;
        var shape = first.Task.Operator.MeasurementShape;
        int m = Shape.Elements(shape);
        var items = BatchInputs.Load(s, c, h, w, shape);
        int n = items.Ids.Count;
        int perBatch = s.Batch ?? (devices[0].IsCpu ? Math.Max(1, 16 / S) : Math.Max(1, 256 / S));
        string fingerprint = Fingerprint(s, budget, modelDir, perBatch, items);
        var store = new BatchStore(s.Out);
        Directory.CreateDirectory(store.ItemsFolder);
        Directory.CreateDirectory(store.ShardsFolder);
        WriteOrCheckManifest(store, s, budget, modelDir, perBatch, items, fingerprint, [c, h, w], shape);

        int batches = (n + perBatch - 1) / perBatch;
        var (b0, b1) = s.Shard.Slice(batches);
        int i0 = b0 * perBatch, i1 = Math.Min(b1 * perBatch, n);
        var mine = items.Ids.Skip(i0).Take(i1 - i0).ToList();
        int cleaned = store.DeleteTempFiles(mine);
        var pending = new List<int>();
        var todo = new HashSet<int>();   // items of pending batches that are not done: the others keep their files
        int skipped = 0;
        for (int b = b0; b < b1; b++)
        {
            bool all = true;
            for (int i = b * perBatch; i < Math.Min((b + 1) * perBatch, n); i++)
            {
                var state = store.Check(items.Ids[i], fingerprint, out string why, out _);
                if (state == BatchStore.ItemState.Done) skipped++;
                else
                {
                    if (state != BatchStore.ItemState.Missing) stderr.WriteLine($"batch: redoing {items.Ids[i]}: {why}");
                    todo.Add(i);
                    all = false;
                }
            }
            if (!all) pending.Add(b);
        }
        stdout.WriteLine($"batch: shard {s.Shard} of {n} item(s) in {batches} batch(es) of {perBatch}: items {i0} to {i1 - 1} " +
                         $"({i1 - i0} item(s), {skipped} already done{(cleaned > 0 ? $", {cleaned} partial file(s) removed" : "")})");
        stdout.WriteLine($"  {s.Task} ({first.Task.Description}), sigma_y {s.SigmaY}; sampler: {first.Sampler.Description}");
        stdout.WriteLine($"  {S} sample(s) per item, seed {s.Seed}, on {devices.Count} device(s): {string.Join("; ", devices.Select(x => x.Description))}");

        var multi = new MultiDevicePosteriorSampler(parts.Select(p => p.Sampler).ToList(), perBatch * S);
        int evaluations = multi.EvaluationsPerSample;
        long pendingChains = pending.Sum(b => (long)(Math.Min((b + 1) * perBatch, n) - b * perBatch) * S);
        using var bar = cli.Progress("batch", pendingChains * evaluations, "steps");
        long before = 0;
        int written = 0;
        var batchesPerDevice = new int[devices.Count];
        bool interrupted = false;
        var sampling = Stopwatch.StartNew();
        foreach (var (rb0, rb1) in Ranges(pending))
        {
            int r0 = rb0 * perBatch, r1 = Math.Min(rb1 * perBatch, n), k = r1 - r0;
            var (y, truthResiduals) = MeasurementsFor(items, first.Task, (float)s.SigmaY, s.Seed, perBatch, r0, r1, c, h, w, m);
            var samples = new float[(long)k * S * d];
            void Done(ChainBatch cb)
            {
                var part = parts[cb.Device];
                batchesPerDevice[cb.Device]++;
                int firstItem = r0 + (int)(cb.FirstChain / S), count = cb.Chains / S;
                var residuals = Residuals(part.Task, devices[cb.Device], samples.AsSpan((int)cb.FirstChain * d, cb.Chains * d), y, (int)cb.FirstChain, r0,
                    cb.Chains, S, m, [c, h, w], shape, s.SigmaY);
                for (int j = 0; j < count; j++)
                {
                    int i = firstItem + j;
                    if (!todo.Contains(i)) continue;
                    var itemSamples = samples.AsSpan((i - r0) * S * d, S * d);
                    var metrics = ItemMetrics(part.Task, items, i, itemSamples, residuals.AsSpan(j * S, S), truthResiduals[i - r0], c, h, w, S);
                    var doc = new JsonObject
                    {
                        ["id"] = items.Ids[i],
                        ["index"] = i,
                        ["fingerprint"] = fingerprint,
                        ["first_sample"] = (long)i * S,
                        ["samples"] = S,
                        ["metrics"] = metrics,
                    };
                    store.WriteItem(items.Ids[i], doc, itemSamples, [S, c, h, w]);
                    Interlocked.Increment(ref written);
                    itemsDone?.Invoke(items.Ids[i]);
                }
            }
            long offset = before;
            try
            {
                multi.Sample(y, S, s.Seed, (long)r0 * S, samples, new Relay<DeviceSetProgress>(p => bar.Update(offset + p.Evaluations)), Done, cancel);
            }
            catch (OperationCanceledException) when (cancel.IsCancellationRequested)
            {
                interrupted = true;
                break;
            }
            before += (long)k * S * evaluations;
        }
        double seconds = sampling.Elapsed.TotalSeconds;
        bar.Finish(interrupted ? $"interrupted after {written} item(s) ({seconds:F1} s); rerun the same command to resume"
            : $"{written} item(s), {written * S} sample(s) in {seconds:F1} s");
        var log = new JsonObject
        {
            ["shard"] = s.Shard.ToString(),
            ["items"] = new JsonArray(i0, i1),
            ["items_in_shard"] = i1 - i0,
            ["items_skipped"] = skipped,
            ["items_written"] = written,
            ["interrupted"] = interrupted,
            ["devices"] = new JsonArray(devices.Select(x => (JsonNode?)x.Description).ToArray()),
            ["batches_per_device"] = new JsonArray(batchesPerDevice.Select(x => (JsonNode?)x).ToArray()),
            ["network_evaluations_per_sample"] = evaluations,
            ["sampling_seconds"] = Math.Round(seconds, 3),
            ["total_seconds"] = Math.Round(total.Elapsed.TotalSeconds, 3),
            ["samples_per_second"] = written > 0 ? Math.Round(written * S / seconds, 4) : null,
        };
        BatchStore.WriteJson(Path.Combine(store.ShardsFolder, $"shard-{s.Shard.Index}-of-{s.Shard.Count}.json"), log);
        stdout.WriteLine($"wrote {written} item(s) to {store.ItemsFolder}" + (interrupted ? " (interrupted)" : ""));
        return interrupted ? ExitCodes.Interrupted : ExitCodes.Ok;
    }

    /// <summary>Contiguous runs of batch indices: [start, end).</summary>
    private static IEnumerable<(int, int)> Ranges(List<int> batches)
    {
        for (int i = 0; i < batches.Count;)
        {
            int j = i;
            while (j + 1 < batches.Count && batches[j + 1] == batches[j] + 1) j++;
            yield return (batches[i], batches[j] + 1);
            i = j + 1;
        }
    }

    /// <summary>The measurements of items [r0, r1) ([k, m] flattened) and the truth's discrepancy (NaN without truth).
    /// Simulated batch by batch with the run's batching, on the first device, the noise of item i from draw i.</summary>
    private static (float[] Y, double[] TruthResiduals) MeasurementsFor(BatchInputs items, PosteriorTask task, float sigmaY, ulong seed,
        int perBatch, int r0, int r1, int c, int h, int w, int m)
    {
        int k = r1 - r0, d = c * h * w;
        var y = new float[k * m];
        var truthResiduals = new double[k];
        if (items.Measurements is { } given)
        {
            given.AsSpan(r0 * m, k * m).CopyTo(y);
            Array.Fill(truthResiduals, double.NaN);
            return (y, truthResiduals);
        }
        var dev = task.Operator.Device;
        using var exclusive = dev.Exclusive();
        for (int b = r0; b < r1; b += perBatch)
        {
            int kb = Math.Min(perBatch, r1 - b);
            using var x0 = Tensor.FromHost(dev, items.Truth!.AsSpan(b * d, kb * d), kb, c, h, w);
            using var yt = Tensor.Empty(dev, [kb, .. task.Operator.MeasurementShape]);
            task.Measure(x0, sigmaY, seed, b, yt);
            yt.CopyTo(y.AsSpan((b - r0) * m, kb * m));
            task.Operator.Discrepancy.Evaluate(task.Operator, x0, yt, sigmaY).CopyTo(truthResiduals, b - r0);
        }
        return (y, truthResiduals);
    }

    /// <summary>The operator's discrepancy of each chain of a finished batch, on the device that ran it.</summary>
    private static double[] Residuals(PosteriorTask task, GpuDevice dev, ReadOnlySpan<float> samples, float[] y, int firstChain, int r0,
        int chains, int S, int m, int[] image, int[] shape, double sigmaY)
    {
        var yc = new float[chains * m];
        for (int j = 0; j < chains; j++) y.AsSpan((firstChain + j) / S * m, m).CopyTo(yc.AsSpan(j * m));
        using var exclusive = dev.Exclusive();
        using var x = Tensor.FromHost(dev, samples, [chains, .. image]);
        using var yt = Tensor.FromHost(dev, yc, [chains, .. shape]);
        return task.Operator.Discrepancy.Evaluate(task.Operator, x, yt, sigmaY);
    }

    /// <summary>One item's metrics in metrics.json's names (<see cref="PosteriorReport.PerInput"/>); without a ground
    /// truth only those of the samples and the measurement.</summary>
    private static JsonObject ItemMetrics(PosteriorTask task, BatchInputs items, int i, ReadOnlySpan<float> samples, ReadOnlySpan<double> residuals,
        double truthResidual, int c, int h, int w, int S)
    {
        int d = c * h * w;
        bool truth = items.Truth is not null;
        var report = new PosteriorReport(task, c, h, w, S)
        {
            Truth = truth ? items.Truth.AsSpan(i * d, d).ToArray() : new float[d],
            Samples = samples.ToArray(),
            Measurements = new float[d],
            Residuals = residuals.ToArray(),
            TruthResiduals = [truthResidual],
        };
        var result = new JsonObject();
        foreach (var (key, value) in report.PerInput()[0])
        {
            if (key == "index") continue;
            if (!truth && (key.Contains("psnr") || key.Contains("ssim") || key.EndsWith("_truth", StringComparison.Ordinal))) continue;
            result[key] = value is double v ? v : null;
        }
        return result;
    }

    /// <summary>A hash of everything that decides an item's bytes: settings, batching, model weights and input data.</summary>
    private static string Fingerprint(BatchSettings s, PosteriorBudget budget, string modelDir, int perBatch, BatchInputs items)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        void Add(string text) => sha.AppendData(Encoding.UTF8.GetBytes(text + "\n"));
        Add(SettingsJson(s, budget, modelDir, perBatch).ToJsonString());
        foreach (string f in new[] { "config.json", "scheduler_config.json", Models.UNet.UNet2DModel.WeightsFileName })
        {
            string p = Path.Combine(modelDir, f);
            Add(File.Exists(p) ? BatchStore.Sha256(File.ReadAllBytes(p)) : "absent");
        }
        foreach (string id in items.Ids) Add(id);
        var data = items.Truth ?? items.Measurements!;
        sha.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan()));
        return Convert.ToHexStringLower(sha.GetHashAndReset())[..16];
    }

    private static JsonObject SettingsJson(BatchSettings s, PosteriorBudget b, string modelDir, int perBatch) => new()
    {
        ["task"] = s.Task, ["sampler"] = s.Sampler, ["samples"] = s.Samples, ["sigma_y"] = s.SigmaY, ["seed"] = s.Seed,
        ["batch"] = perBatch, ["steps"] = b.Steps, ["levels"] = b.Levels, ["prior_steps"] = b.PriorSteps, ["step_scale"] = b.StepScale,
        ["prior_timestep"] = b.PriorTimestep, ["eta_max"] = b.EtaMax, ["mask"] = s.TaskSettings.Mask, ["factor"] = s.TaskSettings.Factor,
        ["blur_sigma"] = s.TaskSettings.BlurSigma, ["ratio"] = s.TaskSettings.Ratio, ["operator_seed"] = s.TaskSettings.OperatorSeed,
        ["invert"] = s.Invert, ["model"] = Path.GetFileName(Path.GetFullPath(modelDir).TrimEnd(Path.DirectorySeparatorChar)),
    };

    /// <summary>Writes batch.json on the first run; later runs and the other shards must find the same fingerprint.</summary>
    private static void WriteOrCheckManifest(BatchStore store, BatchSettings s, PosteriorBudget budget, string modelDir, int perBatch,
        BatchInputs items, string fingerprint, int[] image, int[] measurement)
    {
        if (File.Exists(store.ManifestPath))
        {
            string? old = null;
            try { old = (string?)JsonNode.Parse(File.ReadAllText(store.ManifestPath))?["fingerprint"]; }
            catch (System.Text.Json.JsonException) { }
            if (old == fingerprint) return;
            if (old is not null)
                throw new UsageException($"{store.ManifestPath}: the folder holds a run with other settings, model or inputs " +
                                         $"(fingerprint {old}, this run {fingerprint}); give another --out or delete the folder");
            // A manifest that does not parse was cut short: every shard writes the same one, so rewrite it.
        }
        var manifest = new JsonObject
        {
            ["command"] = "batch",
            ["fingerprint"] = fingerprint,
            ["settings"] = SettingsJson(s, budget, modelDir, perBatch),
            ["source"] = items.Source,
            ["image_shape"] = new JsonArray(image.Select(v => (JsonNode?)v).ToArray()),
            ["measurement_shape"] = new JsonArray(measurement.Select(v => (JsonNode?)v).ToArray()),
            ["has_truth"] = items.Truth is not null,
            ["items"] = new JsonArray(items.Ids.Select(id => (JsonNode?)id).ToArray()),
        };
        BatchStore.WriteJson(store.ManifestPath, manifest);
    }

    private sealed class Relay<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}

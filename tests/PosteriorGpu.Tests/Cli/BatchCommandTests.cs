using System.Diagnostics;
using System.Text.Json.Nodes;
using NUnit.Framework;
using PosteriorGpu.Cli;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Models.IO;

namespace PosteriorGpu.Tests.Cli;

/// <summary>
/// `batch` and `merge` end to end on a tiny random U-Net and five committed digits (batches of 2 items, 2 samples
/// each): a resumed run (cancelled in process, or a child process killed) writes the bytes of an uninterrupted one,
/// shards cover the items and merge to the same result, and merge names missing, corrupt and partial files.
/// </summary>
public class BatchCommandTests
{
    private const int Items = 5;
    private string dir = "", model = "", input = "", reference = "";

    [OneTimeSetUp]
    public void Setup()
    {
        dir = Directory.CreateTempSubdirectory("batch-cli-").FullName;
        model = Path.Combine(dir, "model");
        RandomUNet.Write(RandomUNet.Tiny32, model);
        var digits = Npy.Read(DefaultPaths.Find(DefaultPaths.Digits)!).ToFloat32();
        input = Path.Combine(dir, "digits.npy");
        Npy.Write(input, digits.AsSpan(0, Items * 1024), Items, 1, 32, 32);
        reference = Path.Combine(dir, "reference");
        Assert.That(Run(Settings(reference)), Is.Zero, "the uninterrupted run");
    }

    [OneTimeTearDown]
    public void DeleteDir() => Directory.Delete(dir, recursive: true);

    private BatchSettings Settings(string outDir, ShardSpec? shard = null) => new()
    {
        Out = outDir,
        Input = input,
        Model = model,
        Sampler = "annealed-langevin",
        Samples = 2,
        Batch = 2,
        Seed = 3,
        Budget = new PosteriorBudget(Steps: 2, Levels: 2, PriorSteps: 2),
        Device = DeviceKind.Cpu,
        Shard = shard ?? ShardSpec.Single,
    };

    private static int Run(BatchSettings s, CancellationToken cancel = default, Action<string>? itemsDone = null) =>
        BatchCommand.Run(s, TextWriter.Null, TextWriter.Null, cancel, itemsDone);

    private static string[] ItemFiles(string outDir) =>
        Directory.GetFiles(Path.Combine(outDir, "items")).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray()!;

    /// <summary>Every item file of <paramref name="outDir"/> has the reference's bytes, and there are no others.</summary>
    private void AssertSameItems(string outDir)
    {
        var names = ItemFiles(outDir);
        Assert.That(names, Is.EqualTo(ItemFiles(reference)));
        Assert.That(names, Has.Length.EqualTo(2 * Items));
        foreach (string name in names)
            Assert.That(File.ReadAllBytes(Path.Combine(outDir, "items", name)), Is.EqualTo(File.ReadAllBytes(Path.Combine(reference, "items", name))), name);
    }

    [Test]
    public void Reference_WritesEveryItemWithMetrics_AndMergeAssemblesThem()
    {
        var item = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(reference, "items", "000003.json")))!;
        Assert.That((int)item["index"]!, Is.EqualTo(3));
        Assert.That((long)item["first_sample"]!, Is.EqualTo(6));
        foreach (string key in new[] { "psnr_mean", "ssim_mean", "residual_over_sigma_samples", "residual_over_sigma_truth", "psnr_missing_mean" })
            Assert.That(item["metrics"]![key], Is.Not.Null, key);
        Assert.That(MergeCommand.Run(new MergeSettings(reference), TextWriter.Null), Is.Zero);
        var merged = Npy.Read(Path.Combine(reference, "merged", "samples.npy"));
        Assert.That(merged.Shape, Is.EqualTo(new[] { Items, 2, 1, 32, 32 }));
        var item3 = Npy.Read(Path.Combine(reference, "items", "000003.npy")).ToFloat32();
        Assert.That(merged.ToFloat32().AsSpan(3 * 2048, 2048).ToArray(), Is.EqualTo(item3));
        string summary = File.ReadAllText(Path.Combine(reference, "merged", "summary.md"));
        Assert.That(summary, Does.StartWith("| item | psnr_mean |"));
        Assert.That(summary.Split('\n', StringSplitOptions.RemoveEmptyEntries), Has.Length.EqualTo(2 + Items + 1));
        var metrics = JsonNode.Parse(File.ReadAllText(Path.Combine(reference, "merged", "metrics.json")))!;
        Assert.That(metrics["per_item"]!.AsArray(), Has.Count.EqualTo(Items));
        double mean = Enumerable.Range(0, Items).Average(i => (double)metrics["per_item"]![i]!["metrics"]!["psnr_mean"]!);
        Assert.That((double)metrics["average"]!["psnr_mean"]!, Is.EqualTo(mean).Within(1e-5));
    }

    [Test]
    public void CancelledThenRerun_WritesTheBytesOfAnUninterruptedRun()
    {
        string o = Path.Combine(dir, "cancelled");
        using var cts = new CancellationTokenSource();
        int code = Run(Settings(o), cts.Token, _ => cts.Cancel());
        Assert.That(code, Is.EqualTo(ExitCodes.Interrupted));
        int partial = ItemFiles(o).Count(f => f.EndsWith(".json"));
        Assert.That(partial, Is.InRange(1, Items - 1), "stopped part way");
        var written = new List<string>();
        Assert.That(Run(Settings(o), itemsDone: written.Add), Is.Zero);
        Assert.That(written, Has.Count.EqualTo(Items - partial), "the rerun skips the finished items");
        AssertSameItems(o);
    }

    [Test]
    public void KilledProcessThenRerun_WritesTheBytesOfAnUninterruptedRun()
    {
        string o = Path.Combine(dir, "killed");
        string cli = typeof(CliApp).Assembly.Location;
        var start = new ProcessStartInfo("dotnet")
        {
            ArgumentList =
            {
                "exec", cli, "batch", "--input", input, "--out", o, "--model", model, "--sampler", "annealed-langevin", "--samples", "2",
                "--batch", "1", "--seed", "3", "--steps", "2", "--levels", "2", "--prior-steps", "2", "--device", "cpu",
            },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        // --batch 1 is another batching (other bits are allowed): it must first refuse the reference's folder...
        var refused = Process.Start(new ProcessStartInfo(start.FileName, start.ArgumentList.Select(a => a == o ? reference : a))
        {
            RedirectStandardError = true, RedirectStandardOutput = true,
        })!;
        string err = refused.StandardError.ReadToEnd();
        refused.WaitForExit();
        Assert.That(refused.ExitCode, Is.EqualTo(2), err);
        Assert.That(err, Does.Contain("holds a run with other settings"));

        // ... and in its own folder, killed after the first item, resume to the bytes of an uninterrupted --batch 1 run.
        var child = Process.Start(start)!;
        child.OutputDataReceived += (_, _) => { };
        child.ErrorDataReceived += (_, _) => { };
        child.BeginOutputReadLine();
        child.BeginErrorReadLine();
        var watch = Stopwatch.StartNew();
        string items = Path.Combine(o, "items");
        while (!child.HasExited && watch.Elapsed < TimeSpan.FromMinutes(3) &&
               !(Directory.Exists(items) && Directory.GetFiles(items, "*.json").Length > 0))
            Thread.Sleep(20);
        bool killedEarly = !child.HasExited;
        child.Kill(entireProcessTree: true);
        child.WaitForExit();
        int before = Directory.GetFiles(items, "*.json").Length;
        TestContext.Out.WriteLine($"killed with {before} item(s) done (killed before the end: {killedEarly}); files: {string.Join(", ", ItemFiles(o))}");
        Assert.That(killedEarly && before < Items, "the child was killed part way");

        var s = Settings(o) with { Batch = 1 };
        Assert.That(Run(s), Is.Zero);
        string whole = Path.Combine(dir, "whole-batch1");
        Assert.That(Run(Settings(whole) with { Batch = 1 }), Is.Zero);
        var names = ItemFiles(o);
        Assert.That(names, Is.EqualTo(ItemFiles(whole)), "no temporary files left, every item there");
        foreach (string name in names)
            Assert.That(File.ReadAllBytes(Path.Combine(o, "items", name)), Is.EqualTo(File.ReadAllBytes(Path.Combine(whole, "items", name))), name);
    }

    [Test]
    public void Shards_CoverEveryItemOnce_AndMergeToTheSameSamples()
    {
        string o = Path.Combine(dir, "sharded");
        var seen = new List<string>();
        for (int i = 0; i < 3; i++) Assert.That(Run(Settings(o, new ShardSpec(i, 3)), itemsDone: seen.Add), Is.Zero);
        Assert.That(seen, Is.EquivalentTo(Enumerable.Range(0, Items).Select(i => $"{i:D6}")), "every item exactly once");
        Assert.That(Directory.GetFiles(Path.Combine(o, "shards")).Select(Path.GetFileName),
            Is.EquivalentTo(new[] { "shard-0-of-3.json", "shard-1-of-3.json", "shard-2-of-3.json" }));
        AssertSameItems(o);
        Assert.That(MergeCommand.Run(new MergeSettings(o), TextWriter.Null), Is.Zero);
        MergeCommand.Run(new MergeSettings(reference), TextWriter.Null);
        Assert.That(File.ReadAllBytes(Path.Combine(o, "merged", "samples.npy")), Is.EqualTo(File.ReadAllBytes(Path.Combine(reference, "merged", "samples.npy"))));
        Assert.That(File.ReadAllText(Path.Combine(o, "merged", "summary.md")), Is.EqualTo(File.ReadAllText(Path.Combine(reference, "merged", "summary.md"))));
    }

    [Test]
    public void TwoDevicesInOneProcess_WriteTheBytesOfOne()
    {
        string o = Path.Combine(dir, "two-devices");
        Assert.That(Run(Settings(o) with { Devices = 2 }), Is.Zero);
        var log = JsonNode.Parse(File.ReadAllText(Path.Combine(o, "shards", "shard-0-of-1.json")))!;
        Assert.That(log["devices"]!.AsArray(), Has.Count.EqualTo(2));
        var perDevice = log["batches_per_device"]!.AsArray().Select(x => (int)x!).ToArray();
        TestContext.Out.WriteLine($"batches per device: {string.Join(", ", perDevice)}");
        Assert.That(perDevice.Sum(), Is.EqualTo(3));
        Assert.That(perDevice, Has.All.GreaterThan(0), "both devices ran batches");
        AssertSameItems(o);
    }

    private static void CopyFolder(string from, string to)
    {
        foreach (string d in Directory.GetDirectories(from, "*", SearchOption.AllDirectories)) Directory.CreateDirectory(d.Replace(from, to));
        Directory.CreateDirectory(to);
        foreach (string f in Directory.GetFiles(from, "*", SearchOption.AllDirectories)) File.Copy(f, f.Replace(from, to));
    }

    [Test]
    public void Merge_NamesMissingCorruptAndPartialFiles_AndARerunRepairsThem()
    {
        string o = Path.Combine(dir, "damaged");
        CopyFolder(reference, o);
        string items = Path.Combine(o, "items");
        File.Delete(Path.Combine(items, "000001.json"));                                  // killed before the commit mark
        var npy = File.ReadAllBytes(Path.Combine(items, "000003.npy"));
        File.WriteAllBytes(Path.Combine(items, "000003.npy"), npy.AsSpan(0, npy.Length / 2).ToArray());   // truncated
        File.WriteAllText(Path.Combine(items, "000004.json"), "{\"id\": \"000004\", \"finger");       // cut short
        File.WriteAllBytes(Path.Combine(items, "000002.npy.4242.tmp"), npy.AsSpan(0, 100).ToArray()); // a writer was killed

        var e = Assert.Throws<IncompleteRunException>(() => MergeCommand.Run(new MergeSettings(o), TextWriter.Null))!;
        TestContext.Out.WriteLine(e.Message);
        Assert.That(e.Message, Does.Contain("2 corrupt; 1 missing; 1 partial"));
        Assert.That(e.Message, Does.Contain("000001 (item 1)").And.Contain("missing"));
        Assert.That(e.Message, Does.Contain("000003 (item 3)").And.Contain("SHA-256"));
        Assert.That(e.Message, Does.Contain("000004 (item 4)").And.Contain("not valid JSON"));
        Assert.That(e.Message, Does.Contain("000002.npy.4242.tmp"));

        var (code, _, err) = Cli("merge", "--out", o);
        Assert.That(code, Is.EqualTo(1), "through the command line: an error, exit code 1");
        Assert.That(err, Does.StartWith("posteriorgpu: error: "));

        var redone = new List<string>();
        Assert.That(Run(Settings(o), itemsDone: redone.Add), Is.Zero);
        Assert.That(redone, Is.EquivalentTo(new[] { "000001", "000003", "000004" }), "only the damaged items are redone");
        AssertSameItems(o);
        Assert.That(MergeCommand.Run(new MergeSettings(o), TextWriter.Null), Is.Zero);
    }

    [Test]
    public void Measurements_AreReconstructedWithoutTruthMetrics()
    {
        string y = Path.Combine(dir, "y.npy"), o = Path.Combine(dir, "measured");
        Npy.Write(y, TestData.Random(3 * 1024, 5, 0.5f), 3, 1, 32, 32);
        var s = Settings(o) with { Input = null, Measurements = y };
        Assert.That(Run(s), Is.Zero);
        var metrics = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(o, "items", "000002.json")))!["metrics"]!;
        Assert.That(metrics.Select(kv => kv.Key), Is.EquivalentTo(new[] { "residual_over_sigma_samples", "mean_std" }));
        Assert.That(MergeCommand.Run(new MergeSettings(o), TextWriter.Null), Is.Zero);
        Assert.That(Npy.Read(Path.Combine(o, "merged", "samples.npy")).Shape, Is.EqualTo(new[] { 3, 2, 1, 32, 32 }));
    }

    [Test]
    public void CommandLine_ParsesShardAndEnvironment()
    {
        var env = new Dictionary<string, string> { ["SLURM_ARRAY_TASK_ID"] = "3", ["SLURM_ARRAY_TASK_COUNT"] = "4", ["SLURM_ARRAY_TASK_MIN"] = "1" };
        var s = ScaleOutCommands.ParseBatch(["--input", "x.npy", "--out", "o", "--samples", "3", "--batch", "2"], k => env.GetValueOrDefault(k));
        Assert.That((s.Shard, s.Samples, s.Batch, s.Input), Is.EqualTo((new ShardSpec(2, 4), 3, (int?)2, "x.npy")));
        var (code, _, err) = Cli("batch", "--input", "x.npy");
        Assert.That(code, Is.EqualTo(2));
        Assert.That(err, Does.Contain("--out"));
    }

    /// <summary>The command line as Program.cs runs it, in process.</summary>
    private static (int Code, string Out, string Err) Cli(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CliApp.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }
}

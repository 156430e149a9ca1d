using System.Text.Json;
using NUnit.Framework;
using PosteriorGpu.Cli;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Models.IO;
using SkiaSharp;

namespace PosteriorGpu.Tests.Cli;

/// <summary>`posteriorgpu posterior` end to end, in process, on a tiny random 1-channel 32 x 32 U-Net with
/// a handful of steps: the files it writes, their contents, and the exit codes of good and bad runs.</summary>
public class PosteriorCommandTests
{
    private string dir = "", model = "";

    [OneTimeSetUp]
    public void WriteModel()
    {
        dir = Directory.CreateTempSubdirectory("posterior-cli-").FullName;
        model = Path.Combine(dir, "model");
        RandomUNet.Write(RandomUNet.Tiny32, model);
    }

    [OneTimeTearDown]
    public void DeleteDir() => Directory.Delete(dir, recursive: true);

    // DPS (the default) has no levels: --steps + --prior-steps = 4 reverse-diffusion steps.
    private static readonly string[] Quick = ["--steps", "2", "--prior-steps", "2", "--device", "cpu"];

    // The same budget for the samplers with levels.
    private static readonly string[] QuickLevels = [.. Quick, "--levels", "2"];

    private (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CliApp.Run(["posterior", .. args], stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    private string Out(string name) => Path.Combine(dir, name);

    [Test]
    public void Inpaint_WritesGridArraysAndMetrics()
    {
        string o = Out("inpaint");
        var (code, stdout, stderr) = Run(["--model", model, "--count", "2", "--samples", "3", "--seed", "5", "--out", o, .. Quick]);
        Assert.That(code, Is.EqualTo(0), stderr);
        Assert.That(stdout, Does.Contain("missing pixels: PSNR").And.Contain("trivial fill"));
        Assert.That(stderr, Does.Contain("posterior: 100% 4/4 steps"), "plain progress lines when not on a terminal");

        // The inputs are the first two committed digits; the measurement keeps the observed pixels (plus noise).
        var truth = Npy.Read(Path.Combine(o, "truth.npy"));
        Assert.That(truth.Shape, Is.EqualTo(new[] { 2, 1, 32, 32 }));
        var digits = Npy.Read(DefaultPaths.Find(DefaultPaths.Digits)!).ToFloat32();
        Assert.That(truth.ToFloat32(), Is.EqualTo(digits.AsSpan(0, 2048).ToArray()));
        var y = Npy.Read(Path.Combine(o, "measurement.npy")).ToFloat32();
        Assert.That(y[(8 + 8) * 32 + 16], Is.EqualTo(0f), "a missing pixel of the centred box");
        Assert.That(y[0], Is.EqualTo(digits[0]).Within(0.25f), "an observed pixel: truth + N(0, 0.05^2)");
        Assert.That(y[0], Is.Not.EqualTo(digits[0]), "the measurement is noisy");

        var samples = Npy.Read(Path.Combine(o, "samples.npy"));
        Assert.That(samples.Shape, Is.EqualTo(new[] { 2, 3, 1, 32, 32 }));
        var s = samples.ToFloat32().Select(v => Math.Clamp(v, -1f, 1f)).ToArray();
        var mean = Npy.Read(Path.Combine(o, "mean.npy")).ToFloat32();
        var std = Npy.Read(Path.Combine(o, "std.npy")).ToFloat32();
        for (int j = 0; j < 1024; j += 37)
        {
            float a = s[j], b = s[1024 + j], c = s[2048 + j], mu = (a + b + c) / 3;
            Assert.That(mean[j], Is.EqualTo(mu).Within(1e-5f));
            Assert.That(std[j], Is.EqualTo(MathF.Sqrt(((a - mu) * (a - mu) + (b - mu) * (b - mu) + (c - mu) * (c - mu)) / 2)).Within(1e-5f));
        }

        using (var png = SKBitmap.Decode(Path.Combine(o, "grid.png")))
        {
            // A title band, a header band, 2 rows x (truth, measurement, 3 samples, mean, std) of 128-pixel cells, a legend band.
            Assert.That(png.Width, Is.GreaterThan(7 * 128));
            Assert.That(png.Height, Is.GreaterThan(2 * 128));
        }
        using (var png = SKBitmap.Decode(Path.Combine(o, "grid.png")))
        {
            // The header band (below the 22-pixel title band, above the cells) holds text: ink on the background.
            var band = Enumerable.Range(0, png.Width).SelectMany(x => Enumerable.Range(22, 22).Select(y => png.GetPixel(x, y).Red)).ToList();
            Assert.That(band.Count(v => v == 235), Is.GreaterThan(100), "header text");
            Assert.That(band.Count(v => v == 32), Is.GreaterThan(band.Count / 2), "background");
        }

        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(o, "metrics.json")));
        var root = json.RootElement;
        Assert.That(root.GetProperty("options").GetProperty("seed").GetUInt64(), Is.EqualTo(5));
        Assert.That(root.GetProperty("options").GetProperty("task").GetString(), Is.EqualTo("inpaint"));
        // The defaults: DPS with the task's zeta (3 for inpainting; cs and one-bit keep the paper's 1).
        Assert.That(root.GetProperty("options").GetProperty("sampler").GetString(), Is.EqualTo("dps"));
        Assert.That(root.GetProperty("options").GetProperty("step_scale").GetDouble(), Is.EqualTo(PosteriorTask.DpsZeta("inpaint")));
        Assert.That((PosteriorTask.DpsZeta("inpaint"), PosteriorTask.DpsZeta("cs"), PosteriorTask.DpsZeta("onebit")), Is.EqualTo((3.0, 1.0, 1.0)));
        var run = root.GetProperty("run");
        Assert.That(run.GetProperty("inputs_completed").GetInt32(), Is.EqualTo(2));
        var columns = root.GetProperty("grid").GetProperty("columns").EnumerateArray().Select(e => e.GetString()).ToArray();
        Assert.That(columns, Is.EqualTo(new[] { "truth", "measurement", "sample 1", "sample 2", "sample 3", "mean", "std" }));
        Assert.That(root.GetProperty("grid").GetProperty("std_white_at").GetDouble(), Is.EqualTo(std.Max()).Within(1e-4));
        Assert.That(root.GetProperty("grid").GetProperty("scale").GetInt32(), Is.EqualTo(4), "32-pixel digits drawn 4 x larger");
        Assert.That(run.GetProperty("interrupted").GetBoolean(), Is.False);
        Assert.That(run.GetProperty("device").GetString(), Does.StartWith("cpu"));
        Assert.That(run.GetProperty("network_evaluations_per_sample").GetInt32(), Is.EqualTo(4));
        Assert.That(run.GetProperty("time_per_sample_seconds").GetDouble(), Is.GreaterThan(0));
        var per = root.GetProperty("per_input");
        Assert.That(per.GetArrayLength(), Is.EqualTo(2));
        // The metrics are those of the written arrays: recompute PSNR of the mean on the missing pixels (the default
        // mask: each pixel observed with probability 0.25, operator seed 0).
        using var op = PosteriorGpu.Samplers.Operators.InpaintingOperator.RandomPixels(TestDevices.Cpu, 1, 32, 32, 0.25, 0);
        var missing = op.Mask.Select(v => 1 - v).ToArray();
        double expected = PosteriorGpu.Samplers.Diagnostics.ImageMetrics.Psnr(mean.AsSpan(1024, 1024), digits.AsSpan(1024, 1024), missing);
        Assert.That(per[1].GetProperty("psnr_missing_mean").GetDouble(), Is.EqualTo(expected).Within(1e-4));
        foreach (string key in new[] { "psnr_mean", "ssim_mean", "psnr_samples", "ssim_samples", "residual_over_sigma_samples",
                     "residual_over_sigma_truth", "psnr_missing_trivial_fill", "psnr_trivial_fill" })
            Assert.That(root.GetProperty("average").GetProperty(key).ValueKind, Is.EqualTo(JsonValueKind.Number), key);
        // The truth's residual is about sqrt(m) = 32 (the noise norm over sigma_y).
        Assert.That(per[0].GetProperty("residual_over_sigma_truth").GetDouble(), Is.InRange(28.0, 36.0));
    }

    [Test]
    public void Samples_DoNotDependOnTheBatching()
    {
        string a = Out("batch1"), b = Out("batch2");
        Assert.That(Run(["--model", model, "--count", "2", "--samples", "2", "--batch", "1", "--out", a, .. Quick]).Code, Is.Zero);
        Assert.That(Run(["--model", model, "--count", "2", "--samples", "2", "--batch", "2", "--out", b, .. Quick]).Code, Is.Zero);
        TestData.AssertClose(Npy.Read(Path.Combine(a, "samples.npy")).ToFloat32(), Npy.Read(Path.Combine(b, "samples.npy")).ToFloat32(),
            1e-4, "samples with 1 or 2 inputs per batch");
        Assert.That(Run(["--model", model, "--count", "1", "--samples", "2", "--seed", "1", "--out", b, .. Quick]).Code, Is.Zero);
        Assert.That(Npy.Read(Path.Combine(b, "samples.npy")).ToFloat32(),
            Is.Not.EqualTo(Npy.Read(Path.Combine(a, "samples.npy")).ToFloat32().AsSpan(0, 2048).ToArray()), "another seed, other samples");
    }

    [TestCase("superres"), TestCase("deblur"), TestCase("cs"), TestCase("mri")]
    public void LinearTasks_Run(string task)
    {
        string o = Out(task);
        var (code, _, stderr) = Run(["--model", model, "--task", task, "--count", "1", "--samples", "2", "--out", o, .. Quick]);
        Assert.That(code, Is.EqualTo(0), stderr);
        var view = Npy.Read(Path.Combine(o, "measurement.npy")).ToFloat32();
        Assert.That(view, Has.All.Matches<float>(float.IsFinite));
        if (task == "superres")
        {
            // 4 x 4 blocks of equal values: the low-resolution image repeated.
            Assert.That(view[1], Is.EqualTo(view[0]));
            Assert.That(view[32 * 3 + 3], Is.EqualTo(view[0]));
        }
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(o, "metrics.json")));
        Assert.That(json.RootElement.GetProperty("average").TryGetProperty("psnr_missing_mean", out _), Is.False, "inpainting only");
    }

    [Test]
    public void PngInput_IsResizedGreyAndInvertible()
    {
        // A 64 x 48 picture: black with a white 20 x 20 square in the middle; centre-cropped to 48 x 48, resized to 32 x 32.
        string png = Out("square.png");
        using (var bmp = new SKBitmap(64, 48))
        {
            bmp.Erase(SKColors.Black);
            for (int y = 14; y < 34; y++) for (int x = 22; x < 42; x++) bmp.SetPixel(x, y, SKColors.White);
            using var data = bmp.Encode(SKEncodedImageFormat.Png, 100);
            File.WriteAllBytes(png, data.ToArray());
        }
        string o = Out("png");
        Assert.That(Run(["--model", model, "--input", png, "--samples", "1", "--out", o, .. Quick]).Code, Is.Zero);
        // One sample: no mean and std columns (they would repeat the sample and show black).
        using (var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(o, "metrics.json"))))
            Assert.That(json.RootElement.GetProperty("grid").GetProperty("columns").EnumerateArray().Select(e => e.GetString()),
                Is.EqualTo(new[] { "truth", "measurement", "sample 1" }));
        var img = Npy.Read(Path.Combine(o, "truth.npy")).ToFloat32();
        Assert.That(img, Has.Length.EqualTo(1024));
        Assert.That(img[16 * 32 + 16], Is.EqualTo(1f).Within(0.02f), "centre white");
        Assert.That(img[0], Is.EqualTo(-1f).Within(0.02f), "corner black");
        Assert.That(Run(["--model", model, "--input", png, "--invert", "--samples", "1", "--out", o, .. Quick]).Code, Is.Zero);
        Assert.That(Npy.Read(Path.Combine(o, "truth.npy")).ToFloat32()[16 * 32 + 16], Is.EqualTo(-1f).Within(0.02f));
    }

    [Test]
    public void Interrupted_KeepsTheFinishedInputs()
    {
        string o = Out("interrupted");
        using var cts = new CancellationTokenSource();
        var settings = new PosteriorSettings
        {
            Model = model, Count = 3, Samples = 2, Batch = 1, Out = o, Budget = new PosteriorBudget(Steps: 2, PriorSteps: 2), Device = DeviceKind.Cpu,
        };
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = PosteriorCommand.Run(settings, CliContext.Plain(stdout, stderr, cts.Token), done => { if (done == 1) cts.Cancel(); });
        Assert.That(code, Is.EqualTo(ExitCodes.Interrupted), stderr.ToString());
        Assert.That(Npy.Read(Path.Combine(o, "samples.npy")).Shape, Is.EqualTo(new[] { 1, 2, 1, 32, 32 }));
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(o, "metrics.json")));
        Assert.That(json.RootElement.GetProperty("run").GetProperty("interrupted").GetBoolean(), Is.True);
        Assert.That(json.RootElement.GetProperty("run").GetProperty("inputs_completed").GetInt32(), Is.EqualTo(1));
        Assert.That(File.Exists(Path.Combine(o, "grid.png")));

        // Cancelled before anything finished: nothing written, still exit 130.
        string none = Out("cancelled");
        cts.TryReset();
        code = PosteriorCommand.Run(settings with { Out = none, Count = 4, Batch = null }, CliContext.Plain(stdout, stderr, new CancellationToken(true)));
        Assert.That(code, Is.EqualTo(ExitCodes.Interrupted));
        Assert.That(Directory.Exists(none) ? Directory.GetFiles(none) : [], Is.Empty);
    }

    private static void AssertOneLineError((int Code, string Out, string Err) r, int code, params string[] words)
    {
        Assert.That(r.Code, Is.EqualTo(code), r.Err);
        Assert.That(r.Err, Does.StartWith("posteriorgpu: error: "));
        Assert.That(r.Err.TrimEnd().Split('\n'), Has.Length.EqualTo(1), "one line, no stack trace: " + r.Err);
        foreach (string w in words) Assert.That(r.Err, Does.Contain(w));
    }

    [TestCase("dpnp", "inpaint")]
    [TestCase("dpnp", "onebit")]
    [TestCase("dps", "phase")]
    [TestCase("dps-langevin", "superres")]
    [TestCase("lgd-mc", "onebit")]
    public void DpnpAndDps_RunLinearAndNonlinearTasks(string sampler, string task)
    {
        string o = Out(sampler + "-" + task);
        var (code, stdout, stderr) = Run(["--sampler", sampler, "--task", task, "--model", model, "--count", "1", "--samples", "2",
            "--steps", "4", "--prior-steps", "2", "--device", "cpu", "--out", o, .. sampler is "dps" or "lgd-mc" ? Array.Empty<string>() : new[] { "--levels", "2" }]);
        Assert.That(code, Is.EqualTo(0), stderr);
        var metrics = File.ReadAllText(Path.Combine(o, "metrics.json"));
        Assert.That(metrics, Does.Contain($"\"sampler\": \"{sampler}\""));
        Assert.That(File.Exists(Path.Combine(o, "grid.png")));
        // The report scores samples with the operator's own discrepancy: signs reproduced for one-bit, the residual otherwise.
        var (key, label) = task == "onebit" ? ("sign_agreement", "signs reproduced") : ("residual_over_sigma", "||A x - y|| / sigma_y");
        using var json = JsonDocument.Parse(metrics);
        Assert.That(json.RootElement.GetProperty("average").TryGetProperty($"{key}_samples", out _), Is.True, metrics);
        Assert.That(json.RootElement.GetProperty("average").TryGetProperty($"{key}_truth", out _), Is.True, metrics);
        Assert.That(stdout, Does.Contain(label));
    }

    [Test]
    public void AnnealedSamplers_ReportTheirLadder_AndTakeAConstantStepSize()
    {
        // 2 levels from eta_max 1 to sigma_y 0.05 are not admissible: the run warns once and metrics.json says so, with the
        // constant h and the Langevin time per level (2 steps a level x 0.001).
        string o = Out("al-step-size");
        var (code, _, stderr) = Run(["--sampler", "annealed-langevin", "--model", model, "--count", "1", "--samples", "2",
            "--steps", "4", "--prior-steps", "2", "--levels", "2", "--step-size", "0.001", "--device", "cpu", "--out", o]);
        Assert.That(code, Is.EqualTo(0), stderr);
        Assert.That(stderr, Does.Contain("warning: the annealing ladder is not admissible"));
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(o, "metrics.json")));
        var a = json.RootElement.GetProperty("run").GetProperty("annealing");
        Assert.That(a.GetProperty("levels").GetInt32(), Is.EqualTo(2));
        Assert.That(a.GetProperty("admissible").GetBoolean(), Is.False);
        Assert.That(a.GetProperty("step_sizes").EnumerateArray().Select(v => v.GetDouble()), Is.All.EqualTo(0.001));
        Assert.That(a.GetProperty("langevin_time_per_level").EnumerateArray().Select(v => v.GetDouble()), Is.All.EqualTo(0.002).Within(1e-9));

        var dps = Run(["--sampler", "dps", "--model", model, "--step-size", "0.001", .. Quick, "--out", Out("dps-step-size")]);
        Assert.That(dps.Code, Is.EqualTo(2));
        Assert.That(dps.Err, Does.Contain("--step-size applies to --sampler annealed-langevin and dps-langevin only"));
    }

    [Test]
    public void BadInvocations_FailWithOneLineAndAnExitCode()
    {
        AssertOneLineError(Run("--task", "colorize", "--model", model), 2, "colorize", "inpaint");
        AssertOneLineError(Run("--sampler", "heun", "--model", model), 2, "heun", "annealed-langevin");
        AssertOneLineError(Run(["--sampler", "dpnp", "--model", model, "--out", Out("x"), .. QuickLevels]), 2, "dpnp", "at least 2");
        AssertOneLineError(Run(["--task", "phase", "--sampler", "annealed-langevin", "--model", model, "--out", Out("x"), .. QuickLevels]), 2, "nonlinear", "dps");
        AssertOneLineError(Run(["--task", "onebit", "--sampler", "annealed-langevin", "--model", model, "--out", Out("x"), .. QuickLevels]), 2, "nonlinear");
        AssertOneLineError(Run(["--task", "phase", "--sampler", "dps-langevin", "--model", model, "--out", Out("x"), .. QuickLevels]), 2, "nonlinear", "dps-langevin");
        AssertOneLineError(Run("--model", Out("no-such-model"), "--device", "cpu"), 1, "no-such-model", "model folder", "--model");
        AssertOneLineError(Run("--model", model, "--stpes", "3"), 2, "--stpes");
        AssertOneLineError(Run("--model", model, "--samples", "0"), 2, "--samples must be at least 1");
        AssertOneLineError(Run("--model", model, "--samples", "0"), 2, "--samples");
        AssertOneLineError(Run(["--model", model, "--task", "superres", "--factor", "5", "--out", Out("x"), .. Quick]), 2, "--factor 5");
        AssertOneLineError(Run(["--model", model, "--step-scale", "0", "--out", Out("x"), .. Quick]), 2, "--step-scale");
        AssertOneLineError(Run(["--model", model, "--prior-timestep", "1000", "--out", Out("x"), .. Quick]), 2, "--prior-timestep", "annealed-langevin and dps-langevin only");
        AssertOneLineError(Run(["--sampler", "annealed-langevin", "--model", model, "--prior-timestep", "1000", "--out", Out("x"), .. QuickLevels]), 2,
            "--prior-timestep = 1000", "0..999");
        AssertOneLineError(Run(["--sampler", "annealed-langevin", "--model", model, "--steps", "3", "--levels", "4", "--out", Out("x")]), 2,
            "--steps = 3", "--levels (4)");
        AssertOneLineError(Run("--model", model, "--device", "tpu"), 2, "tpu", "cuda");
        AssertOneLineError(Run("--model", model, "--device", "gpu"), 2, "gpu", "cuda");
        AssertOneLineError(Run(["--model", model, "--input", Out("missing.npy"), .. Quick]), 1, "missing.npy", "input images", "not found");
        // A value forgotten before the next option names the option that needs it.
        AssertOneLineError(Run("--model", model, "--task", "--count", "1"), 2, "--task needs a value");
        AssertOneLineError(Run("--model", model, "--count"), 2, "--count needs a value");
        AssertOneLineError(Run("--model", model, "--count", "many"), 2, "--count", "many", "integer");
        AssertOneLineError(Run("--model", model, "--sigma-y", "-1"), 2, "--sigma-y must be positive");
        // A flag the chosen sampler does not read is an error, and DPS's errors speak of its own flags.
        AssertOneLineError(Run(["--model", model, "--levels", "3", "--out", Out("x"), .. Quick]), 2, "--levels", "not dps", "--steps + --prior-steps");
        AssertOneLineError(Run(["--model", model, "--eta-max", "3", "--out", Out("x"), .. Quick]), 2, "--eta-max", "not dps");
        var dpsSteps = Run("--model", model, "--steps", "0");
        AssertOneLineError(dpsSteps, 2, "--steps");
        Assert.That(dpsSteps.Err, Does.Not.Contain("evels"), "DPS has no levels");
        // The output folder's role is named (a path that cannot be a folder).
        string file = Out("a-file");
        File.WriteAllText(file, "x");
        AssertOneLineError(Run(["--model", model, "--count", "1", "--samples", "1", "--out", Path.Combine(file, "sub"), .. Quick]), 1, "output folder", "a-file");

        // A model whose size does not fit the input: 16 x 16 images for a 32 x 32 model.
        string small = Out("small.npy");
        Npy.Write(small, new float[2 * 16 * 16], 2, 1, 16, 16);
        AssertOneLineError(Run(["--model", model, "--input", small, .. Quick]), 1, "16 x 16", "32 x 32");
        // Values outside [-1, 1] and a malformed file.
        string bright = Out("bright.npy");
        Npy.Write(bright, Enumerable.Repeat(255f, 1024).ToArray(), 1, 1, 32, 32);
        AssertOneLineError(Run(["--model", model, "--input", bright, .. Quick]), 1, "[-1, 1]");
        string junk = Out("junk.npy");
        File.WriteAllText(junk, "not numpy");
        AssertOneLineError(Run(["--model", model, "--input", junk, .. Quick]), 1, "junk.npy", "not a .npy file");
        string notPng = Out("junk.png");
        File.WriteAllText(notPng, "not a picture");
        AssertOneLineError(Run(["--model", model, "--input", notPng, .. Quick]), 1, "junk.png", "decode");

        // A device kind this machine does not have: a failure to run here, not a mistake in the command line (exit 1;
        // only checkable where there is no CUDA device).
        if (!GpuDevice.List().Any(d => d.Kind == DeviceKind.Cuda))
            AssertOneLineError(Run("--model", model, "--device", "cuda"), 1, "cuda", "--device");

        // --verbose adds the stack trace and keeps the exit code (no unhandled exception).
        var verbose = Run(["--model", Out("no-such-model"), "--verbose", .. Quick]);
        Assert.That(verbose.Code, Is.EqualTo(1));
        Assert.That(verbose.Err, Does.StartWith("posteriorgpu: error: ").And.Contain("   at PosteriorGpu.Cli."));
        verbose = Run(["--model", model, "--levels", "3", "--verbose", .. Quick]);
        Assert.That(verbose.Code, Is.EqualTo(2));
        Assert.That(verbose.Err, Does.Contain("UsageException"));
    }
}

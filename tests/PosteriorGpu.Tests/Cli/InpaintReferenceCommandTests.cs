using NUnit.Framework;
using PosteriorGpu.Models.IO;
using PosteriorGpu.Tests.Data;

namespace PosteriorGpu.Tests.Cli;

public class InpaintReferenceCommandTests
{
    private string dir = "";

    [OneTimeSetUp]
    public void Setup()
    {
        dir = Directory.CreateTempSubdirectory("inpaint-reference-").FullName;
        SyntheticMnist.WriteBars(dir, 8);
        // A hand-made box-inpainting run on one input: bar 3 (padded column 13, rows 2..29) plus a blob at (16, 16),
        // inside the hidden 16 x 16 box; the run's posterior mean is plain background.
        var truth = Enumerable.Repeat(-1f, 1024).ToArray();
        for (int y = 2; y < 30; y++) truth[y * 32 + 13] = 1f;
        truth[16 * 32 + 16] = 1f;
        WriteRun("inpaint-run", "inpaint", truth, Enumerable.Repeat(-1f, 1024).ToArray());
        WriteRun("deblur-run", "deblur", truth, truth);
    }

    private void WriteRun(string name, string task, float[] truth, float[] mean)
    {
        string run = Path.Combine(dir, name);
        Directory.CreateDirectory(run);
        File.WriteAllText(Path.Combine(run, "metrics.json"),
            $$"""{ "options": { "task": "{{task}}", "mask": "box", "ratio": null, "operator_seed": 0 } }""");
        Npy.Write(Path.Combine(run, "truth.npy"), truth, 1, 1, 32, 32);
        Npy.Write(Path.Combine(run, "measurement.npy"), truth, 1, 1, 32, 32);
        Npy.Write(Path.Combine(run, "mean.npy"), mean, 1, 1, 32, 32);
    }

    [OneTimeTearDown]
    public void TearDown() => Directory.Delete(dir, recursive: true);

    [Test]
    public void NearestTrainingImage_FillsTheBox()
    {
        var (code, stdout, stderr) = CliRun.Run("inpaint-reference", "--run", Path.Combine(dir, "inpaint-run"), "--k", "1", "--mnist", dir, "--device", "cpu");
        Assert.That(code, Is.EqualTo(0), stderr);
        // Bar 3 is the only training image that matches the observed pixels; it misses the blob alone:
        // MSE 4 / 256 over the 256 hidden pixels, PSNR 10 log10(4 / (4 / 256)) = 24.08 dB. The background mean misses
        // the bar's 16 hidden pixels and the blob: 10 log10(256 / 17) = 11.78 dB.
        var mean = stdout.Split('\n').Single(l => l.TrimStart().StartsWith("mean")).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(mean[1], Is.EqualTo("11.78"), stdout);
        Assert.That(mean[2], Is.EqualTo("24.08"), stdout);
        Assert.That(double.Parse(mean[3], System.Globalization.CultureInfo.InvariantCulture), Is.LessThan(24.08), stdout);
    }

    [Test]
    public void BadInvocations_AreOneLineErrors()
    {
        var (code, _, stderr) = CliRun.Run("inpaint-reference", "--run", Path.Combine(dir, "deblur-run"), "--mnist", dir);
        Assert.That(code, Is.Not.EqualTo(0));
        Assert.That(stderr, Does.Contain("inpainting runs only"));
        (code, _, stderr) = CliRun.Run("inpaint-reference", "--run", Path.Combine(dir, "inpaint-run"), "--k", "9", "--mnist", dir);
        Assert.That(code, Is.Not.EqualTo(0));
        Assert.That(stderr, Does.Contain("--k must be at most 8"));
        (code, _, stderr) = CliRun.Run("inpaint-reference", "--run", Path.Combine(dir, "nowhere"));
        Assert.That(code, Is.Not.EqualTo(0));
        Assert.That(stderr, Does.Contain("metrics.json"));
        Assert.That(stderr.TrimEnd().Split('\n'), Has.Length.EqualTo(1));
    }
}

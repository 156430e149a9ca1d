using NUnit.Framework;
using PosteriorGpu.Models.Classifier;
using PosteriorGpu.Models.IO;

namespace PosteriorGpu.Tests.Cli;

/// <summary>`posteriorgpu fid` with a freshly initialised classifier of the shipped architecture and .npy sets.</summary>
public class FidCommandTests
{
    private string folder = null!;

    [SetUp]
    public void SetUp() => folder = Path.Combine(Path.GetTempPath(), "pg-fid-cli-" + Guid.NewGuid().ToString("N"));

    [TearDown]
    public void TearDown()
    {
        if (Directory.Exists(folder)) Directory.Delete(folder, true);
    }

    [Test]
    public void PrintsTheDistance_ZeroForASetAgainstItself()
    {
        string classifier = Path.Combine(folder, "classifier");
        using (var net = ImageClassifier.Create(TestDevices.Cpu, new ClassifierConfig(), seed: 1, withGradients: false)) net.Save(classifier);
        string a = Path.Combine(folder, "a.npy"), b = Path.Combine(folder, "b.npy");
        Npy.Write(a, TestData.Random(6 * 1024, 95), 6, 1, 32, 32);
        Npy.Write(b, TestData.Random(6 * 1024, 96).Select(v => 0.3f * v - 0.5f).ToArray(), 6, 1, 32, 32);
        var (code, stdout, stderr) = CliRun.Run("fid", "--samples", a, "--reference", a, "--classifier", classifier, "--device", "cpu");
        Assert.That(code, Is.EqualTo(0), stderr);
        Assert.That(stdout, Does.StartWith("fid: 0.000").And.Contain("6 samples").And.Contain("biased upward"));
        (code, stdout, stderr) = CliRun.Run("fid", "--samples", a, "--reference", b, "--classifier", classifier, "--device", "cpu");
        Assert.That(code, Is.EqualTo(0), stderr);
        double d = double.Parse(stdout.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture);
        Assert.That(d, Is.GreaterThan(0));
    }

    [Test]
    public void BadInputs_AreOneLineErrors()
    {
        string a = Path.Combine(folder, "a.npy");
        Directory.CreateDirectory(folder);
        Npy.Write(a, new float[3 * 100], 3, 100);
        var (code, _, stderr) = CliRun.Run("fid", "--samples", a, "--reference", a, "--classifier", folder);
        Assert.That(code, Is.EqualTo(2), stderr);
        Assert.That(stderr, Does.Contain("[N, 1, 32, 32]"));
        Npy.Write(a, new float[2 * 1024], 2, 1, 32, 32);
        (code, _, stderr) = CliRun.Run("fid", "--samples", a, "--reference", "validation");
        Assert.That(code, Is.EqualTo(2), stderr);
        Assert.That(stderr, Does.Contain("test, train-split"));
        (code, _, stderr) = CliRun.Run("fid", "--samples", a, "--reference", a, "--classifier", folder, "--device", "cpu");
        Assert.That(code, Is.EqualTo(1), stderr);
        Assert.That(stderr, Does.Contain("config.json"));
    }
}

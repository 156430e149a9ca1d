using NUnit.Framework;
using PosteriorGpu.Models.UNet;
using PosteriorGpu.Models.Training;
using PosteriorGpu.Tests.Data;
using PosteriorGpu.Tests.Training;

namespace PosteriorGpu.Tests.Cli;

public class TrainCommandTests
{
    private string dir = "";

    [OneTimeSetUp]
    public void Setup()
    {
        dir = Directory.CreateTempSubdirectory("train-cli-").FullName;
        SyntheticMnist.WriteBars(dir, 8);   // 8 images of 28 x 28 bars
        (TrainingTests.Tiny with { SampleSize = 32 }).Save(Path.Combine(dir, "config.json"));
    }

    [OneTimeTearDown]
    public void TearDown() => Directory.Delete(dir, recursive: true);

    private static (int Code, string Out, string Err) Run(params string[] args) => CliRun.Run(args);

    [Test]
    public void Train_WritesAModelFolder_AndResumes()
    {
        string output = Path.Combine(dir, "run");
        string[] common = ["train", "--mnist", dir, "--config", Path.Combine(dir, "config.json"), "--out", output, "--batch", "4", "--log-every", "1", "--device", "cpu"];
        var (code, stdout, stderr) = Run([.. common, "--steps", "2"]);
        Assert.That(code, Is.EqualTo(0), stderr);
        Assert.That(stdout, Does.Contain("step 2/2").And.Contain("loss"));
        foreach (var f in new[] { "config.json", UNet2DModel.WeightsFileName, "scheduler_config.json", ScoreMatchingTrainer.StateFileName, ScoreMatchingTrainer.LossLogFileName })
            Assert.That(File.Exists(Path.Combine(output, f)), f);

        (code, stdout, stderr) = Run([.. common, "--steps", "3", "--resume"]);
        Assert.That(code, Is.EqualTo(0), stderr);
        Assert.That(stdout, Does.Contain("from step 2 to 3").And.Contain("step 3/3"));
        Assert.That(File.ReadAllLines(Path.Combine(output, ScoreMatchingTrainer.LossLogFileName)), Has.Length.EqualTo(4), "header + steps 1, 2, 3");
    }

    [Test]
    public void BadInvocations_AreOneLineErrors()
    {
        var (code, _, stderr) = Run("train", "--mnist", Path.Combine(dir, "nowhere"), "--out", Path.Combine(dir, "x"), "--device", "cpu");
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("tools/fetch-mnist"));
        Assert.That(stderr.TrimEnd().Split('\n'), Has.Length.EqualTo(1));

        (code, _, stderr) = Run("train", "--mnist", dir, "--out", Path.Combine(dir, "y"), "--batch", "0", "--device", "cpu");
        Assert.That(code, Is.EqualTo(2));
        Assert.That(stderr, Does.Contain("--batch must be at least 1"));

        (code, _, stderr) = Run("train", "--out", Path.Combine(dir, "z"), "--stpes", "3");
        Assert.That(code, Is.EqualTo(2));
        Assert.That(stderr, Does.Contain("--stpes"));
    }
}

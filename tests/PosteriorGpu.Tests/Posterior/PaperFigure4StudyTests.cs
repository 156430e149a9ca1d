using NUnit.Framework;
using PosteriorGpu.Cli;
using PosteriorGpu.Cli.Studies;
using PosteriorGpu.Models.Classifier;
using PosteriorGpu.Models.Data;
using PosteriorGpu.Tests.Cli;
using PosteriorGpu.Tests.Data;

namespace PosteriorGpu.Tests.Posterior;

/// <summary>The Figure 4 study end to end on a tiny random model, a tiny random classifier and synthetic digits: its
/// rows, their L2 and FID, the Langevin time of the fixed schedule; and its task names.</summary>
public class PaperFigure4StudyTests
{
    [Test]
    public void TheStudy_ScoresDpsAndEachStepSize_OnTheHeldOutDigits_AndTheCommandDrawsIt()
    {
        string root = Path.Combine(Path.GetTempPath(), $"posteriorgpu-fig4-{Guid.NewGuid():N}");
        try
        {
            string model = Path.Combine(root, "model"), classifier = Path.Combine(root, "classifier"), mnist = Path.Combine(root, "mnist");
            RandomUNet.Write(RandomUNet.Tiny32, model);
            Directory.CreateDirectory(mnist);
            SyntheticMnist.WriteBars(mnist, 8, MnistFolder.TestImages);
            using (var c = ImageClassifier.Create(TestDevices.Cpu, new ClassifierConfig { ImageSize = 32, ConvChannels = [4, 8], NormNumGroups = 2, Features = 6, NumClasses = 3 }, 1, false))
                c.Save(classifier);
            var settings = new Figure4Settings
            {
                Model = model, Classifier = classifier, Mnist = mnist, Digits = 3, FirstDigit = 5, Tasks = ["inpaint50", "superres4"],
                DpsSteps = 2, Timestep = 20, Levels = 3, StepsPerLevel = 2, StepSizes = [1e-4, 1e-3], Batch = 2, Seed = 3,
            };
            var log = new StringWriter();
            var result = PaperFigure4Study.Run(TestDevices.Cpu, settings, log);
            TestContext.Out.Write(log);
            Assert.That(result.Rows.Select(r => (r.Task, r.Method, r.StepSize)), Is.EqualTo(new (string, string, double?)[]
            {
                ("inpaint50", "dps", null), ("inpaint50", "dps+langevin", 1e-4), ("inpaint50", "dps+langevin", 1e-3),
                ("superres4", "dps", null), ("superres4", "dps+langevin", 1e-4), ("superres4", "dps+langevin", 1e-3),
            }));
            foreach (var row in result.Rows)
            {
                Assert.That(row.L2Mean, Is.GreaterThan(0), row.ToString());   // (a random model's samples are not confined to [-1, 1])
                Assert.That(double.IsFinite(row.L2StandardError) && double.IsFinite(row.Fid) && row.Fid >= 0, Is.True, row.ToString());
                Assert.That(row.LangevinTime, Is.EqualTo(row.StepSize is double h ? 3 * 2 * h : 0).Within(1e-12));
                // The paired difference: the row's L2 minus DPS's on the same digits, so its mean is the difference of the means.
                var dps = result.Rows.First(r => r.Task == row.Task && r.StepSize is null);
                if (row.StepSize is null) Assert.That(double.IsNaN(row.L2PairedDifference) && double.IsNaN(row.L2PairedStandardError), Is.True);
                else
                {
                    Assert.That(row.L2PairedDifference, Is.EqualTo(row.L2Mean - dps.L2Mean).Within(1e-9), row.ToString());
                    Assert.That(double.IsFinite(row.L2PairedStandardError) && row.L2PairedStandardError >= 0, Is.True, row.ToString());
                }
            }
            Assert.That(double.IsFinite(result.TruthFid), Is.True);
            Assert.That(result.Budget, Does.Contain("3 levels x 2"));
            Assert.That(log.ToString(), Does.Contain("inpaint50").And.Contain("superres4"));

            // The figure: two panels per task, the curve (red L2, blue FID) and the dashed DPS line drawn.
            var png = PaperFigure4Command.Plot(result);
            int red = 0, blue = 0;
            for (int y = 0; y < png.Height; y++)
                for (int x = 0; x < png.Width; x++)
                {
                    var (r, g, b) = png[x, y];
                    if (r == 220 && g == 70 && b == 60) red++;
                    if (r == 70 && g == 120 && b == 230) blue++;
                }
            Assert.That(red, Is.GreaterThan(200));
            Assert.That(blue, Is.GreaterThan(200));
            string table = PaperFigure4Command.Markdown(result, settings, "cpu", 1, "posteriorgpu paper-figure4 --digits 4", complete: false);
            Assert.That(table, Does.StartWith("    posteriorgpu paper-figure4 --digits 4").And.Contain("Partial"));
            Assert.That(table.Split('\n').Count(l => l.StartsWith("| inpaint50") || l.StartsWith("| superres4")), Is.EqualTo(6));

            // The command end to end: its files, and a bad task named as a usage error.
            string output = Path.Combine(root, "out");
            var (code, stdout, stderr) = CliRun.Run("paper-figure4", "--model", model, "--classifier", classifier, "--mnist", mnist, "--digits", "2",
                "--first-digit", "5", "--tasks", "inpaint30", "--dps-steps", "1", "--t0", "10", "--levels", "2", "--step-sizes", "1e-4", "--prior-timestep", "5", "--out", output);
            Assert.That(code, Is.Zero, stderr);
            foreach (string f in new[] { "figure4.md", "figure4.json", "figure4.png" }) Assert.That(File.Exists(Path.Combine(output, f)), Is.True, f);
            string written = File.ReadAllText(Path.Combine(output, "figure4.md"));
            Assert.That(written, Does.Contain("--prior-timestep 5").And.Contain("prior score at t = 5").And.Not.Contain("Partial"));
            var bad = CliRun.Run("paper-figure4", "--tasks", "inpaint,phase", "--out", output);
            Assert.That(bad.Code, Is.EqualTo(2));
            Assert.That(bad.Err, Does.Contain("--tasks"));
        }
        finally
        {
            if (Directory.Exists(root)) Directory.Delete(root, true);
        }
    }

    [Test]
    public void TaskNames_MapOntoThePosteriorTasks()
    {
        Assert.That(PaperFigure4Study.Task("inpaint30").Settings.Ratio, Is.EqualTo(0.7).Within(1e-12));
        Assert.That(PaperFigure4Study.Task("inpaint70").Task, Is.EqualTo("inpaint"));
        Assert.That(PaperFigure4Study.Task("superres4").Settings.Factor, Is.EqualTo(4));
        Assert.That(PaperFigure4Study.Task("deblur").Task, Is.EqualTo("deblur"));
        Assert.Throws<UsageException>(() => PaperFigure4Study.Task("inpaint"));
        Assert.Throws<UsageException>(() => PaperFigure4Study.Task("phase"));
    }
}

using System.Text.Json.Nodes;
using NUnit.Framework;
using PosteriorGpu.Cli;
using PosteriorGpu.Cli.Studies;
using PosteriorGpu.Models.Classifier;
using PosteriorGpu.Models.Data;
using PosteriorGpu.Samplers.Posterior;
using PosteriorGpu.Tests.Cli;
using PosteriorGpu.Tests.Data;

namespace PosteriorGpu.Tests.Posterior;

/// <summary>The talk's comparison end to end on a tiny random model, a tiny random classifier and synthetic digits: every
/// method spends the same counted network evaluations per image, the numbers are finite, and the command writes its
/// files; and the budget plans.</summary>
public class TalkComparisonStudyTests
{
    /// <summary>A tiny random model (its weights edited by <paramref name="editModel"/> if given), a tiny random classifier
    /// and 8 synthetic test digits under <paramref name="root"/>.</summary>
    private static (string Model, string Classifier, string Mnist) Inputs(string root, Action<string, float[]>? editModel = null)
    {
        string model = Path.Combine(root, "model"), classifier = Path.Combine(root, "classifier"), mnist = Path.Combine(root, "mnist");
        RandomUNet.Write(RandomUNet.Tiny32, model, edit: editModel);
        Directory.CreateDirectory(mnist);
        SyntheticMnist.WriteBars(mnist, 8, MnistFolder.TestImages);
        using (var c = ImageClassifier.Create(TestDevices.Cpu, new ClassifierConfig { ImageSize = 32, ConvChannels = [4, 8], NormNumGroups = 2, Features = 6, NumClasses = 3 }, 1, false))
            c.Save(classifier);
        return (model, classifier, mnist);
    }

    [Test]
    public void AMethodThatDiverges_IsRecordedAsFailed_AndTheStudyGoesOn()
    {
        string root = Path.Combine(Path.GetTempPath(), $"posteriorgpu-talk-nan-{Guid.NewGuid():N}");
        try
        {
            // A network whose output is NaN: every guided reverse diffusion stops being finite at its first check.
            var (model, classifier, mnist) = Inputs(root, (name, data) => { if (name == "conv_out.bias") Array.Fill(data, float.NaN); });
            var settings = new TalkSettings
            {
                Model = model, Classifier = classifier, Mnist = mnist, Digits = 2, FirstDigit = 5, Budget = 3, Batch = 2, Seed = 3,
                Tasks = ["superres4", "onebit"], Methods = ["dps", "lgd-mc"],
            };
            var log = new StringWriter();
            var result = TalkComparisonStudy.Run(TestDevices.Cpu, settings, log);
            TestContext.Out.Write(log);
            Assert.That(result.Rows, Has.Count.EqualTo(4), "every cell is recorded, the failed ones too");
            foreach (var row in result.Rows)
            {
                Assert.That(row.Failure, Does.Contain("NaN or infinite"), row.ToString());
                Assert.That(double.IsNaN(row.PsnrMean) && double.IsNaN(row.Fid), Is.True, row.ToString());
                // Here the one-chain warm-up already diverges: the timed run never started, so nothing is counted.
                Assert.That(row.CountedEvaluations, Is.Zero, row.ToString());
            }
            Assert.That(log.ToString(), Does.Contain("FAILED"));
            string table = TalkComparisonCommand.Markdown(result, settings, "cpu", 1, "posteriorgpu talk-comparison", true);
            Assert.That(table.Split('\n').Count(l => l.Contains("| failed: ")), Is.EqualTo(4), table);

            // The command writes the failed cells into its JSON as nulls with the reason, and exits 0.
            string output = Path.Combine(root, "out");
            var (code, stdout, stderr) = CliRun.Run("talk-comparison", "--model", model, "--classifier", classifier, "--mnist", mnist, "--digits", "2",
                "--first-digit", "5", "--tasks", "superres4", "--methods", "dps", "--nfe", "5", "--out", output);
            Assert.That(code, Is.Zero, stderr + stdout);
            var row0 = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "comparison.json")))!["rows"]!.AsArray()[0]!;
            Assert.That(row0["psnr_mean"], Is.Null);
            Assert.That(row0["failure"]!.GetValue<string>(), Is.Not.Empty);
        }
        finally
        {
            if (Directory.Exists(root)) Directory.Delete(root, true);
        }
    }

    [Test]
    public void TheStudy_GivesEveryMethodTheSameCountedBudget_OnEachTask_AndTheCommandWritesTheTable()
    {
        string root = Path.Combine(Path.GetTempPath(), $"posteriorgpu-talk-{Guid.NewGuid():N}");
        try
        {
            var (model, classifier, mnist) = Inputs(root);
            var settings = new TalkSettings
            {
                Model = model, Classifier = classifier, Mnist = mnist, Digits = 3, FirstDigit = 5, Budget = 7, Batch = 2, Seed = 3,
            };
            var log = new StringWriter();
            var partial = new List<int>();
            var result = TalkComparisonStudy.Run(TestDevices.Cpu, settings, log, r => partial.Add(r.Rows.Count));
            TestContext.Out.Write(log);
            Assert.That(result.Rows.Select(r => (r.Task, r.Method)), Is.EqualTo(new[]
            {
                ("superres4", "dpnp"), ("superres4", "dps"), ("superres4", "lgd-mc"), ("phase", "dpnp"), ("phase", "dps"), ("phase", "lgd-mc"),
                ("onebit", "dpnp"), ("onebit", "dps"), ("onebit", "lgd-mc"),
            }));
            Assert.That(partial, Is.EqualTo(new[] { 3, 6, 9 }));
            foreach (var row in result.Rows)
            {
                // The same budget, counted at the network: 7 evaluations per image, whatever the method.
                Assert.That(row.Evaluations, Is.EqualTo(7), row.ToString());
                Assert.That(row.CountedEvaluations, Is.EqualTo(7), row.ToString());
                Assert.That(row.CountedBackward, Is.EqualTo(row.Method == "dpnp" ? 0 : 7), row.ToString());
                Assert.That(double.IsFinite(row.PsnrMean) && double.IsFinite(row.PsnrStandardError) && double.IsFinite(row.Fid) && row.Fid >= 0, Is.True, row.ToString());
                Assert.That(row.SecondsPerImage, Is.GreaterThan(0));
            }
            Assert.That(double.IsFinite(result.TruthFid), Is.True);
            string table = TalkComparisonCommand.Markdown(result, settings, "cpu", 1, "posteriorgpu talk-comparison", true);
            Assert.That(table.Split('\n').Count(l => l.StartsWith("| superres4") || l.StartsWith("| phase") || l.StartsWith("| onebit")), Is.EqualTo(9));

            // The command end to end: its files, equal counted budgets in the JSON, and bad names as usage errors.
            string output = Path.Combine(root, "out");
            var (code, stdout, stderr) = CliRun.Run("talk-comparison", "--model", model, "--classifier", classifier, "--mnist", mnist, "--digits", "2",
                "--first-digit", "5", "--tasks", "superres4,onebit", "--methods", "dps,dpnp", "--nfe", "6", "--out", output);
            Assert.That(code, Is.Zero, stderr);
            foreach (string f in new[] { "comparison.md", "comparison.json" }) Assert.That(File.Exists(Path.Combine(output, f)), Is.True, f);
            Assert.That(File.ReadAllText(Path.Combine(output, "comparison.md")), Does.Contain("talk-comparison").And.Contain("--nfe 6"));
            var json = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "comparison.json")))!;
            Assert.That(json["complete"]!.GetValue<bool>(), Is.True);
            var rows = json["rows"]!.AsArray();
            Assert.That(rows.Count, Is.EqualTo(4));
            Assert.That(rows.Select(r => r!["nfe_counted"]!.GetValue<double>()), Is.All.EqualTo(6.0));
            var bad = CliRun.Run("talk-comparison", "--tasks", "superres4,mri", "--out", output);
            Assert.That(bad.Code, Is.EqualTo(2));
            Assert.That(bad.Err, Does.Contain("--tasks"));
            bad = CliRun.Run("talk-comparison", "--methods", "dps,ddrm", "--out", output);
            Assert.That(bad.Code, Is.EqualTo(2));
            Assert.That(bad.Err, Does.Contain("--methods"));
        }
        finally
        {
            if (Directory.Exists(root)) Directory.Delete(root, true);
        }
    }

    [Test]
    public void ThePlans_SpendTheBudgetExactly()
    {
        foreach (int budget in new[] { 5, 6, 12, 24, 50, 51, 100, 1000 })
        {
            var dpnp = TalkComparisonStudy.PlanFor("dpnp", "superres", budget);
            var o = (DpnpOptions)dpnp.Options;
            Assert.That(o.PriorSteps + o.Iterations * (o.Denoiser.Steps + 1), Is.EqualTo(budget));
            Assert.That(dpnp.Evaluations, Is.EqualTo(budget));
            Assert.That(o.PriorSteps, Is.GreaterThanOrEqualTo(budget >= 12 ? 8 : 1));
            Assert.That(((DpsOptions)TalkComparisonStudy.PlanFor("dps", "phase", budget).Options).Steps, Is.EqualTo(budget));
            var lgd = (LgdMcOptions)TalkComparisonStudy.PlanFor("lgd-mc", "onebit", budget).Options;
            Assert.That(lgd.Steps, Is.EqualTo(budget));
            Assert.That(lgd.StepSize, Is.EqualTo(PosteriorTask.DpsZeta("onebit")));
        }
        var fifty = (DpnpOptions)TalkComparisonStudy.PlanFor("dpnp", "superres", 50).Options;
        Assert.That((fifty.PriorSteps, fifty.Iterations), Is.EqualTo((10, 10)));
        Assert.Throws<UsageException>(() => TalkComparisonStudy.PlanFor("dpnp", "superres", 4));
        Assert.Throws<UsageException>(() => TalkComparisonStudy.PlanFor("ddrm", "superres", 50));
        Assert.That(TalkComparisonStudy.Task("phase").Task, Is.EqualTo("phase"));
        Assert.That(TalkComparisonStudy.Task("superres4").Settings.Factor, Is.EqualTo(4));
        Assert.Throws<UsageException>(() => TalkComparisonStudy.Task("mri"));
    }

    [Test]
    public void OperatorNormSquared_IsTheLargestSingularValueSquared()
    {
        // diag(3, 1) padded with a zero row: ||A||^2 = 9.
        float[] a = [3, 0, 0, 1, 0, 0];
        Assert.That(TalkComparisonStudy.OperatorNormSquared(a, 3, 2), Is.EqualTo(9).Within(1e-6));
    }
}

using NUnit.Framework;
using PosteriorGpu.Cli;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Samplers.Diagnostics;
using PosteriorGpu.Samplers.Operators;

namespace PosteriorGpu.Tests.Cli;

public class ImageMetricsTests
{
    [Test]
    public void Psnr_IsTenLogTenOfRangeSquaredOverMse()
    {
        float[] truth = [0f, 0.5f, -1f, 1f];
        float[] est = [0.1f, 0.5f, -1f, 0.8f];   // errors 0.1, 0, 0, -0.2: MSE 0.05 / 4
        Assert.That(ImageMetrics.Psnr(est, truth), Is.EqualTo(10 * Math.Log10(4 / (0.05 / 4))).Within(1e-5));
        Assert.That(ImageMetrics.Psnr(truth, truth), Is.EqualTo(double.PositiveInfinity));
        // Over a subset: pixels 0 and 3 only, MSE 0.05 / 2; a per-plane selection tiles two planes.
        Assert.That(ImageMetrics.Psnr(est, truth, [1f, 0f, 0f, 1f]), Is.EqualTo(10 * Math.Log10(4 / 0.025)).Within(1e-5));
        Assert.That(ImageMetrics.Psnr(est, truth, [1f, 0f]), Is.EqualTo(10 * Math.Log10(4 / (0.01 / 2))).Within(1e-5));
        Assert.That(ImageMetrics.Psnr(est, truth, [0f, 0f]), Is.NaN);
        Assert.Throws<ArgumentException>(() => ImageMetrics.Psnr(est, truth, [1f, 0f, 0f]));
    }

    private static double SsimOneWindow(float[] x, float[] y)
    {
        // Straight from the definition, over the single 7 x 7 window.
        double n = x.Length, mx = x.Average(), my = y.Average();
        double vx = x.Sum(a => (a - mx) * (a - mx)) / (n - 1), vy = y.Sum(b => (b - my) * (b - my)) / (n - 1);
        double cxy = x.Zip(y, (a, b) => (a - mx) * (b - my)).Sum() / (n - 1);
        double c1 = 0.02 * 0.02, c2 = 0.06 * 0.06;
        return (2 * mx * my + c1) * (2 * cxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2));
    }

    [Test]
    public void Ssim_MatchesTheDefinition()
    {
        var x = TestData.Random(49, 1).Select(v => Math.Clamp(v, -1f, 1f)).ToArray();
        var y = TestData.Random(49, 2).Select((v, i) => Math.Clamp(0.6f * x[i] + 0.3f * v, -1f, 1f)).ToArray();
        Assert.That(ImageMetrics.Ssim(y, x, 1, 7, 7), Is.EqualTo(SsimOneWindow(y, x)).Within(1e-7));
        Assert.That(ImageMetrics.Ssim(x, x, 1, 7, 7), Is.EqualTo(1).Within(1e-12));
        // Two windows (7 x 8): the mean of both; two channels: the mean over channels.
        var x8 = TestData.Random(56, 3);
        var y8 = TestData.Random(56, 4);
        float[] Window(float[] img, int left) => Enumerable.Range(0, 49).Select(k => img[k / 7 * 8 + left + k % 7]).ToArray();
        double expected = (SsimOneWindow(Window(x8, 0), Window(y8, 0)) + SsimOneWindow(Window(x8, 1), Window(y8, 1))) / 2;
        Assert.That(ImageMetrics.Ssim(x8, y8, 1, 7, 8), Is.EqualTo(expected).Within(1e-7));
        Assert.That(ImageMetrics.Ssim([.. x, .. x], [.. y, .. x], 2, 7, 7), Is.EqualTo((SsimOneWindow(x, y) + 1) / 2).Within(1e-7));
        Assert.Throws<ArgumentException>(() => ImageMetrics.Ssim(new float[36], new float[36], 1, 6, 6));
    }
}

public class PosteriorTaskTests
{
    [Test]
    public void Measurement_OfAnInput_DoesNotDependOnItsBatch()
    {
        var dev = TestDevices.Cpu;
        using var task = PosteriorTask.Create("cs", dev, 1, 8, 8, new TaskSettings());
        var x = TestData.Random(3 * 64, 9);
        using var all = Tensor.FromHost(dev, x, 3, 1, 8, 8);
        using var yAll = Tensor.Empty(dev, 3, 16);
        task.Measure(all, 0.1f, 4, 0, yAll);
        using var last = Tensor.FromHost(dev, x.AsSpan(128, 64), 1, 1, 8, 8);
        using var yLast = Tensor.Empty(dev, 1, 16);
        task.Measure(last, 0.1f, 4, 2, yLast);
        Assert.That(yLast.ToHost(), Is.EqualTo(yAll.ToHost().AsSpan(32, 16).ToArray()));
        // And it is noisy: A x plus sigma z.
        using var clean = Tensor.Empty(dev, 3, 16);
        task.Operator.Forward(all, clean);
        Assert.That(yAll.ToHost(), Is.Not.EqualTo(clean.ToHost()));
    }

    [Test]
    public void TrivialFill_PutsTheMeanOfTheObservedPixelsIntoTheBox()
    {
        using var task = PosteriorTask.Create("inpaint", TestDevices.Cpu, 1, 8, 8, new TaskSettings { Mask = "box" });
        var missing = task.MissingMask!;
        Assert.That(missing.Sum(), Is.EqualTo(16f), "centred 4 x 4 box");
        var x = Enumerable.Range(0, 64).Select(i => i / 64f).ToArray();
        var fill = task.TrivialFill(x, 1);
        double observedMean = Enumerable.Range(0, 64).Where(i => missing[i] == 0).Average(i => x[i]);
        for (int i = 0; i < 64; i++)
            Assert.That(fill[i], Is.EqualTo(missing[i] != 0 ? (float)observedMean : x[i]).Within(1e-6f), $"pixel {i}");
        Assert.That(missing[2 * 8 + 2], Is.EqualTo(1f));
        Assert.That(missing[1 * 8 + 2], Is.Zero);
    }

    [Test]
    public void EveryTask_BuildsItsOperator_WhichPreviewsAndScoresItsMeasurement()
    {
        var dev = TestDevices.Cpu;
        Assert.That(PosteriorTask.Names, Is.EqualTo(new[] { "inpaint", "superres", "deblur", "cs", "mri", "phase", "onebit" }));
        var x = TestData.Random(2 * 64, 5);
        foreach (string name in PosteriorTask.Names)
        {
            using var task = PosteriorTask.Create(name, dev, 1, 8, 8, new TaskSettings());
            Assert.That(task.Name, Is.EqualTo(name));
            Assert.That(task.Description, Is.Not.Empty);
            Assert.That(task.Operator.InputShape, Is.EqualTo(new[] { 1, 8, 8 }), name);
            using var tx = Tensor.FromHost(dev, x, 2, 1, 8, 8);
            using var y = Tensor.Empty(dev, [2, .. task.Operator.MeasurementShape]);
            task.Measure(tx, 0.05f, 1, 0, y);
            var preview = task.Operator.Preview(y);
            Assert.That(preview, Has.Length.EqualTo(2 * 64).And.All.Matches<float>(float.IsFinite), name);
            var scores = task.Operator.Discrepancy.Evaluate(task.Operator, tx, y, 0.05);
            Assert.That(scores, Has.Length.EqualTo(2), name);
            Assert.That(task.Operator.Discrepancy, Is.SameAs(name == "onebit" ? MeasurementDiscrepancy.SignAgreement : MeasurementDiscrepancy.ResidualOverSigma), name);
            Assert.That(task.MissingMask is not null, Is.EqualTo(name == "inpaint"), name);
        }
    }

    [Test]
    public void UnknownTaskAndBadSettings_AreUsageErrors()
    {
        var dev = TestDevices.Cpu;
        Assert.Throws<UsageException>(() => PosteriorTask.Create("colorize", dev, 1, 8, 8, new TaskSettings()));
        Assert.Throws<UsageException>(() => PosteriorTask.Create("inpaint", dev, 1, 8, 8, new TaskSettings { Mask = "stripes" }));
        Assert.Throws<UsageException>(() => PosteriorTask.Create("superres", dev, 1, 8, 8, new TaskSettings { Factor = 3 }));
        Assert.Throws<UsageException>(() => PosteriorTask.Create("mri", dev, 1, 6, 6, new TaskSettings()), "6 is not a power of two");
        Assert.Throws<UsageException>(() => PosteriorTask.Create("cs", dev, 1, 8, 8, new TaskSettings { Ratio = -1 }));
    }
}

public class RunProgressTests
{
    [Test]
    public void NotOnATerminal_WritesAFewPlainLines()
    {
        var w = new StringWriter();
        using (var bar = CliContext.Plain(new StringWriter(), w).Progress("run", 1000))
        {
            for (int i = 0; i <= 1000; i++) bar.Update(i);
            bar.Finish("done");
        }
        var lines = w.ToString().TrimEnd().Split('\n');
        Assert.That(lines.Length, Is.InRange(11, 13), w.ToString());
        // Ordinal checks: a culture-aware Contains ignores control characters and would find them anywhere.
        Assert.That(w.ToString().Contains('\r'), Is.False, "no carriage returns");
        Assert.That(w.ToString().Contains('\u001b'), Is.False, "no escape codes");
        Assert.That(lines[^2], Does.StartWith("run: 100% 1000/1000 steps"));
        Assert.That(lines[^1], Is.EqualTo("run: done"));
    }

    [Test]
    public void Eta_ComesFromTheSmoothedRate_NotFromTheFirstStep()
    {
        // Step 1 takes 60 s (kernel compilation), then one step a second: after step 11 at 70 s, 89 of 100 steps remain.
        var rate = new RateEstimator();
        rate.Observe(1, 60);
        Assert.That(rate.Remaining(100, 1), Is.Null, "no rate from the first report alone");
        for (int k = 2; k <= 11; k++) rate.Observe(k, 60 + (k - 1));
        Assert.That(rate.Rate, Is.EqualTo(1.0).Within(1e-9));
        Assert.That(rate.Remaining(100, 11)!.Value.TotalSeconds, Is.EqualTo(89).Within(1e-6));
        // The naive estimate (11 steps in 70 s) would have said 566 s.
        // One slow step (10 s) moves the rate a little, not to its own 0.1 steps/s.
        rate.Observe(12, 80);
        Assert.That(rate.Rate, Is.EqualTo(11.0 / 20).Within(1e-9));
        // The window forgets old intervals: after 70 more steps at 2 steps/s the rate is 2.
        for (int k = 1; k <= 140; k++) rate.Observe(12 + k, 80 + k * 0.5);
        Assert.That(rate.Rate, Is.EqualTo(2.0).Within(1e-9));
        Assert.That(RateEstimator.Format(TimeSpan.FromSeconds(3725)), Is.EqualTo("1:02:05"));
        Assert.That(RateEstimator.Format(TimeSpan.FromSeconds(65)), Is.EqualTo("01:05"));
    }
}

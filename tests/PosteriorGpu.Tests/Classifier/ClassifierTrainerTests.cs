using NUnit.Framework;
using PosteriorGpu.Models.Classifier;

namespace PosteriorGpu.Tests.Classifier;

public class ClassifierTrainerTests
{
    /// <summary>Three classes of 8 x 8 images, told apart by which third of the rows is bright, with noise.</summary>
    private static LabelledImages Bars(int count, int seed)
    {
        var rng = new Random(seed);
        var images = new float[count * 64];
        var labels = new byte[count];
        for (int i = 0; i < count; i++)
        {
            int c = rng.Next(3);
            labels[i] = (byte)c;
            for (int y = 0; y < 8; y++)
                for (int x = 0; x < 8; x++)
                    images[i * 64 + y * 8 + x] = (y * 3 / 8 == c ? 0.8f : -0.8f) + (float)(0.4 * (rng.NextDouble() - 0.5));
        }
        return new LabelledImages(images, labels, 1, 8, 8, 3);
    }

    private static string TempFolder() => Path.Combine(Path.GetTempPath(), "pg-clf-train-" + Guid.NewGuid().ToString("N"));

    [Test]
    public void LearnsASeparableTask()
    {
        string folder = TempFolder();
        try
        {
            var options = new ClassifierTrainingOptions { Epochs = 6, BatchSize = 16, LearningRate = 1e-2, WarmupSteps = 5 };
            using var trainer = ClassifierTrainer.Create(TestDevices.Cpu, ImageClassifierTests.Tiny, Bars(160, 1), Bars(90, 2), options, folder);
            using var fresh = ImageClassifier.Create(TestDevices.Cpu, ImageClassifierTests.Tiny, seed: 0, withGradients: false);
            double before = ClassifierTrainer.Accuracy(fresh, Bars(90, 2));
            trainer.Train();
            double after = ClassifierTrainer.Accuracy(trainer.Network, Bars(90, 2));
            TestContext.Out.WriteLine($"held-out accuracy {before:P1} before, {after:P1} after");
            Assert.That(after, Is.GreaterThanOrEqualTo(0.95));
            var log = File.ReadAllLines(Path.Combine(folder, ClassifierTrainer.LogFileName));
            Assert.That(log, Has.Length.EqualTo(1 + 6), "a header and one line per epoch");
            using var saved = ImageClassifier.Load(TestDevices.Cpu, folder);
            Assert.That(ClassifierTrainer.Accuracy(saved, Bars(90, 2)), Is.EqualTo(after));
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, true);
        }
    }

    [Test]
    public void ResumedRun_IsBitwiseTheUninterruptedRun()
    {
        string a = TempFolder(), b = TempFolder();
        try
        {
            var data = Bars(64, 3);
            var options = new ClassifierTrainingOptions { Epochs = 2, BatchSize = 16, LearningRate = 5e-3, WarmupSteps = 2, CheckpointEvery = 100, LogEvery = 5 };
            float[] straight;
            using (var t = ClassifierTrainer.Create(TestDevices.Cpu, ImageClassifierTests.Tiny, data, null, options, a))
            {
                t.Train();
                straight = t.Network.Parameters.Values.ToHost();
            }
            using (var cts = new CancellationTokenSource())
            using (var t = ClassifierTrainer.Create(TestDevices.Cpu, ImageClassifierTests.Tiny, data, null, options, b))
            {
                t.Train(new StopAfter(5, cts), cts.Token);
                Assert.That(t.Step, Is.EqualTo(5));
            }
            using (var t = ClassifierTrainer.Create(TestDevices.Cpu, ImageClassifierTests.Tiny, data, null, options, b, resume: true))
            {
                Assert.That(t.Step, Is.EqualTo(5));
                t.Train();
                Assert.That(t.Network.Parameters.Values.ToHost(), Is.EqualTo(straight));
            }
        }
        finally
        {
            foreach (var f in new[] { a, b }) if (Directory.Exists(f)) Directory.Delete(f, true);
        }
    }

    /// <summary>Cancels once the trainer reports a step at or past <paramref name="step"/> (LogEvery must divide it).</summary>
    private sealed class StopAfter(int step, CancellationTokenSource cts) : IProgress<ClassifierProgress>
    {
        public void Report(ClassifierProgress value)
        {
            if (value.Step >= step) cts.Cancel();
        }
    }

    [Test]
    public void Options_AreValidated()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new ClassifierTrainingOptions { Epochs = 0 }.Validate());
        Assert.That(ex!.Message, Does.Contain("Epochs"));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ClassifierTrainingOptions { FinalLearningRateFraction = 2 }.Validate());
        var o = new ClassifierTrainingOptions { LearningRate = 1, WarmupSteps = 10, FinalLearningRateFraction = 0.1 };
        Assert.That(o.LearningRateAt(5, 110), Is.EqualTo(0.5).Within(1e-12));
        Assert.That(o.LearningRateAt(10, 110), Is.EqualTo(1).Within(1e-12));
        Assert.That(o.LearningRateAt(110, 110), Is.EqualTo(0.1).Within(1e-12));
    }
}

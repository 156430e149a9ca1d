using System.Globalization;
using NUnit.Framework;
using PosteriorGpu.Kernels.Optim;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.IO;
using PosteriorGpu.Models.UNet;
using PosteriorGpu.Models.Training;

namespace PosteriorGpu.Tests.Training;

public class TrainingTests
{
    [Test]
    public void AdamW_MatchesReference()
    {
        int n = 5000;
        var p = TestData.Random(n, 1);
        var g = TestData.Random(n, 2);
        var m = TestData.Random(n, 3, 0.1f);
        var v = TestData.Random(n, 4, 0.1f).Select(Math.Abs).ToArray();
        var s = new AdamW.Settings(1e-2f, 0.9f, 0.99f, 1e-8f, 0.1f, 7, 0.5f);
        var dev = TestDevices.Cpu;
        using var tp = Tensor.FromHost(dev, p, n);
        using var tg = Tensor.FromHost(dev, g, n);
        using var tm = Tensor.FromHost(dev, m, n);
        using var tv = Tensor.FromHost(dev, v, n);
        AdamW.Run(tp, tg, tm, tv, s);
        var p0 = (float[])p.Clone();
        AdamW.Reference(p, g, m, v, s);
        TestData.AssertClose(tp.ToHost(), p, 1e-6, "adamw p");
        TestData.AssertClose(tm.ToHost(), m, 1e-6, "adamw m");
        TestData.AssertClose(tv.ToHost(), v, 1e-6, "adamw v");
        // The very first step of Adam moves every weight by about lr against its gradient's sign.
        var q = (float[])p0.Clone();
        var z = new float[n];
        var z2 = new float[n];
        AdamW.Reference(q, g, z, z2, new AdamW.Settings(1e-2f, 0.9f, 0.999f, 1e-8f, 0f, 1, 1f));
        for (int i = 0; i < 100; i++) Assert.That(q[i] - p0[i], Is.EqualTo(-1e-2 * Math.Sign(g[i])).Within(1e-5));
    }

    /// <summary>1-channel 8x8 images of bright bars on a dark background: a structured distribution
    /// a tiny network learns something about in a few dozen steps.</summary>
    internal static TrainingImages Bars(int count, int seed, int size = 8)
    {
        var rng = new Random(seed);
        var data = new float[count * size * size];
        for (int i = 0; i < count; i++)
        {
            bool vertical = rng.Next(2) == 0;
            int at = rng.Next(1, size - 1);
            for (int y = 0; y < size; y++)
                for (int x = 0; x < size; x++)
                    data[i * size * size + y * size + x] = Math.Abs((vertical ? x : y) - at) <= 0 ? 1f : -1f;
        }
        return new TrainingImages(data, 1, size, size);
    }

    internal static UNet2DConfig Tiny => new()
    {
        SampleSize = 8,
        InChannels = 1,
        OutChannels = 1,
        BlockOutChannels = [8, 16],
        LayersPerBlock = 1,
        NormNumGroups = 4,
        AttentionHeadDim = 8,
        DownBlockTypes = ["DownBlock2D", "AttnDownBlock2D"],
        UpBlockTypes = ["AttnUpBlock2D", "UpBlock2D"],
    };

    private static string TempFolder() => Path.Combine(Path.GetTempPath(), "pg-train-" + Guid.NewGuid().ToString("N"));

    private static double[] Losses(string folder) => File.ReadAllLines(Path.Combine(folder, ScoreMatchingTrainer.LossLogFileName))
        .Skip(1).Select(l => double.Parse(l.Split(',')[1], CultureInfo.InvariantCulture)).ToArray();

    [Test]
    public void FiftySteps_DecreaseTheLoss_AndWriteALoadableModel()
    {
        var dir = TempFolder();
        try
        {
            var options = new TrainingOptions { BatchSize = 8, Steps = 50, LearningRate = 2e-3, WarmupSteps = 5, LogEvery = 10, CheckpointEvery = 25, Seed = 1 };
            var reports = new List<TrainingProgress>();
            using (var trainer = ScoreMatchingTrainer.Create(TestDevices.Cpu, Tiny, Bars(256, 1), options, dir))
                trainer.Train(new SyncProgress<TrainingProgress>(reports.Add));
            var losses = Losses(dir);
            TestContext.Out.WriteLine("loss per 10 steps: " + string.Join(", ", losses.Select(l => l.ToString("F4"))));
            Assert.That(losses, Has.Length.EqualTo(5));
            Assert.That(reports.Select(r => r.Step), Is.EqualTo(new[] { 10, 20, 30, 40, 50 }));
            Assert.That(losses[^1], Is.LessThan(0.6 * losses[0]), "the loss must fall");
            using var model = UNet2DModel.Load(TestDevices.Cpu, dir);
            Assert.That(File.Exists(Path.Combine(dir, "scheduler_config.json")));
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }

    [Test]
    public void ResumedRun_IsBitwiseTheUninterruptedRun()
    {
        var straight = TempFolder();
        var resumed = TempFolder();
        try
        {
            var data = Bars(64, 2);
            var options = new TrainingOptions { BatchSize = 8, Steps = 12, LogEvery = 3, CheckpointEvery = 100, Seed = 4 };
            using (var t = ScoreMatchingTrainer.Create(TestDevices.Cpu, Tiny, data, options, straight)) t.Train();
            using (var t = ScoreMatchingTrainer.Create(TestDevices.Cpu, Tiny, data, options with { Steps = 5 }, resumed)) t.Train();
            using (var t = ScoreMatchingTrainer.Create(TestDevices.Cpu, Tiny, data, options, resumed, resume: true))
            {
                Assert.That(t.Step, Is.EqualTo(5));
                t.Train();
            }
            var a = SafeTensorsFile.Read(Path.Combine(straight, ScoreMatchingTrainer.StateFileName));
            var b = SafeTensorsFile.Read(Path.Combine(resumed, ScoreMatchingTrainer.StateFileName));
            foreach (var name in a.Names)
                Assert.That(b.GetFloat32(name), Is.EqualTo(a.GetFloat32(name)), name);
            // The resumed log has an extra line at step 5; from step 9 on, both average the same steps.
            Assert.That(Losses(resumed).TakeLast(2), Is.EqualTo(Losses(straight).TakeLast(2)));
        }
        finally
        {
            foreach (var d in new[] { straight, resumed }) if (Directory.Exists(d)) Directory.Delete(d, true);
        }
    }

    [Test]
    public void Cancellation_LeavesAResumableCheckpoint()
    {
        var dir = TempFolder();
        try
        {
            using var cts = new CancellationTokenSource();
            var options = new TrainingOptions { BatchSize = 4, Steps = 1000, LogEvery = 1, CheckpointEvery = 1000 };
            using (var t = ScoreMatchingTrainer.Create(TestDevices.Cpu, Tiny, Bars(16, 3), options, dir))
                t.Train(new SyncProgress<TrainingProgress>(p => { if (p.Step == 3) cts.Cancel(); }), cts.Token);
            using var again = ScoreMatchingTrainer.Create(TestDevices.Cpu, Tiny, Bars(16, 3), options, dir, resume: true);
            Assert.That(again.Step, Is.EqualTo(3));
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
        }
    }

    [Test]
    public void MismatchedImages_AreAClearError()
    {
        var e = Assert.Throws<ArgumentException>(() => ScoreMatchingTrainer.Create(TestDevices.Cpu, Tiny with { SampleSize = 16 }, Bars(4, 1),
            new TrainingOptions(), TempFolder()));
        Assert.That(e!.Message, Does.Contain("8x8").And.Contain("16"));
    }

    /// <summary>IProgress that reports on the calling thread (Progress&lt;T&gt; posts to the thread pool).</summary>
    private sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}

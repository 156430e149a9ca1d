using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Models.Classifier;
using PosteriorGpu.Models.Data;

namespace PosteriorGpu.Cli;

/// <summary>`posteriorgpu train-classifier`: trains the MNIST classifier whose penultimate features
/// `posteriorgpu fid` compares (the default architecture of <see cref="ClassifierConfig"/>), reporting
/// the test-set accuracy after every epoch.</summary>
internal static class TrainClassifierCommand
{
    /// <summary>What to train and where.</summary>
    /// <param name="Out">Output folder (classifier, training state, log.csv).</param>
    /// <param name="Mnist">MNIST folder (null: the default cache).</param>
    /// <param name="Options">The training options.</param>
    /// <param name="Limit">Use the first this many training images (null: all 60,000).</param>
    /// <param name="Resume">Continue from the folder's training state when there is one.</param>
    /// <param name="Device">The device kind (null: the default choice).</param>
    public sealed record Settings(string Out, string? Mnist, ClassifierTrainingOptions Options, int? Limit, bool Resume, DeviceKind? Device);

    /// <summary>The `train-classifier` command's options and parsing glue.</summary>
    public static Command Create(CommandSetup setup)
    {
        var d = new ClassifierTrainingOptions();
        var output = CliOptions.Path("--out", "out/mnist-classifier", "the output folder (classifier, training state, log.csv)");
        var mnist = CliOptions.Text("--mnist", "the MNIST folder (from tools/fetch-mnist)", "dir");
        var epochs = CliOptions.Int("--epochs", d.Epochs, "epochs over the training images", min: 1);
        var batch = CliOptions.Int("--batch", d.BatchSize, "images per step", min: 1);
        var lr = CliOptions.Double("--lr", d.LearningRate, "peak learning rate (AdamW, cosine decay)", positive: true);
        var seed = CliOptions.Int("--seed", d.Seed, "seed of the initial weights and the shuffling", min: 0);
        var limit = CliOptions.OptionalInt("--limit", "use only the first this many training images", min: 1);
        var resume = CliOptions.Flag("--resume", "continue from the output folder's training state when there is one");
        var command = new Command("train-classifier", "train the MNIST classifier whose features `fid` compares (reports test accuracy per epoch)")
        {
            output, mnist, epochs, batch, lr, seed, limit, resume,
        };
        command.SetAction(p => Execute(new Settings(p.GetValue(output)!, p.GetValue(mnist),
            d with { Epochs = p.GetValue(epochs), BatchSize = p.GetValue(batch), LearningRate = p.GetValue(lr), Seed = p.GetValue(seed) },
            p.GetValue(limit), p.GetValue(resume), setup.DeviceOf(p)), setup.Context.Out, setup.Context.Cancel));
        return command;
    }

    /// <summary>Trains as <paramref name="s"/> says; returns the exit code.</summary>
    public static int Execute(Settings s, TextWriter stdout, CancellationToken cancellationToken = default)
    {
        var config = new ClassifierConfig();
        var train = Load(MnistFolder.TrainImages, MnistFolder.TrainLabels, s.Mnist, s.Limit);
        var test = Load(MnistFolder.TestImages, MnistFolder.TestLabels, s.Mnist, null);
        using var dev = GpuDevice.Open(s.Device);
        using var trainer = ClassifierTrainer.Create(dev, config, train, test, s.Options, s.Out, s.Resume);
        stdout.WriteLine($"train-classifier: {trainer.Network.Parameters.Count:N0} parameters on {dev.Description}; {train.Count} images; " +
                         $"batch {s.Options.BatchSize}; from step {trainer.Step} to {trainer.TotalSteps} ({s.Options.Epochs} epochs); writing {s.Out}");
        int startStep = trainer.Step;
        var clock = Stopwatch.StartNew();
        trainer.Train(new LineProgress(r =>
        {
            double perStep = clock.Elapsed.TotalSeconds / Math.Max(1, r.Step - startStep);
            var eta = TimeSpan.FromSeconds(perStep * (r.Steps - r.Step));
            string test = double.IsNaN(r.TestAccuracy) ? "" : string.Create(CultureInfo.InvariantCulture, $"  test accuracy {r.TestAccuracy:P2}");
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"step {r.Step}/{r.Steps}  epoch {r.Epoch}  loss {r.Loss:F4}  accuracy {r.Accuracy:P2}  lr {r.LearningRate:G3}  " +
                $"{perStep:F3} s/step  eta {(int)eta.TotalHours}:{eta:mm\\:ss}{test}"));
        }), cancellationToken);
        double accuracy = ClassifierTrainer.Accuracy(trainer.Network, test);
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"train-classifier: step {trainer.Step}/{trainer.TotalSteps}; test accuracy {accuracy:P2} on {test.Count} images; the classifier is in {s.Out}"));
        return 0;
    }

    /// <summary>MNIST images (padded to 32 x 32, in [-1, 1]) with their labels.</summary>
    internal static LabelledImages Load(string imagesFile, string labelsFile, string? folder, int? limit)
    {
        var images = MnistImages.Load(MnistFolder.File(imagesFile, folder));
        var labels = MnistImages.LoadLabels(MnistFolder.File(labelsFile, folder));
        if (labels.Length != images.Count)
            throw new UsageException($"{labelsFile}: {labels.Length} labels for {images.Count} images in {imagesFile}");
        int count = limit ?? images.Count;
        if (count < 1 || count > images.Count) throw new UsageException($"--limit must be in [1, {images.Count}] but got {count}");
        return new LabelledImages(images.ToArray(0, count), labels[..count], 1, MnistImages.Size, MnistImages.Size, 10);
    }

    private sealed class LineProgress(Action<ClassifierProgress> report) : IProgress<ClassifierProgress>
    {
        public void Report(ClassifierProgress value) => report(value);
    }
}

using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using PosteriorGpu.Kernels.Activations;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Optim;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.IO;
using PosteriorGpu.Models.Training;

namespace PosteriorGpu.Models.Classifier;

/// <summary>Where classifier training is: the step just finished, its epoch, the training loss and accuracy
/// averaged since the last report, and (at an epoch's end, else NaN) the held-out accuracy.</summary>
public readonly record struct ClassifierProgress(int Step, int Steps, int Epoch, double Loss, double Accuracy,
    double TestAccuracy, double LearningRate, TimeSpan Elapsed);

/// <summary>
/// Trains an <see cref="ImageClassifier"/> by minimising the mean softmax cross-entropy with AdamW
/// (warm-up, then cosine decay). Writes to an output folder: the classifier (config.json,
/// model.safetensors), training_state.safetensors (weights, Adam moments and the step, to resume from)
/// and log.csv (one line per epoch with the held-out accuracy). Each epoch is a permutation drawn from
/// (seed, epoch), so a resumed run continues exactly as an uninterrupted one would.
/// Holds device memory: dispose it. Not thread-safe.
/// </summary>
public sealed class ClassifierTrainer : IDisposable
{
    /// <summary>The training-state file in the output folder.</summary>
    public const string StateFileName = "training_state.safetensors";

    /// <summary>The per-epoch log in the output folder.</summary>
    public const string LogFileName = "log.csv";

    private readonly ImageClassifier net;
    private readonly LabelledImages train;
    private readonly LabelledImages? test;
    private readonly ClassifierTrainingOptions options;
    private readonly string folder;
    private readonly Tensor m, v;
    private double secondsBefore;

    private ClassifierTrainer(ImageClassifier net, LabelledImages train, LabelledImages? test, ClassifierTrainingOptions options, string folder)
    {
        this.net = net;
        this.train = train;
        this.test = test;
        this.options = options;
        this.folder = folder;
        m = Tensor.Zeros(net.Device, net.Parameters.Count);
        v = Tensor.Zeros(net.Device, net.Parameters.Count);
    }

    /// <summary>The network being trained.</summary>
    public ImageClassifier Network => net;

    /// <summary>Optimiser steps done so far.</summary>
    public int Step { get; private set; }

    /// <summary>Steps per epoch: floor(training images / batch).</summary>
    public int StepsPerEpoch => Math.Max(1, train.Count / options.BatchSize);

    /// <summary>Steps of the whole run.</summary>
    public int TotalSteps => StepsPerEpoch * options.Epochs;

    /// <summary>A trainer for a new network, or, when <paramref name="resume"/> and the folder holds a
    /// training state, the network, optimiser moments and step saved there (its config.json must match).</summary>
    /// <exception cref="ArgumentException">The images do not fit the architecture.</exception>
    /// <exception cref="CheckpointFormatException">The saved state is malformed or belongs to another architecture.</exception>
    public static ClassifierTrainer Create(GpuDevice device, ClassifierConfig config, LabelledImages train, LabelledImages? test,
        ClassifierTrainingOptions options, string folder, bool resume = false)
    {
        options.Validate();
        config.Validate();
        foreach (var set in test is null ? [train] : new[] { train, test })
            if (set.Channels != config.InChannels || set.Height != config.ImageSize || set.Width != config.ImageSize)
                throw new ArgumentException($"classifier training: the images are {set.Channels}x{set.Height}x{set.Width} but the classifier takes {config.InChannels}x{config.ImageSize}x{config.ImageSize}");
        string statePath = Path.Combine(folder, StateFileName);
        bool restore = resume && File.Exists(statePath);
        if (restore && !ClassifierConfig.Load(Path.Combine(folder, ImageClassifier.ConfigFileName)).Equals(config))
            throw new CheckpointFormatException(statePath, "the saved classifier's config.json differs from the requested architecture; resume with the same config");
        var net = ImageClassifier.Create(device, config, options.Seed, withGradients: true);
        try
        {
            var trainer = new ClassifierTrainer(net, train, test, options, folder);
            if (restore) trainer.LoadState(statePath);
            return trainer;
        }
        catch
        {
            net.Dispose();
            throw;
        }
    }

    private void LoadState(string path) => (_, Step, secondsBefore) = AdamCheckpoint.Read(path, net.Parameters, m, v);

    /// <summary>Trains up to <see cref="TotalSteps"/>, checkpointing as configured, at every epoch's end
    /// (with the held-out accuracy in log.csv) and when cancelled (then returns normally).</summary>
    /// <exception cref="InvalidOperationException">The loss became NaN or infinite.</exception>
    public void Train(IProgress<ClassifierProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        Directory.CreateDirectory(folder);
        string logPath = Path.Combine(folder, LogFileName);
        if (Step == 0 || !File.Exists(logPath)) File.WriteAllText(logPath, "epoch,step,train_loss,train_accuracy,test_accuracy,seconds\n");
        var device = net.Device;
        var clock = Stopwatch.StartNew();
        int n = options.BatchSize, item = train.ItemLength, classes = net.Config.NumClasses;
        using var images = Tensor.Empty(device, n, train.Channels, train.Height, train.Width);
        using var labels = Tensor.Empty(device, n);
        using var loss = Tensor.Empty(device, n);
        using var dLogits = Tensor.Empty(device, n, classes);
        var hostImages = new float[n * item];
        var hostLabels = new float[n];
        var hostLoss = new float[n];
        var hostLogits = new float[n * classes];
        double lossSum = 0, epochLoss = 0;
        int correct = 0, seen = 0, epochCorrect = 0, epochSeen = 0, since = 0;
        while (Step < TotalSteps)
        {
            if (cancellationToken.IsCancellationRequested) break;
            int step = Step + 1, epoch = (step - 1) / StepsPerEpoch, position = (step - 1) % StepsPerEpoch;
            var perm = Permutation(epoch);
            for (int i = 0; i < n; i++)
            {
                int index = perm[position * n + i];
                Array.Copy(train.Images, (long)index * item, hostImages, (long)i * item, item);
                hostLabels[i] = train.Labels[index];
            }
            images.CopyFrom(hostImages);
            labels.CopyFrom(hostLabels);
            var logits = net.Forward(images);
            logits.CopyTo(hostLogits);
            SoftmaxCrossEntropy.Run(logits, labels, 1f / n, loss, dLogits);
            net.Backward(dLogits);
            loss.CopyTo(hostLoss);
            double batchLoss = hostLoss.Sum(x => (double)x) / n;
            if (!double.IsFinite(batchLoss))
                throw new InvalidOperationException($"classifier training: at step {step} the loss is {batchLoss}; lower the learning rate");
            int batchCorrect = 0;
            for (int i = 0; i < n; i++) if (ArgMax(hostLogits.AsSpan(i * classes, classes)) == (int)hostLabels[i]) batchCorrect++;
            double lr = options.LearningRateAt(step, TotalSteps);
            AdamW.Run(net.Parameters.Values, net.Parameters.Gradients!, m, v,
                new AdamW.Settings((float)lr, 0.9f, 0.999f, 1e-8f, (float)options.WeightDecay, step, 1f));
            Step = step;
            lossSum += batchLoss;
            epochLoss += batchLoss;
            correct += batchCorrect;
            epochCorrect += batchCorrect;
            seen += n;
            epochSeen += n;
            since++;
            bool epochEnd = position == StepsPerEpoch - 1;
            double testAccuracy = double.NaN;
            if (epochEnd)
            {
                if (test is not null) testAccuracy = Accuracy(net, test, 500);
                double seconds = secondsBefore + clock.Elapsed.TotalSeconds;
                File.AppendAllText(logPath, string.Create(CultureInfo.InvariantCulture,
                    $"{epoch + 1},{step},{epochLoss / Math.Max(1, epochSeen / n):G6},{epochCorrect / (double)Math.Max(1, epochSeen):F5},{testAccuracy:F5},{seconds:F1}\n"));
                epochLoss = 0;
                epochCorrect = epochSeen = 0;
            }
            if (step % options.LogEvery == 0 || epochEnd || step == TotalSteps)
            {
                progress?.Report(new ClassifierProgress(step, TotalSteps, epoch + 1, lossSum / since, correct / (double)seen, testAccuracy, lr,
                    TimeSpan.FromSeconds(secondsBefore + clock.Elapsed.TotalSeconds)));
                lossSum = 0;
                correct = seen = since = 0;
            }
            if (step % options.CheckpointEvery == 0 || epochEnd) Checkpoint(secondsBefore + clock.Elapsed.TotalSeconds);
        }
        if (Step % options.CheckpointEvery != 0 && Step % StepsPerEpoch != 0) Checkpoint(secondsBefore + clock.Elapsed.TotalSeconds);
        secondsBefore += clock.Elapsed.TotalSeconds;
    }

    private int[]? cachedPerm;
    private int cachedEpoch = -1;

    private int[] Permutation(int epoch)
    {
        if (cachedPerm is not null && cachedEpoch == epoch) return cachedPerm;
        var p = Enumerable.Range(0, train.Count).ToArray();
        new Random(HashCode.Combine(options.Seed, epoch, 0xc1a5)).Shuffle(p);
        cachedPerm = p;
        cachedEpoch = epoch;
        return p;
    }

    /// <summary>The fraction of <paramref name="set"/> that <paramref name="classifier"/> labels right
    /// (the arg-max of the logits), evaluated in batches of <paramref name="batch"/>.</summary>
    public static double Accuracy(ImageClassifier classifier, LabelledImages set, int batch = 500)
    {
        int correct = 0, item = set.ItemLength, classes = classifier.Config.NumClasses;
        var hostLogits = new float[batch * classes];
        for (int start = 0; start < set.Count; start += batch)
        {
            int count = Math.Min(batch, set.Count - start);
            using var x = Tensor.FromHost(classifier.Device, set.Images.AsSpan(start * item, count * item), count, set.Channels, set.Height, set.Width);
            var logits = classifier.Forward(x);
            logits.CopyTo(hostLogits.AsSpan(0, count * classes));
            for (int i = 0; i < count; i++)
                if (ArgMax(hostLogits.AsSpan(i * classes, classes)) == set.Labels[start + i]) correct++;
        }
        return correct / (double)set.Count;
    }

    private static int ArgMax(ReadOnlySpan<float> row)
    {
        int best = 0;
        for (int k = 1; k < row.Length; k++) if (row[k] > row[best]) best = k;
        return best;
    }

    /// <summary>Writes the classifier folder and the resumable state.</summary>
    public void Checkpoint(double seconds)
    {
        Directory.CreateDirectory(folder);
        var weights = net.Parameters.Values.ToHost();
        var metadata = AdamCheckpoint.Metadata(Step, seconds, net.Device.Description, options);
        net.Save(folder, weights, metadata);
        AdamCheckpoint.Write(Path.Combine(folder, StateFileName), net.Parameters, weights, m, v, Step, metadata);
    }

    /// <summary>Frees the network and the optimiser state.</summary>
    public void Dispose()
    {
        m.Dispose();
        v.Dispose();
        net.Dispose();
    }
}

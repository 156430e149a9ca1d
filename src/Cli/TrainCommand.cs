using System.Diagnostics;
using System.Globalization;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Models.Data;
using PosteriorGpu.Models.UNet;
using PosteriorGpu.Models.Training;

namespace PosteriorGpu.Cli;

/// <summary>`posteriorgpu train`: denoising score matching of a diffusers U-Net on MNIST (padded to
/// 32 x 32, scaled to [-1, 1]); writes a diffusers model folder (EMA weights), a resumable training
/// state and loss.csv into --out.</summary>
internal static class TrainCommand
{
    /// <summary>The options this command takes (besides --verbose and --resume).</summary>
    public static readonly string[] Known =
        ["mnist", "config", "out", "batch", "steps", "lr", "warmup", "seed", "ema-decay", "max-grad-norm", "weight-decay",
         "checkpoint-every", "log-every", "limit", "device"];

    /// <summary>The default architecture: a small 1-channel 32 x 32 DDPM U-Net (block_out_channels
    /// 16/32/32, one resnet per level, attention in the 8 x 8 mid block), sized to train on a CPU.</summary>
    public static UNet2DConfig MnistSmall => new()
    {
        SampleSize = MnistImages.Size,
        InChannels = 1,
        OutChannels = 1,
        BlockOutChannels = [16, 32, 32],
        LayersPerBlock = 1,
        NormNumGroups = 8,
        AttentionHeadDim = 8,
        DownBlockTypes = ["DownBlock2D", "DownBlock2D", "DownBlock2D"],
        UpBlockTypes = ["UpBlock2D", "UpBlock2D", "UpBlock2D"],
        NumTrainTimesteps = 1000,
    };

    /// <summary>Runs the command; returns the exit code.</summary>
    public static int Run(Options o, TextWriter stdout, CancellationToken cancellationToken = default)
    {
        string outDir = o.Required("out", "the output folder (model, training state, loss.csv)");
        var config = o.Get("config") is { } path ? UNet2DConfig.Load(path) : MnistSmall;
        var defaults = new TrainingOptions();
        var options = new TrainingOptions
        {
            BatchSize = o.Int("batch", 32),
            Steps = o.Int("steps", 5000),
            LearningRate = o.Double("lr", defaults.LearningRate),
            WarmupSteps = o.Int("warmup", 100),
            Seed = o.Int("seed", 0),
            EmaDecay = o.Double("ema-decay", 0.995),
            MaxGradNorm = o.Double("max-grad-norm", defaults.MaxGradNorm),
            WeightDecay = o.Double("weight-decay", defaults.WeightDecay),
            CheckpointEvery = o.Int("checkpoint-every", 100),
            LogEvery = o.Int("log-every", 10),
        };
        var mnist = MnistImages.Load(MnistFolder.File(MnistFolder.TrainImages, o.Get("mnist")));
        int limit = o.Int("limit", mnist.Count);
        if (limit < 1 || limit > mnist.Count) throw new UsageException($"--limit must be in [1, {mnist.Count}] but got {limit}");
        var data = new TrainingImages(mnist.ToArray(0, limit), 1, MnistImages.Size, MnistImages.Size);

        using var dev = GpuDevice.Open(DeviceKinds.Parse(o.Get("device"), "--device"));
        using var trainer = ScoreMatchingTrainer.Create(dev, config, data, options, outDir, resume: o.Flag("resume"));
        stdout.WriteLine($"train: {trainer.Network.Parameters.Count:N0} parameters on {dev.Description}; {limit} images; " +
                         $"batch {options.BatchSize}; from step {trainer.Step} to {options.Steps}; writing {outDir}");
        int startStep = trainer.Step;
        var clock = Stopwatch.StartNew();
        var progress = new LineProgress(r =>
        {
            double perStep = clock.Elapsed.TotalSeconds / Math.Max(1, r.Step - startStep);
            var eta = TimeSpan.FromSeconds(perStep * (r.Steps - r.Step));
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"step {r.Step}/{r.Steps}  loss {r.Loss:F5}  grad-norm {r.GradNorm:F3}  lr {r.LearningRate:G3}  " +
                $"{perStep:F2} s/step  {options.BatchSize / perStep:F1} images/s  eta {(int)eta.TotalHours}:{eta:mm\\:ss}"));
        });
        trainer.Train(progress, cancellationToken);
        stdout.WriteLine(cancellationToken.IsCancellationRequested
            ? $"train: stopped at step {trainer.Step}; resume with the same command and --resume"
            : $"train: done, {trainer.Step} steps; the EMA model is in {outDir}");
        return 0;
    }

    private sealed class LineProgress(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }
}

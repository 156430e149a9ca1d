using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Models.Data;
using PosteriorGpu.Models.UNet;
using PosteriorGpu.Models.Training;

namespace PosteriorGpu.Cli;

/// <summary>The typed settings of `posteriorgpu train`.</summary>
internal sealed record TrainSettings
{
    /// <summary>--out.</summary>
    public string Out { get; init; } = Path.Combine("out", "train");

    /// <summary>--config (null: <see cref="TrainCommand.MnistSmall"/>).</summary>
    public string? Config { get; init; }

    /// <summary>--mnist (null: the default MNIST folder).</summary>
    public string? Mnist { get; init; }

    /// <summary>--limit (null: every training image).</summary>
    public int? Limit { get; init; }

    /// <summary>--resume.</summary>
    public bool Resume { get; init; }

    /// <summary>--batch, --steps, --lr, --warmup, --seed, --ema-decay, --max-grad-norm, --weight-decay, --checkpoint-every, --log-every.</summary>
    public TrainingOptions Training { get; init; } = TrainCommand.DefaultOptions;

    /// <summary>--device.</summary>
    public DeviceKind? Device { get; init; }
}

/// <summary>`posteriorgpu train`: denoising score matching of a diffusers U-Net on MNIST (padded to
/// 32 x 32, scaled to [-1, 1]); writes a diffusers model folder (EMA weights), a resumable training
/// state and loss.csv into --out.</summary>
internal static class TrainCommand
{
    /// <summary>The command's training defaults.</summary>
    public static TrainingOptions DefaultOptions => new()
    {
        BatchSize = 32, Steps = 5000, WarmupSteps = 100, EmaDecay = 0.995, CheckpointEvery = 100, LogEvery = 10,
    };

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

    /// <summary>Runs the command; returns the exit code (130 when <see cref="CliContext.Cancel"/> stopped it: the state is saved).</summary>
    public static int Run(TrainSettings s, CliContext cli)
    {
        string outDir = s.Out;
        var config = s.Config is { } path ? UNet2DConfig.Load(path) : MnistSmall;
        var options = s.Training;
        var mnist = MnistImages.Load(MnistFolder.File(MnistFolder.TrainImages, s.Mnist));
        int limit = s.Limit ?? mnist.Count;
        if (limit < 1 || limit > mnist.Count) throw new UsageException($"--limit must be in [1, {mnist.Count}] but got {limit}");
        var data = new TrainingImages(mnist.ToArray(0, limit), 1, MnistImages.Size, MnistImages.Size);
        var stdout = cli.Out;
        var cancellationToken = cli.Cancel;

        using var dev = GpuDevice.Open(s.Device);
        using var trainer = ScoreMatchingTrainer.Create(dev, config, data, options, outDir, resume: s.Resume);
        stdout.WriteLine($"train: {trainer.Network.Parameters.Count:N0} parameters on {dev.Description}; {limit} images; " +
                         $"batch {options.BatchSize}; from step {trainer.Step} to {options.Steps}; writing {outDir}");
        int startStep = trainer.Step;
        var clock = Stopwatch.StartNew();
        using (var bar = cli.Progress("train", options.Steps, "steps"))
        {
            bar.Update(startStep);
            trainer.Train(new Relay<TrainingProgress>(r =>
            {
                double perStep = clock.Elapsed.TotalSeconds / Math.Max(1, r.Step - startStep);
                string loss = string.Create(CultureInfo.InvariantCulture, $"loss {r.Loss:F5}");
                bar.Update(r.Step, loss);
                bar.Log(string.Create(CultureInfo.InvariantCulture,
                    $"step {r.Step}/{r.Steps}  {loss}  grad-norm {r.GradNorm:F3}  lr {r.LearningRate:G3}  " +
                    $"{perStep:F2} s/step  {options.BatchSize / perStep:F1} images/s"));
            }), cancellationToken);
        }
        if (cancellationToken.IsCancellationRequested)
        {
            stdout.WriteLine($"train: stopped at step {trainer.Step}; resume with the same command and --resume");
            return ExitCodes.Interrupted;
        }
        stdout.WriteLine($"train: done, {trainer.Step} steps; the EMA model is in {outDir}");
        return ExitCodes.Ok;
    }

    /// <summary>The `train` command's options and parsing glue.</summary>
    public static Command Create(CommandSetup setup)
    {
        var d = DefaultOptions;
        var output = CliOptions.Path("--out", new TrainSettings().Out, "output folder: the model (diffusers folder, EMA weights), the resumable training state, loss.csv");
        var config = CliOptions.Text("--config", "a diffusers UNet2DModel config.json (default: a small 1-channel 32 x 32 U-Net, 16/32/32 channels)", "file");
        var mnist = CliOptions.Text("--mnist", $"the MNIST folder (from tools/fetch-mnist; default ${MnistFolder.EnvironmentVariable}, else ~/.cache/posteriorgpu/mnist)", "dir");
        var limit = CliOptions.OptionalInt("--limit", "train on the first N images only (default: all 60000)", min: 1);
        var resume = CliOptions.Flag("--resume", "continue from the training state in --out");
        var batch = CliOptions.Int("--batch", d.BatchSize, "images per step", min: 1);
        var steps = CliOptions.Int("--steps", d.Steps, "the step to train up to", min: 1);
        var lr = CliOptions.Double("--lr", d.LearningRate, "AdamW's learning rate", positive: true);
        var warmup = CliOptions.Int("--warmup", d.WarmupSteps, "linear learning-rate warm-up steps", min: 0);
        var seed = CliOptions.Int("--seed", d.Seed, "seed of the batches, timesteps and noise", min: 0);
        var ema = CliOptions.Double("--ema-decay", d.EmaDecay, "decay of the weights' exponential moving average (the saved model)", min: 0);
        var maxGradNorm = CliOptions.Double("--max-grad-norm", d.MaxGradNorm, "gradient clipping norm", positive: true);
        var weightDecay = CliOptions.Double("--weight-decay", d.WeightDecay, "AdamW's weight decay", min: 0);
        var checkpointEvery = CliOptions.Int("--checkpoint-every", d.CheckpointEvery, "steps between saves of the model and state", min: 1);
        var logEvery = CliOptions.Int("--log-every", d.LogEvery, "steps between log lines", min: 1);
        var command = new Command("train", "train a U-Net on MNIST by denoising score matching (needs tools/fetch-mnist); writes a diffusers " +
            "model folder, a resumable state and loss.csv. Ctrl-C saves and stops (exit 130); --resume continues")
        {
            output, config, mnist, limit, resume, batch, steps, lr, warmup, seed, ema, maxGradNorm, weightDecay, checkpointEvery, logEvery,
        };
        command.SetAction(p => Run(new TrainSettings
        {
            Out = p.GetValue(output)!, Config = p.GetValue(config), Mnist = p.GetValue(mnist), Limit = p.GetValue(limit), Resume = p.GetValue(resume),
            Training = new TrainingOptions
            {
                BatchSize = p.GetValue(batch), Steps = p.GetValue(steps), LearningRate = p.GetValue(lr), WarmupSteps = p.GetValue(warmup),
                Seed = p.GetValue(seed), EmaDecay = p.GetValue(ema), MaxGradNorm = p.GetValue(maxGradNorm), WeightDecay = p.GetValue(weightDecay),
                CheckpointEvery = p.GetValue(checkpointEvery), LogEvery = p.GetValue(logEvery),
            },
            Device = setup.DeviceOf(p),
        }, setup.Context));
        return command;
    }
}

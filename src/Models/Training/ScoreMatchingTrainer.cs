using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Optim;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Reductions;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.IO;
using PosteriorGpu.Models.UNet;
using PosteriorGpu.Models.Schedules;

namespace PosteriorGpu.Models.Training;

/// <summary>Where a training run is: the step just finished, the loss averaged since the last report,
/// the gradient norm before clipping, and the wall time so far.</summary>
public readonly record struct TrainingProgress(int Step, int Steps, double Loss, double GradNorm, double LearningRate, TimeSpan Elapsed);

/// <summary>
/// Denoising score matching with epsilon prediction (Ho et al. 2020's "simple" loss): per step, a
/// batch x0, t uniform in [0, T), eps ~ N(0, I), x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps and
/// the loss mean((eps_theta(x_t, t) - eps)^2); AdamW with global-norm clipping and an EMA of the
/// weights. Writes to an output folder: the EMA weights as a diffusers model folder (config.json,
/// diffusion_pytorch_model.safetensors, scheduler_config.json), training_state.safetensors (weights,
/// optimiser moments, EMA and the step, to resume from) and loss.csv. Every random choice is a
/// function of (seed, step), so a resumed run continues exactly as an uninterrupted one would.
/// Holds device memory (the model, optimizer state and batches): dispose it. Not thread-safe: one training loop per instance.
/// </summary>
public sealed class ScoreMatchingTrainer : IDisposable
{
    /// <summary>The training-state file in the output folder.</summary>
    public const string StateFileName = "training_state.safetensors";

    /// <summary>The loss log in the output folder.</summary>
    public const string LossLogFileName = "loss.csv";

    private readonly UNet2DModel net;
    private readonly TrainingImages data;
    private readonly TrainingOptions options;
    private readonly SchedulerConfig scheduler;
    private readonly NoiseSchedule schedule;
    private readonly string folder;
    private readonly Tensor m, v, ema;
    private readonly float[] hostBatch;
    private double secondsBefore;

    private ScoreMatchingTrainer(UNet2DModel net, TrainingImages data, TrainingOptions options, SchedulerConfig scheduler, string folder)
    {
        this.net = net;
        this.data = data;
        this.options = options;
        this.scheduler = scheduler;
        this.folder = folder;
        schedule = NoiseSchedule.FromConfig(scheduler);
        var device = net.Device;
        int count = net.Parameters.Count;
        m = Tensor.Zeros(device, count);
        v = Tensor.Zeros(device, count);
        ema = Tensor.Empty(device, count);
        ema.CopyFrom(net.Parameters.Values);
        hostBatch = new float[options.BatchSize * data.ItemLength];
    }

    /// <summary>The network being trained (its weights, not the EMA).</summary>
    public UNet2DModel Network => net;

    /// <summary>Optimiser steps done so far.</summary>
    public int Step { get; private set; }

    /// <summary>
    /// A trainer for a new network of <paramref name="config"/>, or, when <paramref name="resume"/> and the
    /// folder holds a training state, the network, optimiser and step saved there (its config.json
    /// must match).
    /// </summary>
    /// <exception cref="ArgumentException">The images do not fit the model's channels or size.</exception>
    /// <exception cref="CheckpointFormatException">The saved state is malformed or belongs to another architecture.</exception>
    public static ScoreMatchingTrainer Create(GpuDevice device, UNet2DConfig config, TrainingImages data, TrainingOptions options,
        string folder, bool resume = false, SchedulerConfig? scheduler = null)
    {
        options.Validate();
        if (data.Channels != config.InChannels || config.OutChannels != config.InChannels)
            throw new ArgumentException($"training: the images have {data.Channels} channel(s) but the model takes {config.InChannels} and returns {config.OutChannels}");
        if (config.SampleSize is { } size && (size != data.Height || (config.SampleWidth ?? size) != data.Width))
            throw new ArgumentException($"training: the images are {data.Height}x{data.Width} but the model's sample_size is {size}");
        // clip_sample false: the project's samplers are judged on the model's own predictions (clipping is a DDPM-era
        // heuristic that the ODE and posterior samplers do not implement and would refuse).
        scheduler ??= new SchedulerConfig { ClassName = "DDPMScheduler", ClipSample = false };
        string statePath = Path.Combine(folder, StateFileName);
        if (resume && File.Exists(statePath))
        {
            var saved = UNet2DConfig.Load(Path.Combine(folder, "config.json"));
            if (!saved.Equals(config))
                throw new CheckpointFormatException(statePath, "the saved model's config.json differs from the requested architecture; resume with the same model config");
        }
        var net = UNet2DModel.Create(device, config, options.Seed, withGradients: true);
        try
        {
            var trainer = new ScoreMatchingTrainer(net, data, options, scheduler, folder);
            if (resume && File.Exists(statePath)) trainer.LoadState(statePath);
            return trainer;
        }
        catch
        {
            net.Dispose();
            throw;
        }
    }

    private void LoadState(string path)
    {
        (var file, Step, secondsBefore) = AdamCheckpoint.Read(path, net.Parameters, m, v);
        ema.CopyFrom(net.Parameters.Gather(file, "ema."));
    }

    /// <summary>Trains until <see cref="TrainingOptions.Steps"/>, checkpointing as configured and when
    /// cancelled (then returns normally: the folder holds a resumable state).</summary>
    /// <exception cref="InvalidOperationException">The loss or the gradient became NaN or infinite.</exception>
    public void Train(IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        Directory.CreateDirectory(folder);
        string logPath = Path.Combine(folder, LossLogFileName);
        if (Step == 0 || !File.Exists(logPath)) File.WriteAllText(logPath, "step,loss,grad_norm,learning_rate,seconds\n");
        var device = net.Device;
        var clock = Stopwatch.StartNew();
        int n = options.BatchSize, item = data.ItemLength;
        int[] shape = [n, data.Channels, data.Height, data.Width];
        using var x0 = Tensor.Empty(device, shape);
        using var noise = Tensor.Empty(device, shape);
        using var xt = Tensor.Empty(device, shape);
        using var prediction = Tensor.Empty(device, shape);
        using var a = Tensor.Empty(device, n);
        using var b = Tensor.Empty(device, n);
        using var perItem = Tensor.Empty(device, n);
        using var total = Tensor.Empty(device, 1);
        using var gradients = net.Parameters.Gradients!.Reshape(1, net.Parameters.Count);
        var hostA = new float[n];
        var hostB = new float[n];
        var timesteps = new float[n];
        var hostLoss = new float[n];
        var hostNorm = new float[1];
        double lossSum = 0, normSum = 0;
        int since = 0;
        while (Step < options.Steps)
        {
            if (cancellationToken.IsCancellationRequested) break;
            int step = Step + 1;
            FillBatch(step, hostBatch);
            x0.CopyFrom(hostBatch);
            var rng = new System.Random(HashCode.Combine(options.Seed, step, 0x5eed));
            for (int i = 0; i < n; i++)
            {
                int t = rng.Next(schedule.NumTrainTimesteps);
                timesteps[i] = t;
                double abar = schedule.AlphasCumprodDouble[t];
                hostA[i] = (float)Math.Sqrt(abar);
                hostB[i] = (float)Math.Sqrt(1 - abar);
            }
            a.CopyFrom(hostA);
            b.CopyFrom(hostB);
            noise.Clear();
            AddNoise.Run(noise, 1f, new RandomDraw((ulong)options.Seed, RandomStreams.TrainingNoise, (ulong)step));
            ScalePerItem.Run(x0, a, xt);
            ScalePerItem.Run(noise, b, prediction);           // prediction is scratch here
            Axpby.Run(1f, prediction, 1f, xt);

            net.PredictEpsilon(xt, timesteps, prediction);
            // d(mean squared error)/d(prediction) = 2 (prediction - eps) / numel; prediction becomes the residual.
            Axpby.Run(-1f, noise, 1f, prediction);
            BatchReduce.SquaredNorm(prediction, perItem);
            float scale = 2f / prediction.Length;
            Affine.Run(prediction, scale, 0f, prediction);
            net.Backward(prediction);
            BatchReduce.SquaredNorm(gradients, total);
            perItem.CopyTo(hostLoss);
            total.CopyTo(hostNorm);
            double loss = hostLoss.Sum(x => (double)x) / ((double)n * item);
            double gradNorm = Math.Sqrt(hostNorm[0]);
            if (!double.IsFinite(loss) || !double.IsFinite(gradNorm))
                throw new InvalidOperationException($"training: at step {step} the loss ({loss}) or the gradient norm ({gradNorm}) is not finite; lower the learning rate");
            float clip = options.MaxGradNorm > 0 && gradNorm > options.MaxGradNorm ? (float)(options.MaxGradNorm / gradNorm) : 1f;
            double lr = options.LearningRateAt(step);
            AdamW.Run(net.Parameters.Values, net.Parameters.Gradients!, m, v, new AdamW.Settings((float)lr, (float)options.Beta1,
                (float)options.Beta2, (float)options.AdamEpsilon, (float)options.WeightDecay, step, clip));
            double decay = options.EmaDecayAt(step);
            Axpby.Run((float)(1 - decay), net.Parameters.Values, (float)decay, ema);
            Step = step;

            lossSum += loss;
            normSum += gradNorm;
            since++;
            if (step % options.LogEvery == 0 || step == options.Steps)
            {
                double seconds = secondsBefore + clock.Elapsed.TotalSeconds;
                File.AppendAllText(logPath, string.Create(CultureInfo.InvariantCulture,
                    $"{step},{lossSum / since:G6},{normSum / since:G6},{lr:G6},{seconds:F1}\n"));
                progress?.Report(new TrainingProgress(step, options.Steps, lossSum / since, normSum / since, lr, TimeSpan.FromSeconds(seconds)));
                lossSum = normSum = 0;
                since = 0;
            }
            if (step % options.CheckpointEvery == 0 || step == options.Steps) Checkpoint(secondsBefore + clock.Elapsed.TotalSeconds);
        }
        if (Step % options.CheckpointEvery != 0 && Step != options.Steps) Checkpoint(secondsBefore + clock.Elapsed.TotalSeconds);
        secondsBefore += clock.Elapsed.TotalSeconds;
    }

    /// <summary>The images of a step's batch: epoch e = the (step - 1) * batch / count-th pass over a
    /// permutation drawn from (seed, e), so each epoch sees every image once.</summary>
    private void FillBatch(int step, float[] batch)
    {
        int n = options.BatchSize, count = data.Count, item = data.ItemLength;
        long first = (long)(step - 1) * n;
        int[]? perm = null;
        long permEpoch = -1;
        for (int i = 0; i < n; i++)
        {
            long k = first + i;
            long epoch = k / count;
            if (epoch != permEpoch)
            {
                perm = Permutation(count, HashCode.Combine(options.Seed, (int)epoch, 0xba7c));
                permEpoch = epoch;
            }
            int index = perm![(int)(k % count)];
            Array.Copy(data.Data, (long)index * item, batch, (long)i * item, item);
        }
    }

    private int[]? cachedPerm;
    private int cachedSeed;

    private int[] Permutation(int count, int seed)
    {
        if (cachedPerm is not null && cachedSeed == seed) return cachedPerm;
        var p = Enumerable.Range(0, count).ToArray();
        new System.Random(seed).Shuffle(p);
        cachedPerm = p;
        cachedSeed = seed;
        return p;
    }

    /// <summary>Writes the EMA model folder and the resumable state.</summary>
    public void Checkpoint(double seconds)
    {
        Directory.CreateDirectory(folder);
        var emaHost = ema.ToHost();
        net.Save(folder, emaHost);
        File.WriteAllText(Path.Combine(folder, "scheduler_config.json"), scheduler.ToJson());
        AdamCheckpoint.Write(Path.Combine(folder, StateFileName), net.Parameters, net.Parameters.Values.ToHost(), m, v, Step,
            AdamCheckpoint.Metadata(Step, seconds, net.Device.Description, options), ("ema.", emaHost));
    }

    /// <summary>Frees the network and the optimiser state.</summary>
    public void Dispose()
    {
        m.Dispose();
        v.Dispose();
        ema.Dispose();
        net.Dispose();
    }
}

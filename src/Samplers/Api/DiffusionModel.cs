using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Models;
using PosteriorGpu.Models.IO;
using PosteriorGpu.Models.UNet;
using PosteriorGpu.Models.Schedules;

namespace PosteriorGpu;

/// <summary>
/// A diffusion prior ready to sample with: the noise-prediction network and the noise schedule it was
/// trained with. <see cref="Load"/> reads a diffusers UNet2DModel folder (config.json,
/// diffusion_pytorch_model.safetensors and, when present, scheduler_config.json).
/// Holds device memory (the weights) when it owns the network: dispose it before its device.
/// Thread-safety: the model is read-only after loading; samplers that share it take turns on the
/// device through <see cref="GpuDevice.Exclusive"/>, so one instance may serve several threads.
/// </summary>
public sealed class DiffusionModel : IDisposable
{
    private readonly bool ownsNetwork;

    /// <summary>Wraps a network and its schedule. With <paramref name="ownsNetwork"/>, <see cref="Dispose"/>
    /// disposes the network too (when it is <see cref="IDisposable"/>).</summary>
    /// <exception cref="ArgumentException">The network has no image size (Height or Width 0).</exception>
    public DiffusionModel(IScoreModel network, NoiseSchedule schedule, bool ownsNetwork = false)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(schedule);
        if (network.Channels < 1 || network.Height < 1 || network.Width < 1)
            throw new ArgumentException(
                $"the network must have a fixed image size, got [{network.Channels}, {network.Height}, {network.Width}]", nameof(network));
        Network = network;
        Schedule = schedule;
        this.ownsNetwork = ownsNetwork;
    }

    /// <summary>The epsilon-prediction network.</summary>
    public IScoreModel Network { get; }

    /// <summary>The noise schedule (alphas_cumprod) the network was trained with.</summary>
    public NoiseSchedule Schedule { get; }

    /// <summary>The device the weights live on.</summary>
    public GpuDevice Device => Network.Device;

    /// <summary>Image channels C.</summary>
    public int Channels => Network.Channels;

    /// <summary>Image height H.</summary>
    public int Height => Network.Height;

    /// <summary>Image width W.</summary>
    public int Width => Network.Width;

    /// <summary>Values in one image, C * H * W.</summary>
    public int ImageLength => Channels * Height * Width;

    /// <summary>True when the network can differentiate its output (an <see cref="IDifferentiableScoreModel"/> whose
    /// <see cref="IDifferentiableScoreModel.CanDifferentiate"/> holds, e.g. a U-Net loaded with gradients), which
    /// DPS (<see cref="Samplers.Posterior.DpsSampler"/>) needs.</summary>
    public bool HasGradients => Network is IDifferentiableScoreModel { CanDifferentiate: true };

    /// <summary>
    /// Loads a diffusers UNet2DModel folder onto <paramref name="device"/>. The schedule comes from
    /// scheduler_config.json when the folder has one (its clip_sample and thresholding are honoured or refused by each
    /// sampler), else diffusers' DDPMScheduler defaults (linear betas 1e-4 to 0.02 over 1000 steps) without clip_sample. <paramref name="withGradients"/> loads the network with its backward
    /// pass (for DPS, <see cref="Samplers.Posterior.DpsSampler"/>; the same outputs, more memory).
    /// </summary>
    /// <exception cref="FileNotFoundException">The folder or its config.json / weights are missing.</exception>
    /// <exception cref="CheckpointFormatException">A file is malformed, the config has no sample_size, or in_channels
    /// and out_channels differ (an epsilon-prediction model returns what it takes); the message names the file.</exception>
    public static DiffusionModel Load(GpuDevice device, string folder, bool withGradients = false)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(folder);
        if (!Directory.Exists(folder)) throw new FileNotFoundException($"{folder}: model folder not found (a diffusers UNet2DModel folder)", folder);
        string schedulerPath = Path.Combine(folder, "scheduler_config.json");
        var schedule = File.Exists(schedulerPath) ? NoiseSchedule.Load(schedulerPath) : NoiseSchedule.FromConfig(new SchedulerConfig { ClipSample = false });
        var network = UNet2DModel.Load(device, folder, withGradients);
        try
        {
            var config = network.Config;
            string configPath = Path.Combine(folder, "config.json");
            if (network.Height == 0 || network.Width == 0)
                throw new CheckpointFormatException(configPath, "has no sample_size; sampling needs the model's image size");
            if (config.OutChannels != network.Channels)
                throw new CheckpointFormatException(configPath,
                    $"in_channels {network.Channels} and out_channels {config.OutChannels} differ; an epsilon-prediction model has equal ones");
            return new DiffusionModel(network, schedule, ownsNetwork: true);
        }
        catch
        {
            network.Dispose();
            throw;
        }
    }

    /// <summary>Frees the network's device memory when this instance owns it.</summary>
    public void Dispose()
    {
        if (ownsNetwork) (Network as IDisposable)?.Dispose();
    }

    /// <inheritdoc/>
    public override string ToString() => $"diffusion model [{Channels}, {Height}, {Width}] on {Device.Description}";
}

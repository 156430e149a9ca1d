using System.CommandLine;
using PosteriorGpu.Samplers.Unconditional;
using PosteriorGpu.Models.Schedules;
using System.Diagnostics;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.UNet;

namespace PosteriorGpu.Cli;

/// <summary>The typed settings of `posteriorgpu bench`.</summary>
/// <param name="Model">--model (null: the shipped model).</param>
/// <param name="Batches">--batch.</param>
/// <param name="Iters">--iters.</param>
/// <param name="Device">--device.</param>
internal sealed record BenchSettings(string? Model, int[] Batches, int Iters = 10, DeviceKind? Device = null);

/// <summary>`posteriorgpu bench`: a quick timing of the U-Net forward pass on the chosen device
/// (warm-up first, then the median of timed passes, each ended by a device synchronisation).</summary>
internal static class BenchCommand
{
    /// <summary>Runs the command; returns the exit code.</summary>
    public static int Run(BenchSettings s, CliContext cli)
    {
        string model = CliFiles.ModelFolder(s.Model);
        var batches = s.Batches;
        int iters = s.Iters;
        var stdout = cli.Out;
        using var dev = GpuDevice.Open(s.Device);
        using var unet = UNet2DModel.Load(dev, model);
        int c = unet.Channels, h = unet.Height, w = unet.Width;
        if (h == 0 || w == 0) throw new UsageException($"{model}: config.json has no sample_size; cannot pick an input size");
        var schedule = NoiseSchedule.FromConfig(new SchedulerConfig { ClipSample = false });
        stdout.WriteLine($"U-Net forward on {dev.Description}, input [B, {c}, {h}, {w}], median of {iters} after warm-up");
        var rng = new Random(1);
        foreach (int b in batches)
        {
            var data = new float[b * c * h * w];
            for (int i = 0; i < data.Length; i++) data[i] = (float)(rng.NextDouble() * 2 - 1);
            var t = Enumerable.Range(0, b).Select(i => (float)(i * 37 % 1000)).ToArray();
            using var x = Tensor.FromHost(dev, data, b, c, h, w);
            using var eps = Tensor.Empty(dev, b, unet.Config.OutChannels, h, w);
            unet.PredictEpsilon(x, t, eps);   // compiles the kernels, fills the pool
            dev.Synchronize();
            var times = new double[iters];
            for (int i = 0; i < iters; i++)
            {
                var sw = Stopwatch.StartNew();
                unet.PredictEpsilon(x, t, eps);
                dev.Synchronize();
                times[i] = sw.Elapsed.TotalMilliseconds;
            }
            Array.Sort(times);
            double ms = times[iters / 2];
            stdout.WriteLine($"  batch {b,4}: {ms,9:F3} ms per pass, {b * 1000 / ms,10:F1} images/s");

            // One sampler step: a one-step DDIM run is one forward pass plus the fused update kernel.
            var ddim = SamplerFactory.Create("ddim", unet, schedule);
            ddim.Sample(x, 1, 0);
            dev.Synchronize();
            for (int i = 0; i < iters; i++)
            {
                var sw = Stopwatch.StartNew();
                ddim.Sample(x, 1, (ulong)i);
                dev.Synchronize();
                times[i] = sw.Elapsed.TotalMilliseconds;
            }
            Array.Sort(times);
            stdout.WriteLine($"              {times[iters / 2],9:F3} ms per DDIM sampler step (forward pass + update)");
        }
        return ExitCodes.Ok;
    }

    /// <summary>The `bench` command's options and parsing glue.</summary>
    public static Command Create(CommandSetup setup)
    {
        var model = CliOptions.Text("--model", $"model folder (a diffusers UNet2DModel). Default: the shipped {DefaultPaths.Model}", "dir");
        var batch = CliOptions.IntList("--batch", "1,16", "batch sizes to time, separated by commas");
        var iters = CliOptions.Int("--iters", 10, "timed passes per batch size (the median is printed)", min: 1);
        var command = new Command("bench", "time the U-Net forward pass and one DDIM sampler step on the chosen device") { model, batch, iters };
        command.SetAction(p => Run(new BenchSettings(p.GetValue(model), p.GetValue(batch)!, p.GetValue(iters), setup.DeviceOf(p)), setup.Context));
        return command;
    }
}

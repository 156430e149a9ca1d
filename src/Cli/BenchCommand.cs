using PosteriorGpu.Samplers.Unconditional;
using PosteriorGpu.Models.Schedules;
using System.Diagnostics;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.UNet;

namespace PosteriorGpu.Cli;

/// <summary>`posteriorgpu bench`: a quick timing of the U-Net forward pass on the chosen device
/// (warm-up first, then the median of timed passes, each ended by a device synchronisation).</summary>
internal static class BenchCommand
{
    /// <summary>The options this command takes (besides --verbose).</summary>
    public static readonly string[] Known = ["model", "batch", "iters", "device"];

    /// <summary>Runs the command; returns the exit code.</summary>
    public static int Run(Options o, TextWriter stdout)
    {
        string model = o.Required("model", "a diffusers model folder");
        var batches = (o.Get("batch") ?? "1,16").Split(',').Select(s =>
            int.TryParse(s, out int b) && b > 0 ? b : throw new UsageException($"--batch takes positive integers separated by commas, got '{s}'")).ToArray();
        int iters = o.Int("iters", 10);
        if (iters < 1) throw new UsageException("--iters must be at least 1");
        var device = DeviceKinds.Parse(o.Get("device"), "--device");

        using var dev = GpuDevice.Open(device);
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
        return 0;
    }
}

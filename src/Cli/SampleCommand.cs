using System.Diagnostics;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.IO;
using PosteriorGpu.Models.UNet;
using PosteriorGpu.Models.Schedules;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Cli;

/// <summary>`posteriorgpu sample`: unconditional samples from a diffusers checkpoint with any of the
/// unconditional samplers, from given or seeded starting noise, so a run can be compared with
/// diffusers' own from the same x_T.</summary>
internal static class SampleCommand
{
    /// <summary>The options this command takes (besides --verbose).</summary>
    public static readonly string[] Known = ["model", "sampler", "steps", "scheduler-config", "xT", "seed", "batch", "eta", "out", "png", "device"];

    /// <summary>Runs the command; returns the exit code.</summary>
    public static int Run(Options o, TextWriter stdout, TextWriter stderr)
    {
        string model = o.Required("model", "a diffusers model folder");
        string samplerName = o.Get("sampler") ?? "ddim";
        int steps = o.Int("steps", 50);
        string outPath = o.Required("out", "where to write the samples (.npy)");
        ulong seed = (ulong)o.Int("seed", 0);
        int batch = o.Int("batch", 4);
        double eta = o.Double("eta", 0);
        var device = DeviceKinds.Parse(o.Get("device"), "--device");
        if (steps < 1) throw new UsageException("--steps must be at least 1");
        if (batch < 1) throw new UsageException("--batch must be at least 1");

        string configPath = o.Get("scheduler-config") ?? Path.Combine(model, "scheduler_config.json");
        var config = File.Exists(configPath) ? SchedulerConfig.Load(configPath)
            : o.Get("scheduler-config") is null ? new SchedulerConfig { ClipSample = false }
            : throw new FileNotFoundException($"{configPath}: scheduler config not found", configPath);
        var schedule = NoiseSchedule.FromConfig(config, File.Exists(configPath) ? configPath : null);

        using var dev = GpuDevice.Open(device);
        using var unet = UNet2DModel.Load(dev, model);
        int c = unet.Channels, h = unet.Height, w = unet.Width;
        float[] start;
        int[] shape;
        if (o.Get("xT") is { } xTPath)
        {
            var xT = Npy.Read(xTPath);
            if (xT.Shape.Length != 4 || xT.Shape[1] != c || (h > 0 && (xT.Shape[2] != h || xT.Shape[3] != w)))
                throw new UsageException($"{xTPath}: expected x_T of shape [N, {c}, {h}, {w}] but got {Shape.Format(xT.Shape)}");
            start = xT.ToFloat32();
            shape = xT.Shape;
        }
        else
        {
            if (h == 0) throw new UsageException($"{model}: config.json has no sample_size; give --xT");
            shape = [batch, c, h, w];
            start = new float[batch * c * h * w];
            // Starting noise is a function of the seed and the sample index, like the in-loop noise.
            var draw = new RandomDraw(seed, RandomStreams.Start, 0);
            for (int i = 0; i < start.Length; i++) start[i] = draw.Normal(i);
        }
        var sampler = SamplerFactory.Create(samplerName, unet, schedule, SamplerOptions.FromConfig(config), eta);
        using var x = Tensor.FromHost(dev, start, shape);
        var watch = Stopwatch.StartNew();
        sampler.Sample(x, steps, seed, progress: new LineProgress(stderr, sampler.Name));
        var result = x.ToHost();
        watch.Stop();
        Npy.Write(outPath, result, shape);
        if (o.Get("png") is { } png) PngGrid.Write(png, result, shape);
        stdout.WriteLine($"wrote {outPath} {Shape.Format(shape)}: {sampler.Name}, {steps} steps, seed {seed}, on {dev.Description} in {watch.Elapsed.TotalSeconds:F1} s");
        return 0;
    }

    /// <summary>Plain progress lines (a terminal progress bar is the CLI issue's).</summary>
    private sealed class LineProgress(TextWriter writer, string name) : IProgress<SamplerProgress>
    {
        public void Report(SamplerProgress p)
        {
            if (p.Step == p.Steps || p.Step % Math.Max(1, p.Steps / 10) == 0) writer.WriteLine($"{name}: step {p.Step}/{p.Steps}");
        }
    }
}

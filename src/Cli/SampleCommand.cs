using System.CommandLine;
using System.Diagnostics;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.IO;
using PosteriorGpu.Models.UNet;
using PosteriorGpu.Models.Schedules;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Cli;

/// <summary>The typed settings of `posteriorgpu sample`.</summary>
/// <param name="Model">--model (null: the shipped model).</param>
/// <param name="Sampler">--sampler.</param>
/// <param name="Steps">--steps.</param>
/// <param name="SchedulerConfig">--scheduler-config (null: the model folder's scheduler_config.json, if any).</param>
/// <param name="XT">--xT (null: seeded noise).</param>
/// <param name="Seed">--seed.</param>
/// <param name="Batch">--batch.</param>
/// <param name="Eta">--eta.</param>
/// <param name="Out">--out (.npy).</param>
/// <param name="Png">--png (null: beside --out, same name with .png).</param>
/// <param name="Device">--device.</param>
/// <param name="GraphReplay">--graph-replay.</param>
internal sealed record SampleSettings(string? Model = null, string Sampler = "ddim", int Steps = 50, string? SchedulerConfig = null,
    string? XT = null, ulong Seed = 0, int Batch = 8, double Eta = 0, string Out = "out/sample/samples.npy", string? Png = null,
    DeviceKind? Device = null, bool GraphReplay = false);

/// <summary>`posteriorgpu sample`: unconditional samples from a diffusers checkpoint with any of the
/// unconditional samplers, from given or seeded starting noise, so a run can be compared with
/// diffusers' own from the same x_T. Writes the samples as .npy and a labelled, upscaled PNG grid.</summary>
internal static class SampleCommand
{
    /// <summary>Runs the command; returns the exit code.</summary>
    public static int Run(SampleSettings s, CliContext cli)
    {
        string model = CliFiles.ModelFolder(s.Model);
        string configPath = s.SchedulerConfig ?? Path.Combine(model, "scheduler_config.json");
        var config = File.Exists(configPath) ? SchedulerConfig.Load(configPath)
            : s.SchedulerConfig is null ? new SchedulerConfig { ClipSample = false }
            : throw new FileNotFoundException($"scheduler config {configPath} not found (--scheduler-config)", configPath);
        var schedule = NoiseSchedule.FromConfig(config, File.Exists(configPath) ? configPath : null);
        string png = s.Png ?? Path.ChangeExtension(s.Out, ".png");

        using var dev = GpuDevice.Open(s.Device);
        using var unet = UNet2DModel.Load(dev, model);
        int c = unet.Channels, h = unet.Height, w = unet.Width;
        float[] start;
        int[] shape;
        if (s.XT is { } xTPath)
        {
            if (!File.Exists(xTPath)) throw new FileNotFoundException($"starting noise (--xT) {xTPath} not found", xTPath);
            var xT = Npy.Read(xTPath);
            if (xT.Shape.Length != 4 || xT.Shape[1] != c || (h > 0 && (xT.Shape[2] != h || xT.Shape[3] != w)))
                throw new UsageException($"{xTPath}: expected x_T of shape [N, {c}, {h}, {w}] but got {Shape.Format(xT.Shape)}");
            start = xT.ToFloat32();
            shape = xT.Shape;
        }
        else
        {
            if (h == 0) throw new UsageException($"{model}: config.json has no sample_size; give --xT");
            shape = [s.Batch, c, h, w];
            start = new float[s.Batch * c * h * w];
            // Starting noise is a function of the seed and the sample index, like the in-loop noise.
            var draw = new RandomDraw(s.Seed, RandomStreams.Start, 0);
            for (int i = 0; i < start.Length; i++) start[i] = draw.Normal(i);
        }
        var sampler = SamplerFactory.Create(s.Sampler, unet, schedule, SamplerOptions.FromConfig(config), s.Eta);
        sampler.GraphReplay = s.GraphReplay;
        CliFiles.CreateFolderOf(s.Out);
        CliFiles.CreateFolderOf(png);
        using var x = Tensor.FromHost(dev, start, shape);
        var watch = Stopwatch.StartNew();
        using (var bar = cli.Progress(sampler.Name, s.Steps))
        {
            sampler.Sample(x, s.Steps, s.Seed, progress: new Relay<SamplerProgress>(p => bar.Update(p.Step)), cancellationToken: cli.Cancel);
            bar.Finish($"{shape[0]} sample(s) in {watch.Elapsed.TotalSeconds:F1} s");
        }
        var result = x.ToHost();
        CliFiles.Writing("output file (--out)", s.Out, () => Npy.Write(s.Out, result, shape));
        CliFiles.Writing("picture (--png)", png, () => PngGrid.Write(png, result, shape, $"{sampler.Name}, {s.Steps} steps, seed {s.Seed}"));
        cli.Out.WriteLine($"wrote {s.Out} {Shape.Format(shape)} and {png}: {sampler.Name}, {s.Steps} steps, seed {s.Seed}, on {dev.Description} in {watch.Elapsed.TotalSeconds:F1} s");
        if (sampler.LastStepLaunches is { } launches)
            cli.Out.WriteLine($"graph replay: {launches.StepsReplayed} of {s.Steps} steps replayed in {launches.GraphLaunches} graph launch(es) of " +
                $"{launches.NodesPerGraph} nodes" + (launches.Fallback is { } why ? $"; the others launched plainly: {why}" : ""));
        return ExitCodes.Ok;
    }

    /// <summary>The `sample` command's options and parsing glue.</summary>
    public static Command Create(CommandSetup setup)
    {
        var d = new SampleSettings();
        var model = CliOptions.Text("--model", $"model folder (a diffusers UNet2DModel). Default: the shipped {DefaultPaths.Model}", "dir");
        var sampler = CliOptions.Choice("--sampler", d.Sampler, "the unconditional sampler", [.. SamplerFactory.Names, "ddpm-large"]);
        var steps = CliOptions.Int("--steps", d.Steps, "sampler steps (network evaluations; the second-order samplers take about two a step)", min: 1);
        var config = CliOptions.Text("--scheduler-config", "a diffusers scheduler_config.json (default: the model folder's, if any)", "file");
        var xT = CliOptions.Text("--xT", "starting noise x_T as a .npy [N, C, H, W] (default: seeded standard normal noise, --batch images)", "file");
        var seed = CliOptions.Seed("--seed", "seed of the starting noise and the sampler's noise");
        var batch = CliOptions.Int("--batch", d.Batch, "images to draw (without --xT)", min: 1);
        var eta = CliOptions.Double("--eta", d.Eta, "DDIM's eta (0: deterministic)", min: 0);
        var output = CliOptions.Path("--out", d.Out, "output file: the samples as a .npy [N, C, H, W] in [-1, 1]");
        var png = CliOptions.Text("--png", "the picture: a labelled, upscaled grid (default: --out with .png)", "file");
        var graphReplay = CliOptions.Flag("--graph-replay", "replay each window of 16 steps as one CUDA graph (every sampler here; bitwise the " +
            "same samples; elsewhere the steps launch plainly and the output says why)");
        var command = new Command("sample", "unconditional samples from a diffusers UNet2DModel with DDPM, DDIM, the probability-flow ODE, " +
            "the accelerated sampler of Li et al. or DPM-Solver++(2M), as .npy and a PNG grid")
        {
            model, sampler, steps, config, xT, seed, batch, eta, output, png, graphReplay,
        };
        command.SetAction(p => Run(new SampleSettings(p.GetValue(model), p.GetValue(sampler)!, p.GetValue(steps), p.GetValue(config),
            p.GetValue(xT), p.GetValue(seed), p.GetValue(batch), p.GetValue(eta), p.GetValue(output)!, p.GetValue(png), setup.DeviceOf(p),
            p.GetValue(graphReplay)), setup.Context));
        return command;
    }
}

/// <summary>An <see cref="IProgress{T}"/> that calls a delegate synchronously on the reporting thread
/// (<see cref="Progress{T}"/> would post to a thread pool and report after the run ends).</summary>
internal sealed class Relay<T>(Action<T> report) : IProgress<T>
{
    /// <summary>Calls the delegate.</summary>
    public void Report(T value) => report(value);
}

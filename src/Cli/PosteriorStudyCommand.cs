using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Samplers.Diagnostics;
using PosteriorGpu.Samplers.Posterior;

namespace PosteriorGpu.Cli;

/// <summary>`posteriorgpu posterior-study`: posterior samplers on Gaussian-mixture priors against exact
/// posterior samples (sliced W2), as a Markdown table.</summary>
public static class PosteriorStudyCommand
{
    /// <summary>The options this command takes (besides --verbose).</summary>
    public static readonly string[] Known = ["dims", "rows", "chains", "levels", "steps-per-level", "device"];

    /// <summary>Runs the command; returns the exit code.</summary>
    public static int Run(Options o, TextWriter stdout)
    {
        static int[] Ints(string? text, string fallback, string name) => (text ?? fallback).Split(',').Select(s =>
            int.TryParse(s, out int v) && v > 0 ? v : throw new UsageException($"--{name} takes positive integers separated by commas, got '{s}'")).ToArray();
        var dims = Ints(o.Get("dims"), "8,80", "dims");
        var rows = Ints(o.Get("rows"), "1,2,4", "rows");
        int chains = o.Int("chains", 4096);
        var defaults = new AnnealedLangevinOptions();
        var options = defaults with { Levels = o.Int("levels", defaults.Levels), StepsPerLevel = o.Int("steps-per-level", defaults.StepsPerLevel) };
        if (chains < 2 || options.Levels < 1 || options.StepsPerLevel < 1) throw new UsageException("--chains must be at least 2, --levels and --steps-per-level at least 1");
        using var dev = GpuDevice.Open(DeviceKinds.Parse(o.Get("device"), "--device"));
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var table = MixturePosteriorStudy.Run(dev, dims, rows, chains, options);
        stdout.WriteLine($"Gaussian-mixture priors (25 components), sigma_y = 0.1, {chains} chains, annealed Langevin {options.Levels} x {options.StepsPerLevel} steps, on {dev.Description} ({watch.Elapsed.TotalSeconds:F0} s)");
        stdout.WriteLine();
        stdout.Write(MixturePosteriorStudy.ToMarkdown(table));
        return 0;
    }
}

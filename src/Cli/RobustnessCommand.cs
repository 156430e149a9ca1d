using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Cli.Studies;
using PosteriorGpu.Samplers.Posterior;

namespace PosteriorGpu.Cli;

/// <summary>`posteriorgpu robustness`: plain vs annealed Langevin with an exact and a perturbed score in the setting of
/// Xun, Gupta and Price's Figure 3, as Markdown tables.</summary>
internal static class RobustnessCommand
{
    /// <summary>The options this command takes (besides --verbose).</summary>
    public static readonly string[] Known = ["dims", "chains", "bound", "levels", "steps-per-level", "device"];

    /// <summary>Runs the command; returns the exit code.</summary>
    public static int Run(Options o, TextWriter stdout)
    {
        var dims = (o.Get("dims") ?? "1,64").Split(',').Select(s =>
            int.TryParse(s, out int v) && v > 0 ? v : throw new UsageException($"--dims takes positive integers separated by commas, got '{s}'")).ToArray();
        int chains = o.Int("chains", 4096);
        double bound = o.Double("bound", 1000);
        var options = new AnnealedLangevinOptions { Levels = o.Int("levels", 100), StepsPerLevel = o.Int("steps-per-level", 10), StepScale = 0.1 };
        if (chains < 2 || options.Levels < 1 || options.StepsPerLevel < 1 || !(bound >= 0))
            throw new UsageException("--chains must be at least 2, --levels and --steps-per-level at least 1, --bound at least 0");
        using var dev = GpuDevice.Open(DeviceKinds.Parse(o.Get("device"), "--device"));
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var settings = dims.Select(d => RobustnessStudy.Measure(dev, d, chains, options, bound)).ToList();
        stdout.WriteLine($"Prior N(0, I_d), y = x + N(0, {RobustnessStudy.SigmaY}^2 I) per chain, {chains} chains, {options.Levels} x {options.StepsPerLevel} " +
                         $"Langevin steps (annealed: eta from {options.EtaMax} to sigma_y; plain: all at sigma_y), on {dev.Description} ({watch.Elapsed.TotalSeconds:F0} s)");
        stdout.WriteLine();
        stdout.Write(RobustnessStudy.ToMarkdown(settings, options));
        return 0;
    }
}

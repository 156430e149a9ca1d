using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Cli.Studies;
using PosteriorGpu.Samplers.Posterior;

namespace PosteriorGpu.Cli;

/// <summary>`posteriorgpu posterior-study`: posterior samplers on Gaussian-mixture priors against exact
/// posterior samples (sliced W2), as a Markdown table.</summary>
internal static class PosteriorStudyCommand
{
    /// <summary>The options this command takes (besides --verbose).</summary>
    public static readonly string[] Known = ["dims", "rows", "chains", "levels", "steps-per-level", "device", "samplers", "dpnp-iterations", "dps-steps", "dps-zeta"];

    /// <summary>Runs the command; returns the exit code.</summary>
    public static int Run(Options o, TextWriter stdout)
    {
        static int[] Ints(string? text, string fallback, string name) => (text ?? fallback).Split(',').Select(s =>
            int.TryParse(s, out int v) && v > 0 ? v : throw new UsageException($"--{name} takes positive integers separated by commas, got '{s}'")).ToArray();
        var dims = Ints(o.Get("dims"), "8,80", "dims");
        var rows = Ints(o.Get("rows"), "1,2,4", "rows");
        int chains = o.Int("chains", 4096);
        // The study's tables (docs/posterior-mixtures.md) were measured with the options before issue 18's defaults: step scale 0.1,
        // DPnP unadjusted with eta down to 0.03.
        var defaults = new AnnealedLangevinOptions { StepScale = 0.1 };
        var options = defaults with { Levels = o.Int("levels", defaults.Levels), StepsPerLevel = o.Int("steps-per-level", defaults.StepsPerLevel) };
        if (chains < 2 || options.Levels < 1 || options.StepsPerLevel < 1) throw new UsageException("--chains must be at least 2, --levels and --steps-per-level at least 1");
        // Annealed Langevin always runs; --samplers picks the others (dpnp, dps, or none).
        var samplers = (o.Get("samplers") ?? "dpnp,dps").Split(',');
        foreach (var s in samplers)
            if (s is not ("dpnp" or "dps" or "none")) throw new UsageException($"--samplers takes dpnp and dps separated by commas (or none), got '{s}'");
        var dpnp = samplers.Contains("dpnp") ? new DpnpOptions { Iterations = o.Int("dpnp-iterations", new DpnpOptions().Iterations), Metropolis = false, EtaMin = 0.03 } : null;
        var dps = samplers.Contains("dps")
            ? MixturePosteriorStudy.DefaultDps with { Steps = o.Int("dps-steps", MixturePosteriorStudy.DefaultDps.Steps), StepSize = o.Double("dps-zeta", MixturePosteriorStudy.DefaultDps.StepSize) }
            : null;
        if (dpnp is { Iterations: < 1 } || dps is { Steps: < 1 } || dps is { StepSize: < 0 })
            throw new UsageException("--dpnp-iterations and --dps-steps must be at least 1, --dps-zeta at least 0");
        using var dev = GpuDevice.Open(DeviceKinds.Parse(o.Get("device"), "--device"));
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var table = MixturePosteriorStudy.Run(dev, dims, rows, chains, options, 1, dpnp, dps);
        stdout.WriteLine($"Gaussian-mixture priors (25 components), sigma_y = 0.1, {chains} chains, annealed Langevin {options.Levels} x {options.StepsPerLevel} steps" +
                         (dpnp is null ? "" : $", DPnP (DDIM-type) {dpnp.Iterations} sweeps") + (dps is null ? "" : $", DPS {dps.Steps} steps zeta {dps.StepSize}") +
                         $", on {dev.Description} ({watch.Elapsed.TotalSeconds:F0} s)");
        stdout.WriteLine();
        stdout.Write(MixturePosteriorStudy.ToMarkdown(table));
        return 0;
    }
}

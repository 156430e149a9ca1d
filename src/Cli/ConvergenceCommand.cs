using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Cli.Studies;

namespace PosteriorGpu.Cli;

/// <summary>`posteriorgpu convergence`: prints the deterministic samplers' errors against the exact
/// answer (Gaussian prior, exact score) and their observed orders, as a Markdown table.</summary>
internal static class ConvergenceCommand
{
    /// <summary>The options this command takes (besides --verbose).</summary>
    public static readonly string[] Known = ["steps", "device"];

    /// <summary>Runs the command; returns the exit code.</summary>
    public static int Run(Options o, TextWriter stdout)
    {
        var steps = (o.Get("steps") ?? "10,20,40,80").Split(',').Select(s =>
            int.TryParse(s, out int t) && t >= 2 ? t : throw new UsageException($"--steps takes integers >= 2 separated by commas, got '{s}'")).ToArray();
        if (steps.Length < 2) throw new UsageException("--steps needs at least two step counts");
        using var dev = GpuDevice.Open(DeviceKinds.Parse(o.Get("device"), "--device"));
        stdout.WriteLine($"Gaussian prior N(mu, diag(var)) in d = 64, exact score, Li et al. schedule (c0 = 2, c1 = 4), on {dev.Description}");
        stdout.WriteLine();
        stdout.Write(ConvergenceStudy.ToMarkdown(ConvergenceStudy.Run(dev, steps)));
        return 0;
    }
}

using System.CommandLine;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Cli.Studies;

namespace PosteriorGpu.Cli;

/// <summary>`posteriorgpu convergence`: prints the deterministic samplers' errors against the exact
/// answer (Gaussian prior, exact score) and their observed orders, as a Markdown table.</summary>
internal static class ConvergenceCommand
{
    /// <summary>Runs the study for the step counts <paramref name="steps"/>; returns the exit code.</summary>
    public static int Run(int[] steps, DeviceKind? device, CliContext cli)
    {
        using var dev = GpuDevice.Open(device);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        cli.Err.WriteLine($"convergence: {ConvergenceStudy.Samplers.Length} samplers x {steps.Length} step counts ...");
        var rows = ConvergenceStudy.Run(dev, steps);
        cli.Err.WriteLine($"convergence: done in {watch.Elapsed.TotalSeconds:F1} s");
        cli.Out.WriteLine($"Gaussian prior N(mu, diag(var)) in d = 64, exact score, Li et al. schedule (c0 = 2, c1 = 4), on {dev.Description}");
        cli.Out.WriteLine();
        cli.Out.Write(ConvergenceStudy.ToMarkdown(rows));
        return ExitCodes.Ok;
    }

    /// <summary>The `convergence` command's options and parsing glue.</summary>
    public static Command Create(CommandSetup setup)
    {
        var steps = CliOptions.IntList("--steps", "10,20,40,80", "step counts (at least two, each >= 2), separated by commas", min: 2, minCount: 2);
        var command = new Command("convergence", "each deterministic sampler's error against an exact answer and its observed order (docs/convergence.md)") { steps };
        command.SetAction(p => Run(p.GetValue(steps)!, setup.DeviceOf(p), setup.Context));
        return command;
    }
}

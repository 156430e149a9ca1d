using System.CommandLine;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Cli.Studies;
using PosteriorGpu.Samplers.Posterior;

namespace PosteriorGpu.Cli;

/// <summary>The typed settings of `posteriorgpu robustness`.</summary>
/// <param name="Dims">--dims.</param>
/// <param name="Chains">--chains.</param>
/// <param name="Bound">--bound.</param>
/// <param name="Levels">--levels.</param>
/// <param name="StepsPerLevel">--steps-per-level.</param>
/// <param name="Device">--device.</param>
internal sealed record RobustnessSettings(int[] Dims, int Chains = 4096, double Bound = 1000, int Levels = 100, int StepsPerLevel = 10, DeviceKind? Device = null);

/// <summary>`posteriorgpu robustness`: plain vs annealed Langevin with an exact and a perturbed score in the setting of
/// Xun, Gupta and Price's Figure 3, as Markdown tables.</summary>
internal static class RobustnessCommand
{
    /// <summary>Runs the command; returns the exit code.</summary>
    public static int Run(RobustnessSettings s, CliContext cli)
    {
        var options = new AnnealedLangevinOptions { Levels = s.Levels, StepsPerLevel = s.StepsPerLevel, StepScale = 0.1 };
        using var dev = GpuDevice.Open(s.Device);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var settings = new List<RobustnessStudy.Setting>();
        using (var bar = cli.Progress("robustness", s.Dims.Length, "dimensions"))
        {
            foreach (int d in s.Dims)
            {
                cli.Cancel.ThrowIfCancellationRequested();
                settings.Add(RobustnessStudy.Measure(dev, d, s.Chains, options, s.Bound));
                bar.Update(settings.Count, $"d = {d} done");
            }
            bar.Finish($"{settings.Count} dimension(s) in {watch.Elapsed.TotalSeconds:F0} s");
        }
        cli.Out.WriteLine($"Prior N(0, I_d), y = x + N(0, {RobustnessStudy.SigmaY}^2 I) per chain, {s.Chains} chains, {options.Levels} x {options.StepsPerLevel} " +
                         $"Langevin steps (annealed: eta from {options.EtaMax} to sigma_y; plain: all at sigma_y), on {dev.Description} ({watch.Elapsed.TotalSeconds:F0} s)");
        cli.Out.WriteLine();
        cli.Out.Write(RobustnessStudy.ToMarkdown(settings, options));
        return ExitCodes.Ok;
    }

    /// <summary>The `robustness` command's options and parsing glue.</summary>
    public static Command Create(CommandSetup setup)
    {
        var d = new RobustnessSettings([1, 64]);
        var dims = CliOptions.IntList("--dims", "1,64", "dimensions, separated by commas");
        var chains = CliOptions.Int("--chains", d.Chains, "chains per setting", min: 2);
        var bound = CliOptions.Double("--bound", d.Bound, "the score perturbation's bound", min: 0);
        var levels = CliOptions.Int("--levels", d.Levels, "annealing levels", min: 1);
        var stepsPerLevel = CliOptions.Int("--steps-per-level", d.StepsPerLevel, "Langevin steps per level", min: 1);
        var command = new Command("robustness", "plain vs annealed Langevin with an exact and a perturbed score, Figure 3 of Xun, Gupta and Price (docs/robustness.md)")
        {
            dims, chains, bound, levels, stepsPerLevel,
        };
        command.SetAction(p => Run(new RobustnessSettings(p.GetValue(dims)!, p.GetValue(chains), p.GetValue(bound), p.GetValue(levels),
            p.GetValue(stepsPerLevel), setup.DeviceOf(p)), setup.Context));
        return command;
    }
}

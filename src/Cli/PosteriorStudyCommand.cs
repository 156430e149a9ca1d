using System.CommandLine;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Cli.Studies;
using PosteriorGpu.Samplers.Posterior;

namespace PosteriorGpu.Cli;

/// <summary>The typed settings of `posteriorgpu posterior-study`.</summary>
/// <param name="Dims">--dims.</param>
/// <param name="Rows">--rows.</param>
/// <param name="Chains">--chains.</param>
/// <param name="Levels">--levels.</param>
/// <param name="StepsPerLevel">--steps-per-level.</param>
/// <param name="Samplers">--samplers: dpnp, dps (annealed Langevin always runs).</param>
/// <param name="DpnpIterations">--dpnp-iterations.</param>
/// <param name="DpsSteps">--dps-steps.</param>
/// <param name="DpsZeta">--dps-zeta.</param>
/// <param name="Device">--device.</param>
internal sealed record PosteriorStudySettings(int[] Dims, int[] Rows, int Chains, int Levels, int StepsPerLevel, string[] Samplers,
    int DpnpIterations, int DpsSteps, double DpsZeta, DeviceKind? Device);

/// <summary>`posteriorgpu posterior-study`: posterior samplers on Gaussian-mixture priors against exact
/// posterior samples (sliced W2), as a Markdown table.</summary>
internal static class PosteriorStudyCommand
{
    /// <summary>Runs the command; returns the exit code.</summary>
    public static int Run(PosteriorStudySettings s, CliContext cli)
    {
        // The study's tables (docs/posterior-mixtures.md) were measured with the options before issue 18's defaults: step scale 0.1,
        // DPnP unadjusted with eta down to 0.03.
        var options = new AnnealedLangevinOptions { StepScale = 0.1 } with { Levels = s.Levels, StepsPerLevel = s.StepsPerLevel };
        var dpnp = s.Samplers.Contains("dpnp") ? new DpnpOptions { Iterations = s.DpnpIterations, Metropolis = false, EtaMin = 0.03 } : null;
        var dps = s.Samplers.Contains("dps") ? MixturePosteriorStudy.DefaultDps with { Steps = s.DpsSteps, StepSize = s.DpsZeta } : null;
        using var dev = GpuDevice.Open(s.Device);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var table = new List<MixturePosteriorStudy.Row>();
        using (var bar = cli.Progress("posterior-study", s.Dims.Length * s.Rows.Length, "settings"))
        {
            foreach (int d in s.Dims)
                foreach (int m in s.Rows)
                {
                    cli.Cancel.ThrowIfCancellationRequested();
                    table.AddRange(MixturePosteriorStudy.Run(dev, [d], [m], s.Chains, options, 1, dpnp, dps));
                    bar.Update(table.Count, $"d = {d}, m = {m} done");
                }
            bar.Finish($"{table.Count} setting(s) in {watch.Elapsed.TotalSeconds:F0} s");
        }
        cli.Out.WriteLine($"Gaussian-mixture priors (25 components), sigma_y = 0.1, {s.Chains} chains, annealed Langevin {options.Levels} x {options.StepsPerLevel} steps" +
                         (dpnp is null ? "" : $", DPnP (DDIM-type) {dpnp.Iterations} sweeps") + (dps is null ? "" : $", DPS {dps.Steps} steps zeta {dps.StepSize}") +
                         $", on {dev.Description} ({watch.Elapsed.TotalSeconds:F0} s)");
        cli.Out.WriteLine();
        cli.Out.Write(MixturePosteriorStudy.ToMarkdown(table));
        return ExitCodes.Ok;
    }

    /// <summary>The `posterior-study` command's options and parsing glue.</summary>
    public static Command Create(CommandSetup setup)
    {
        var defaults = new AnnealedLangevinOptions();
        var dims = CliOptions.IntList("--dims", "8,80", "dimensions of the prior, separated by commas");
        var rows = CliOptions.IntList("--rows", "1,2,4", "measurement rows (m), separated by commas");
        var chains = CliOptions.Int("--chains", 4096, "chains per sampler and setting", min: 2);
        var levels = CliOptions.Int("--levels", defaults.Levels, "annealed Langevin's levels", min: 1);
        var stepsPerLevel = CliOptions.Int("--steps-per-level", defaults.StepsPerLevel, "annealed Langevin's steps per level", min: 1);
        var samplers = new Option<string[]>("--samplers")
        {
            Description = "samplers besides annealed Langevin, separated by commas: dpnp, dps, or none",
            HelpName = "list",
            DefaultValueFactory = _ => ["dpnp", "dps"],
            CustomParser = r =>
            {
                var names = r.Tokens[0].Value.Split(',', StringSplitOptions.TrimEntries);
                foreach (var n in names)
                    if (n is not ("dpnp" or "dps" or "none")) r.AddError($"--samplers takes dpnp and dps separated by commas (or none), got '{n}'");
                return names;
            },
        };
        var dpnpIterations = CliOptions.Int("--dpnp-iterations", new DpnpOptions().Iterations, "DPnP's Gibbs sweeps", min: 1);
        var dpsSteps = CliOptions.Int("--dps-steps", MixturePosteriorStudy.DefaultDps.Steps, "DPS's reverse-diffusion steps", min: 1);
        var dpsZeta = CliOptions.Double("--dps-zeta", MixturePosteriorStudy.DefaultDps.StepSize, "DPS's zeta", min: 0);
        var command = new Command("posterior-study", "posterior samplers on Gaussian-mixture priors against exact posterior samples " +
            "(sliced Wasserstein-2), as a Markdown table (docs/posterior-mixtures.md)")
        {
            dims, rows, chains, levels, stepsPerLevel, samplers, dpnpIterations, dpsSteps, dpsZeta,
        };
        command.SetAction(p => Run(new PosteriorStudySettings(p.GetValue(dims)!, p.GetValue(rows)!, p.GetValue(chains), p.GetValue(levels),
            p.GetValue(stepsPerLevel), p.GetValue(samplers)!, p.GetValue(dpnpIterations), p.GetValue(dpsSteps), p.GetValue(dpsZeta), setup.DeviceOf(p)), setup.Context));
        return command;
    }
}

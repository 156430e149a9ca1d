using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using PosteriorGpu.Cli.Studies;
using PosteriorGpu.Kernels.Device;

namespace PosteriorGpu.Cli;

/// <summary>`posteriorgpu paper-figure4`: Xun, Gupta and Price's Figure 4 on MNIST (<see cref="PaperFigure4Study"/>);
/// writes figure4.json, figure4.md (the table) and figure4.png (per task: L2 and FID against h, DPS dashed).</summary>
internal static class PaperFigure4Command
{
    private static readonly (byte, byte, byte) Red = (220, 70, 60), Blue = (70, 120, 230), Grey = (150, 150, 150);

    /// <summary>Runs the study and writes its files; returns the exit code.</summary>
    public static int Run(Figure4Settings s, string output, DeviceKind? device, CliContext cli, string commandLine)
    {
        CliFiles.CreateOutputFolder(output);
        using var dev = GpuDevice.Open(device);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        // The files are rewritten after each task, so that a long run that is stopped leaves its finished tasks.
        void Write(PaperFigure4Study.Result result, bool complete)
        {
            string md = Markdown(result, s, dev.Description, watch.Elapsed.TotalSeconds, commandLine, complete);
            CliFiles.Writing("output folder", output, () =>
            {
                File.WriteAllText(Path.Combine(output, "figure4.md"), md);
                File.WriteAllText(Path.Combine(output, "figure4.json"), Json(result, s).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
                Plot(result).WritePng(Path.Combine(output, "figure4.png"));
            });
        }
        Write(PaperFigure4Study.Run(dev, s, cli.Out, cli.Cancel, partial => Write(partial, false)), true);
        cli.Out.WriteLine($"paper-figure4: wrote {output}/figure4.md, figure4.json and figure4.png in {watch.Elapsed.TotalSeconds:F0} s");
        return ExitCodes.Ok;
    }

    /// <summary>The `paper-figure4` command's options and parsing glue.</summary>
    public static Command Create(CommandSetup setup)
    {
        var d = new Figure4Settings();
        var common = new HeldOutDigitOptions(d, "held-out MNIST test digits, one sample each");
        var tasks = HeldOutDigitOptions.List("--tasks", d.Tasks, "tasks, separated by commas: inpaintNN (NN % of pixels missing at random), superresF, deblur",
            t => PaperFigure4Study.Task(t));
        var dpsSteps = CliOptions.Int("--dps-steps", d.DpsSteps, "DPS reverse-diffusion steps (the warm start and the baseline)", min: 1);
        var t0 = CliOptions.Int("--t0", d.Timestep, "the timestep DPS's output is re-noised to", min: 1);
        var levels = CliOptions.Int("--levels", d.Levels, "levels of the local annealed Langevin (fixed across h)", min: 1);
        var stepsPerLevel = CliOptions.Int("--steps-per-level", d.StepsPerLevel, "Langevin steps per level", min: 1);
        var priorTimestep = CliOptions.Int("--prior-timestep", d.PriorTimestep, "the diffusion timestep whose score is the Langevin's prior score " +
                                                                            "(samples keep that level's noise; smaller is stiffer)", min: 0);
        var stepSizes = new Option<double[]>("--step-sizes")
        {
            Description = "the constant step sizes h swept, separated by commas", HelpName = "list",
            DefaultValueFactory = _ => [.. d.StepSizes],
            CustomParser = r =>
            {
                string text = r.Tokens.Count > 0 ? r.Tokens[0].Value : "";
                var values = new List<double>();
                foreach (string part in text.Split(',', StringSplitOptions.TrimEntries))
                {
                    if (!double.TryParse(part, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || !(v > 0) || !double.IsFinite(v))
                    {
                        r.AddError($"--step-sizes takes positive numbers separated by commas, but got '{part}' in '{text}'");
                        return [];
                    }
                    values.Add(v);
                }
                return [.. values];
            },
        };
        var output = CliOptions.Path("--out", "out/figure4", "output folder");
        var command = new Command("paper-figure4", "Figure 4 of Xun, Gupta and Price on MNIST: DPS alone vs DPS + local annealed Langevin over a sweep of h; L2 and FID (docs/paper-figure4.md)")
        {
            tasks, dpsSteps, t0, levels, stepsPerLevel, stepSizes, priorTimestep, output,
        };
        common.AddTo(command);
        command.SetAction(p =>
        {
            var settings = common.Read(p, d with
            {
                Tasks = p.GetValue(tasks)!, DpsSteps = p.GetValue(dpsSteps), Timestep = p.GetValue(t0), Levels = p.GetValue(levels),
                StepsPerLevel = p.GetValue(stepsPerLevel), StepSizes = p.GetValue(stepSizes)!, PriorTimestep = p.GetValue(priorTimestep),
            });
            string line = "posteriorgpu " + string.Join(' ', p.Tokens.Select(t => t.Value));
            return Run(settings, p.GetValue(output)!, setup.DeviceOf(p), setup.Context, line);
        });
        return command;
    }

    /// <summary>The table as Markdown, with the run's conditions.</summary>
    public static string Markdown(PaperFigure4Study.Result r, Figure4Settings s, string device, double seconds, string commandLine, bool complete)
    {
        var b = new StringBuilder();
        b.AppendLine(CultureInfo.InvariantCulture, $"    {commandLine}");
        b.AppendLine();
        if (!complete) b.AppendLine("**Partial: the tasks finished so far.**\n");
        b.AppendLine(CultureInfo.InvariantCulture, $"{r.Digits} held-out MNIST test digits (indices {s.FirstDigit}..{s.FirstDigit + r.Digits - 1}), one sample each, " +
                                                   $"sigma_y {s.SigmaY}, seed {s.Seed}, on {device}, {seconds:F0} s. Budget: {r.Budget}.");
        b.AppendLine(CultureInfo.InvariantCulture, $"FID of the true digits themselves against test images 0..{s.FirstDigit - 1}: {r.TruthFid:F2} (the floor at this count).");
        b.AppendLine();
        b.AppendLine("| task | method | h | Langevin time | L2 to the truth (mean +- se) | L2 - DPS's, same digit (mean +- se) | FID | seconds |");
        b.AppendLine("|---|---|---|---|---|---|---|---|");
        foreach (var row in r.Rows)
        {
            string paired = double.IsNaN(row.L2PairedDifference) ? "-"
                : string.Create(CultureInfo.InvariantCulture, $"{row.L2PairedDifference:+0.000;-0.000} +- {row.L2PairedStandardError:F3}");
            b.AppendLine(CultureInfo.InvariantCulture,
                $"| {row.Task} | {row.Method} | {(row.StepSize is double h ? h.ToString("G3", CultureInfo.InvariantCulture) : "-")} | {row.LangevinTime:G3} | " +
                $"{row.L2Mean:F3} +- {row.L2StandardError:F3} | {paired} | {row.Fid:F2} | {row.Seconds:F0} |");
        }
        return b.ToString();
    }

    private static JsonObject Json(PaperFigure4Study.Result r, Figure4Settings s) => new()
    {
        ["digits"] = r.Digits, ["first_digit"] = s.FirstDigit, ["sigma_y"] = s.SigmaY, ["seed"] = s.Seed, ["budget"] = r.Budget,
        ["truth_fid"] = r.TruthFid,
        ["rows"] = new JsonArray(r.Rows.Select(row => (JsonNode)new JsonObject
        {
            ["task"] = row.Task, ["method"] = row.Method, ["step_size"] = row.StepSize, ["langevin_time"] = row.LangevinTime,
            ["l2_mean"] = row.L2Mean, ["l2_standard_error"] = row.L2StandardError, ["fid"] = row.Fid, ["seconds"] = row.Seconds,
            ["l2_paired_difference"] = double.IsNaN(row.L2PairedDifference) ? null : row.L2PairedDifference,
            ["l2_paired_standard_error"] = double.IsNaN(row.L2PairedStandardError) ? null : row.L2PairedStandardError,
        }).ToArray()),
    };

    /// <summary>The figure: one row per task, an L2 panel and a FID panel, h on a log axis, DPS alone dashed.</summary>
    public static RgbImage Plot(PaperFigure4Study.Result r)
    {
        const int scale = 2, panelWidth = 420, panelHeight = 300, gap = 24;
        var tasks = r.Rows.Select(row => row.Task).Distinct().ToArray();
        var image = new RgbImage(2 * panelWidth + 3 * gap, tasks.Length * (panelHeight + gap) + gap);
        image.Fill(0, 0, image.Width, image.Height, LabelledGrid.Background);
        for (int t = 0; t < tasks.Length; t++)
        {
            var rows = r.Rows.Where(row => row.Task == tasks[t]).ToArray();
            var local = rows.Where(row => row.StepSize is not null).OrderBy(row => row.StepSize).ToArray();
            var dps = rows.First(row => row.StepSize is null);
            double[] h = [.. local.Select(row => row.StepSize!.Value)];
            int top = gap + t * (panelHeight + gap);
            new LinePlot
            {
                Title = $"{tasks[t]}: L2 TO THE TRUTH", XLabel = "H", LogX = true,
                Series = [new PlotSeries("DPS + ANNEALED LANGEVIN", h, [.. local.Select(row => row.L2Mean)], Red)],
                Baselines = [new PlotBaseline("DPS ALONE", dps.L2Mean, Red)],
            }.Draw(image, gap, top, panelWidth, panelHeight, scale, LabelledGrid.Ink);
            new LinePlot
            {
                Title = $"{tasks[t]}: FID", XLabel = "H", LogX = true,
                Series = [new PlotSeries("DPS + ANNEALED LANGEVIN", h, [.. local.Select(row => row.Fid)], Blue)],
                Baselines = [new PlotBaseline("DPS ALONE", dps.Fid, Blue), new PlotBaseline("TRUE DIGITS", r.TruthFid, Grey)],
            }.Draw(image, 2 * gap + panelWidth, top, panelWidth, panelHeight, scale, LabelledGrid.Ink);
        }
        return image;
    }
}

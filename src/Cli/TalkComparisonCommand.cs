using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using PosteriorGpu.Cli.Studies;
using PosteriorGpu.Kernels.Device;

namespace PosteriorGpu.Cli;

/// <summary>`posteriorgpu talk-comparison`: the talk's table (Xu and Chi's comparison) on MNIST, DPnP vs DPS vs LGD-MC at
/// one budget in network evaluations (<see cref="TalkComparisonStudy"/>); writes comparison.md and comparison.json, again
/// after each task.</summary>
internal static class TalkComparisonCommand
{
    /// <summary>Runs the study and writes its files; returns the exit code.</summary>
    public static int Run(TalkSettings s, string output, DeviceKind? device, CliContext cli, string commandLine)
    {
        CliFiles.CreateOutputFolder(output);
        using var dev = GpuDevice.Open(device);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        void Write(TalkComparisonStudy.Result r, bool complete) => CliFiles.Writing("output folder", output, () =>
        {
            File.WriteAllText(Path.Combine(output, "comparison.md"), Markdown(r, s, dev.Description, watch.Elapsed.TotalSeconds, commandLine, complete));
            File.WriteAllText(Path.Combine(output, "comparison.json"), Json(r, s, commandLine, complete).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        });
        var result = TalkComparisonStudy.Run(dev, s, cli.Out, partial => Write(partial, false), cli.Cancel);
        Write(result, true);
        cli.Out.WriteLine($"talk-comparison: wrote {output}/comparison.md and comparison.json in {watch.Elapsed.TotalSeconds:F0} s");
        return ExitCodes.Ok;
    }

    /// <summary>The `talk-comparison` command's options and parsing glue.</summary>
    public static Command Create(CommandSetup setup)
    {
        var d = new TalkSettings();
        var common = new HeldOutDigitOptions(d, "held-out MNIST test digits, one sample each per task and method");
        var tasks = HeldOutDigitOptions.List("--tasks", d.Tasks, "tasks, separated by commas: superresF, phase, onebit (also inpaintNN, deblur)", t => TalkComparisonStudy.Task(t));
        var methods = HeldOutDigitOptions.List("--methods", d.Methods, "methods, separated by commas: dpnp, dps, lgd-mc", m => TalkComparisonStudy.PlanFor(m, "superres", 1000));
        var nfe = CliOptions.Int("--nfe", d.Budget, "network evaluations per image, the same for every method (DPS and LGD-MC: one step each, " +
                                                    "plus a backward pass; DPnP: prior draw + sweeps x 4-call denoising draws)", min: 5);
        var output = CliOptions.Path("--out", "out/talk-comparison", "output folder");
        var command = new Command("talk-comparison", "the talk's comparison on MNIST: DPnP vs DPS vs LGD-MC at the same budget in network " +
                                                     "evaluations; PSNR, FID, time per image (docs/talk-comparison.md)")
        {
            tasks, methods, nfe, output,
        };
        common.AddTo(command);
        command.SetAction(p =>
        {
            var settings = common.Read(p, d with { Tasks = p.GetValue(tasks)!, Methods = p.GetValue(methods)!, Budget = p.GetValue(nfe) });
            string line = "posteriorgpu " + string.Join(' ', p.Tokens.Select(t => t.Value));
            return Run(settings, p.GetValue(output)!, setup.DeviceOf(p), setup.Context, line);
        });
        return command;
    }

    /// <summary>The table as Markdown, with the command and the run's conditions.</summary>
    public static string Markdown(TalkComparisonStudy.Result r, TalkSettings s, string device, double seconds, string commandLine, bool complete)
    {
        var inv = CultureInfo.InvariantCulture;
        var b = new StringBuilder();
        b.AppendLine(inv, $"    {commandLine}");
        b.AppendLine();
        if (!complete) b.AppendLine("**Partial: the tasks finished so far.**\n");
        b.AppendLine(inv, $"{r.Digits} held-out MNIST test digits (indices {s.FirstDigit}..{s.FirstDigit + r.Digits - 1}), one sample each per task and " +
                          $"method, the same measurement per digit for every method; sigma_y {s.SigmaY}, seed {s.Seed}, batch {s.Batch}, on {device}, {seconds:F0} s in all.");
        b.AppendLine(inv, $"Budget: {r.Budget} network evaluations per image for every method (counted). DPS and LGD-MC also make one backward " +
                          $"pass (vector-Jacobian product) per step; DPnP makes none. LGD-MC's particles cost forward-operator calls, not network evaluations.");
        b.AppendLine(inv, $"PSNR of the samples (clipped to [-1, 1]) against the true digit, mean +- standard error over the digits. FID of the {r.Digits} " +
                          $"samples against MNIST test images 0..{s.FirstDigit - 1}; the true digits themselves score {r.TruthFid:F2} (the floor at this count).");
        b.AppendLine();
        b.AppendLine("| task | method | NFE / image | backward / image | PSNR (dB) | FID | s / image | budget split |");
        b.AppendLine("|---|---|---|---|---|---|---|---|");
        foreach (var row in r.Rows)
        {
            // A failed cell has its reason where the PSNR would be and no FID.
            string metrics = row.Failure is { } failure ? $"failed: {failure} | -"
                : string.Create(inv, $"{row.PsnrMean:F2} +- {row.PsnrStandardError:F2} | {row.Fid:F2}");
            b.AppendLine(inv, $"| {row.Task} | {row.Method} | {row.CountedEvaluations:G4} | {row.CountedBackward:G4} | {metrics} | {row.SecondsPerImage:F2} | {row.Split} |");
        }
        return b.ToString();
    }

    private static JsonObject Json(TalkComparisonStudy.Result r, TalkSettings s, string commandLine, bool complete) => new()
    {
        ["command"] = commandLine, ["complete"] = complete, ["digits"] = r.Digits, ["first_digit"] = s.FirstDigit, ["sigma_y"] = s.SigmaY,
        ["seed"] = s.Seed, ["batch"] = s.Batch, ["nfe"] = r.Budget, ["truth_fid"] = r.TruthFid,
        ["rows"] = new JsonArray(r.Rows.Select(row => (JsonNode)new JsonObject
        {
            ["task"] = row.Task, ["method"] = row.Method, ["nfe_planned"] = row.Evaluations, ["nfe_counted"] = row.CountedEvaluations,
            ["backward_counted"] = row.CountedBackward, ["psnr_mean"] = Finite(row.PsnrMean), ["psnr_standard_error"] = Finite(row.PsnrStandardError),
            ["fid"] = Finite(row.Fid), ["seconds_per_image"] = row.SecondsPerImage, ["split"] = row.Split, ["failure"] = row.Failure,
        }).ToArray()),
    };

    /// <summary>JSON has no NaN: a failed cell's metrics (and one digit's standard error) are written as null.</summary>
    private static JsonNode? Finite(double v) => double.IsFinite(v) ? JsonValue.Create(v) : null;
}

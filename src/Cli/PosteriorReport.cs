using Spectre.Console;
using System.Text.Json;
using PosteriorGpu.Models.IO;
using PosteriorGpu.Samplers.Diagnostics;
using PosteriorGpu.Samplers.Operators;

namespace PosteriorGpu.Cli;

/// <summary>
/// The outputs of a `posterior` run: grid.png (labelled columns, one row per input: ground truth | measurement | up to
/// <see cref="MaxSampleColumns"/> posterior samples | posterior mean | per-pixel posterior standard
/// deviation on its own scale with a legend; the last two only with two samples or more), the arrays as .npy, and metrics.json (PSNR and SSIM of the samples and of the mean against
/// the truth, for inpainting also on the missing pixels and for the trivial fill, the measurement residual).
/// Samples are clipped to [-1, 1], the images' range, before the mean, the deviation and every metric.
/// </summary>
internal sealed class PosteriorReport(PosteriorTask task, int c, int h, int w, int samples)
{
    /// <summary>Most sample columns in the grid.</summary>
    public const int MaxSampleColumns = 4;

    private int D => c * h * w;

    private int N => Truth.Length / D;

    /// <summary>Ground truth [n, C, H, W].</summary>
    public required float[] Truth { get; init; }

    /// <summary>Samples [n, S, C, H, W] as drawn.</summary>
    public required float[] Samples { get; init; }

    /// <summary>The measurements as images [n, C, H, W] (the operator's <see cref="IForwardOperator.Preview"/>).</summary>
    public required float[] Measurements { get; init; }

    /// <summary>The operator's discrepancy per sample [n S] (<see cref="IForwardOperator.Discrepancy"/>: ||A(x_s) - y|| / sigma_y,
    /// for one-bit the fraction of signs reproduced).</summary>
    public required double[] Residuals { get; init; }

    /// <summary>The same for the ground truth, per input [n].</summary>
    public required double[] TruthResiduals { get; init; }

    private float[]? clipped, mean, std;

    private float[] Clipped => clipped ??= Samples.Select(v => float.IsNaN(v) ? 0f : Math.Clamp(v, -1f, 1f)).ToArray();

    /// <summary>Posterior mean per input [n, C, H, W] (of the clipped samples).</summary>
    public float[] Mean
    {
        get
        {
            if (mean is not null) return mean;
            mean = new float[N * D];
            for (int i = 0; i < N; i++)
                for (int s = 0; s < samples; s++)
                    for (int j = 0; j < D; j++) mean[i * D + j] += Clipped[(i * samples + s) * D + j] / samples;
            return mean;
        }
    }

    /// <summary>Per-pixel posterior standard deviation per input [n, C, H, W] (sample estimate, S - 1; 0 for one sample).</summary>
    public float[] Std
    {
        get
        {
            if (std is not null) return std;
            std = new float[N * D];
            if (samples < 2) return std;
            for (int i = 0; i < N; i++)
                for (int j = 0; j < D; j++)
                {
                    double sum = 0, mu = Mean[i * D + j];
                    for (int s = 0; s < samples; s++)
                    {
                        double r = Clipped[(i * samples + s) * D + j] - mu;
                        sum += r * r;
                    }
                    std[i * D + j] = (float)Math.Sqrt(sum / (samples - 1));
                }
            return std;
        }
    }

    /// <summary>The largest standard deviation, which the grid shows as white (0 is black).</summary>
    public float StdDisplayMax => Math.Max(1e-6f, Std.DefaultIfEmpty(0f).Max());

    private ReadOnlySpan<float> Item(float[] a, int i) => a.AsSpan(i * D, D);

    private ReadOnlySpan<float> SampleOf(int i, int s) => Clipped.AsSpan((i * samples + s) * D, D);

    /// <summary>A line over the grid (task, sampler); null for none.</summary>
    public string? Title { get; init; }

    /// <summary>True when the grid shows the posterior mean and standard deviation: with one sample they would only
    /// repeat the sample and show black.</summary>
    public bool ShowsMoments => samples >= 2;

    /// <summary>The grid's column titles, left to right.</summary>
    public string[] Columns =>
        ["truth", "measurement", .. Enumerable.Range(0, Math.Min(samples, MaxSampleColumns)).Select(s => $"sample {s + 1}"),
         .. ShowsMoments ? new[] { "mean", "std" } : []];

    /// <summary>The grid: one row per input ("#i"), the columns of <see cref="Columns"/>; the std column on its own
    /// scale, black at 0 and white at <see cref="StdDisplayMax"/>, with a legend under it.</summary>
    public LabelledGrid Grid()
    {
        var columns = Columns.Select(name => name == "std" ? new GridColumn(name, 0, StdDisplayMax, Legend: true) : new GridColumn(name)).ToList();
        var grid = new LabelledGrid(c, h, w) { Title = Title, Columns = columns };
        for (int i = 0; i < N; i++)
        {
            var cells = new List<float[]?> { Item(Truth, i).ToArray(), Item(Measurements, i).ToArray() };
            for (int s = 0; s < Math.Min(samples, MaxSampleColumns); s++) cells.Add(SampleOf(i, s).ToArray());
            if (ShowsMoments)
            {
                cells.Add(Item(Mean, i).ToArray());
                cells.Add(Item(Std, i).ToArray());
            }
            grid.AddRow($"#{i}", [.. cells]);
        }
        return grid;
    }

    /// <summary>Writes grid.png and the arrays; returns their paths.</summary>
    public string[] Write(string folder)
    {
        string grid = Path.Combine(folder, "grid.png");
        Grid().WritePng(grid);
        var paths = new List<string> { grid };
        void Save(string name, float[] data, params int[] shape)
        {
            string p = Path.Combine(folder, name);
            Npy.Write(p, data, shape);
            paths.Add(p);
        }
        Save("truth.npy", Truth, N, c, h, w);
        Save("measurement.npy", Measurements, N, c, h, w);
        Save("samples.npy", Samples, N, samples, c, h, w);
        Save("mean.npy", Mean, N, c, h, w);
        Save("std.npy", Std, N, c, h, w);
        return [.. paths];
    }

    /// <summary>Per-input metrics, in metrics.json's names.</summary>
    public List<Dictionary<string, object?>> PerInput()
    {
        var list = new List<Dictionary<string, object?>>();
        for (int i = 0; i < N; i++)
        {
            var truth = Item(Truth, i).ToArray();
            var sampleIdx = Enumerable.Range(0, samples);
            var e = new Dictionary<string, object?>
            {
                ["index"] = i,
                ["psnr_mean"] = R(ImageMetrics.Psnr(Item(Mean, i), truth)),
                ["ssim_mean"] = R(ImageMetrics.Ssim(Item(Mean, i), truth, c, h, w)),
                ["psnr_samples"] = R(sampleIdx.Average(s => ImageMetrics.Psnr(SampleOf(i, s), truth))),
                ["ssim_samples"] = R(sampleIdx.Average(s => ImageMetrics.Ssim(SampleOf(i, s), truth, c, h, w))),
                [ResidualName] = R(sampleIdx.Average(s => Residuals[i * samples + s])),
                [ResidualName.Replace("samples", "truth")] = R(TruthResiduals[i]),
                ["mean_std"] = R(Item(Std, i).ToArray().Average()),
            };
            if (task.MissingMask is { } missing)
            {
                var fill = task.TrivialFill(truth, 1);
                e["psnr_missing_mean"] = R(ImageMetrics.Psnr(Item(Mean, i), truth, missing));
                e["psnr_missing_samples"] = R(sampleIdx.Average(s => ImageMetrics.Psnr(SampleOf(i, s), truth, missing)));
                e["psnr_missing_trivial_fill"] = R(ImageMetrics.Psnr(fill, truth, missing));
                e["psnr_trivial_fill"] = R(ImageMetrics.Psnr(fill, truth));
                e["ssim_trivial_fill"] = R(ImageMetrics.Ssim(fill, truth, c, h, w));
            }
            list.Add(e);
        }
        return list;
    }

    private MeasurementDiscrepancy Discrepancy => task.Operator.Discrepancy;

    private string ResidualName => $"{Discrepancy.Name}_samples";

    /// <summary>Averages of the per-input metrics over the inputs (infinite PSNRs count as missing).</summary>
    public Dictionary<string, object?> Averages()
    {
        var per = PerInput();
        var result = new Dictionary<string, object?>();
        foreach (string key in per[0].Keys.Where(k => k != "index"))
        {
            var values = per.Select(e => e[key]).OfType<double>().ToList();
            result[key] = values.Count > 0 ? R(values.Average()) : null;
        }
        return result;
    }

    /// <summary>Writes metrics.json; returns its path.</summary>
    public string WriteMetrics(string folder, Dictionary<string, object?> options, Dictionary<string, object?> run)
    {
        var doc = new Dictionary<string, object?>
        {
            ["command"] = "posterior",
            ["options"] = options,
            ["run"] = run,
            ["notes"] = "Images in [-1, 1]; PSNR uses data range 2; SSIM as scikit-image's default (7 x 7 uniform window). " +
                        "Samples are clipped to [-1, 1] before means, deviations and metrics. residual_over_sigma = ||A(x) - y|| / sigma_y " +
                        "(about sqrt(measurement_size) for a draw consistent with the noise; the truth's value shows it). " +
                        "Inpainting: psnr_missing_* is PSNR over the missing pixels; the trivial fill puts the mean of the observed pixels there.",
            ["average"] = Averages(),
            ["per_input"] = PerInput(),
            ["grid"] = new Dictionary<string, object?>
            {
                ["file"] = "grid.png",
                ["rows"] = "inputs, in input order",
                ["columns"] = Columns,
                ["std_white_at"] = ShowsMoments ? R(StdDisplayMax) : null,
                ["scale"] = Grid().Scale,
            },
        };
        string path = Path.Combine(folder, "metrics.json");
        File.WriteAllText(path, JsonSerializer.Serialize(doc, new JsonSerializerOptions { WriteIndented = true }) + "\n");
        return path;
    }

    /// <summary>The averages that matter most, as a table on stdout (plain text off a terminal).</summary>
    public void WriteSummary(CliContext cli)
    {
        var a = Averages();
        string F(string key, string format = "F2") => a.TryGetValue(key, out var v) && v is double d ? d.ToString(format, System.Globalization.CultureInfo.InvariantCulture) : "n/a";
        var table = new Table().AddColumn("metric").AddColumn(new TableColumn("posterior mean").RightAligned())
            .AddColumn(new TableColumn("samples").RightAligned()).AddColumn(new TableColumn("reference").RightAligned());
        table.AddRow("PSNR, dB", F("psnr_mean"), F("psnr_samples"), "");
        table.AddRow("SSIM", F("ssim_mean", "F3"), F("ssim_samples", "F3"), "");
        table.AddRow(Markup.Escape(Discrepancy.Label), "", F($"{Discrepancy.Name}_samples", Discrepancy.Format),
            $"truth {F($"{Discrepancy.Name}_truth", Discrepancy.Format)}");
        if (task.MissingMask is not null)
            table.AddRow("missing pixels: PSNR, dB", F("psnr_missing_mean"), F("psnr_missing_samples"), $"trivial fill {F("psnr_missing_trivial_fill")}");
        cli.OutConsole.Write(table);
    }

    /// <summary>Rounds for JSON; non-finite values become null (JSON has no NaN or infinity).</summary>
    private static double? R(double v) => double.IsFinite(v) ? Math.Round(v, 5) : null;
}

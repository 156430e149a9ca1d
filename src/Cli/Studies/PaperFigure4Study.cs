using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.Classifier;
using PosteriorGpu.Models.Data;
using PosteriorGpu.Samplers.Diagnostics;
using PosteriorGpu.Samplers.Posterior;

namespace PosteriorGpu.Cli.Studies;

/// <summary>The settings of <see cref="PaperFigure4Study"/>: which digits, which tasks, the DPS budget, the local annealed
/// Langevin's fixed schedule and the constant step sizes swept.</summary>
internal sealed record Figure4Settings : HeldOutDigitSettings
{
    /// <summary>64 digits by default.</summary>
    public Figure4Settings() => Digits = 64;

    /// <summary>The tasks: inpaint30, inpaint50, inpaint70 (that percentage of pixels missing at random), superres4,
    /// deblur (Gaussian, sigma 2 px).</summary>
    public IReadOnlyList<string> Tasks { get; init; } = ["inpaint30", "inpaint50", "inpaint70", "superres4", "deblur"];

    /// <summary>DPS's reverse-diffusion steps (its zeta is the task's, as in `posterior`).</summary>
    public int DpsSteps { get; init; } = 24;

    /// <summary>t0, the timestep the DPS output is re-noised to.</summary>
    public int Timestep { get; init; } = 100;

    /// <summary>Levels of the local annealed Langevin (the paper: on the order of a thousand, one step each).</summary>
    public int Levels { get; init; } = 1000;

    /// <summary>Langevin steps per level.</summary>
    public int StepsPerLevel { get; init; } = 1;

    /// <summary>The diffusion timestep whose score is the Langevin's prior score (the image preset's 50 by default). The
    /// chains sample the prior smoothed to that level, so their samples keep its noise (sigma_t = sqrt(1 - alpha_bar_t):
    /// 0.17 at t = 50, 0.047 at t = 10 for the linear schedule), while a smaller t is stiffer (h must stay below about
    /// 2 (1 - alpha_bar_t)).</summary>
    public int PriorTimestep { get; init; } = AnnealedLangevinOptions.Image32.PriorTimestep;

    /// <summary>The constant step sizes h swept (the schedule stays fixed).</summary>
    public IReadOnlyList<double> StepSizes { get; init; } = [1e-4, 3e-4, 1e-3];
}

/// <summary>
/// Xun, Gupta and Price's Figure 4 on MNIST: for each task, DPS alone and DPS followed by the local annealed Langevin
/// (<see cref="DpsLangevinSampler"/>, the schedule fixed, a constant step size h swept), one sample per held-out test
/// digit; the per-image L2 distance to the truth (mean and standard error) and the FID of the samples against the MNIST
/// test set (<see cref="MnistFid"/>), beside the FID of the true digits themselves (the floor at this sample count:
/// FID is biased upwards for small sets, so compare rows at equal counts only).
/// </summary>
internal static class PaperFigure4Study
{
    /// <summary>One point of the figure.</summary>
    /// <param name="Task">The task's name.</param>
    /// <param name="Method">"dps" or "dps+langevin".</param>
    /// <param name="StepSize">h (null for DPS alone).</param>
    /// <param name="L2Mean">Mean per-image L2 distance to the truth (images in [-1, 1]).</param>
    /// <param name="L2StandardError">Its standard error over the digits.</param>
    /// <param name="Fid">FID of the samples against the reference.</param>
    /// <param name="LangevinTime">Total Langevin time of the local run (0 for DPS).</param>
    /// <param name="Seconds">Wall time of this row's sampling.</param>
    /// <param name="L2PairedDifference">For a refinement row: the mean over the digits of its L2 minus DPS's L2 on the same
    /// digit (the refinement starts from DPS's sample of that digit, so the pair shares most of its noise); NaN for DPS.</param>
    /// <param name="L2PairedStandardError">That mean's standard error over the digits (NaN for DPS).</param>
    public sealed record Row(string Task, string Method, double? StepSize, double L2Mean, double L2StandardError, double Fid,
        double LangevinTime, double Seconds, double L2PairedDifference = double.NaN, double L2PairedStandardError = double.NaN);

    /// <summary>The figure's points and the FID of the true digits.</summary>
    public sealed record Result(IReadOnlyList<Row> Rows, double TruthFid, int Digits, string Budget);

    /// <summary>Splits a task name into the `posterior` task and its settings.</summary>
    /// <exception cref="UsageException">Unknown task name.</exception>
    public static (string Task, TaskSettings Settings) Task(string name) => name switch
    {
        _ when name.StartsWith("inpaint", StringComparison.Ordinal) && int.TryParse(name["inpaint".Length..], out int missing) && missing is > 0 and < 100 =>
            ("inpaint", new TaskSettings { Mask = "random", Ratio = 1 - missing / 100.0 }),
        _ when name.StartsWith("superres", StringComparison.Ordinal) && int.TryParse(name["superres".Length..], out int factor) =>
            ("superres", new TaskSettings { Factor = factor }),
        "deblur" => ("deblur", new TaskSettings()),
        _ => throw new UsageException($"figure 4 task '{name}': expected inpaintNN (NN % missing), superresF or deblur"),
    };

    /// <summary>Runs the study; <paramref name="log"/> gets a line per row, <paramref name="taskDone"/> (if given) the
    /// result so far after each task, so that a long run that is stopped leaves its finished tasks.</summary>
    public static Result Run(GpuDevice device, Figure4Settings s, TextWriter log, CancellationToken cancellationToken = default,
                             Action<Result>? taskDone = null)
    {
        var images = MnistImages.Load(MnistFolder.File(MnistFolder.TestImages, s.Mnist));
        if (s.FirstDigit < 2 || s.FirstDigit + s.Digits > images.Count)
            throw new UsageException($"digits {s.FirstDigit}..{s.FirstDigit + s.Digits - 1} do not fit the {images.Count} test images (and the FID reference needs the ones before)");
        var truth = images.ToArray(s.FirstDigit, s.Digits);
        using var classifier = ImageClassifier.Load(device, s.Classifier);
        var fid = new MnistFid(classifier);
        var reference = fid.Statistics(images.ToArray(0, s.FirstDigit));
        double truthFid = fid.Distance(truth, reference);
        log.WriteLine($"figure 4: {s.Digits} test digits from index {s.FirstDigit}; FID of the true digits against test images 0..{s.FirstDigit - 1}: {truthFid:F2}");

        using var model = DiffusionModel.Load(device, s.Model, withGradients: true);
        var rows = new List<Row>();
        foreach (string name in s.Tasks)
        {
            var (taskName, settings) = Task(name);
            using var task = PosteriorTask.Create(taskName, device, model.Channels, model.Height, model.Width, settings);
            var dps = DpsOptions.Image32 with { Steps = s.DpsSteps, StepSize = PosteriorTask.DpsZeta(taskName) };
            var watch = System.Diagnostics.Stopwatch.StartNew();
            var warm = Sample(model, task, truth, s, (x, y, first) => dps.CreateSampler(model.Network, model.Schedule)
                .Sample(x, y, task.Operator, (float)s.SigmaY, s.Seed, first, null, cancellationToken));
            var dpsL2 = L2(warm, truth);
            rows.Add(Score(name, "dps", null, warm, dpsL2, fid, reference, 0, watch.Elapsed.TotalSeconds, null));
            log.WriteLine(Format(rows[^1]));
            foreach (double h in s.StepSizes)
            {
                var options = new DpsLangevinOptions
                {
                    Dps = dps, Timestep = s.Timestep,
                    Langevin = AnnealedLangevinOptions.Image32 with { Levels = s.Levels, StepsPerLevel = s.StepsPerLevel, StepSize = h, PriorTimestep = s.PriorTimestep },
                };
                var pipeline = new DpsLangevinSampler(model.Network, model.Schedule, options);
                double time = 0;
                watch.Restart();
                var local = Sample(model, task, truth, s, (x, y, first) =>
                {
                    x.CopyFrom(warm.AsSpan(checked((int)first * x.ItemLength), x.Length));
                    var run = pipeline.Refine(x, y, task.Operator, (float)s.SigmaY, s.Seed, first, null, cancellationToken);
                    time = run.Annealing?.TotalLangevinTime ?? 0;
                    return run;
                });
                rows.Add(Score(name, "dps+langevin", h, local, L2(local, truth), fid, reference, time, watch.Elapsed.TotalSeconds, dpsL2));
                log.WriteLine(Format(rows[^1]));
            }
            taskDone?.Invoke(new Result([.. rows], truthFid, s.Digits, Budget(s)));
        }
        return new Result(rows, truthFid, s.Digits, Budget(s));
    }

    private static string Budget(Figure4Settings s) =>
        $"DPS {s.DpsSteps} steps; re-noised to t0 = {s.Timestep}, reverse diffusion by {AnnealedLangevinOptions.Image32.PriorSampler} " +
        $"in {Math.Min(AnnealedLangevinOptions.Image32.PriorSteps, s.Timestep + 1)} steps, then {s.Levels} levels x {s.StepsPerLevel} " +
        $"Langevin steps (eta {AnnealedLangevinOptions.Image32.EtaMax} -> sigma_y {s.SigmaY}, prior score at t = {s.PriorTimestep})";

    /// <summary>One line of the log.</summary>
    public static string Format(Row r) =>
        $"  {r.Task,-10} {r.Method,-13} h {(r.StepSize is double h ? h.ToString("G3") : "-"),-7} L2 {r.L2Mean:F3} +- {r.L2StandardError:F3}  " +
        $"FID {r.Fid,8:F2}  Langevin time {r.LangevinTime:G3}  {r.Seconds:F0} s" +
        (double.IsNaN(r.L2PairedDifference) ? "" : $"  L2 - DPS's on the same digit {r.L2PairedDifference:+0.000;-0.000} +- {r.L2PairedStandardError:F3}");

    /// <summary>Runs <paramref name="sample"/> over the digits in batches (chain n is digit n, its measurement simulated
    /// with the seed's measurement stream) and returns the samples [Digits, C, H, W] on the host.</summary>
    private static float[] Sample(DiffusionModel model, PosteriorTask task, float[] truth, Figure4Settings s,
        Func<Tensor, Tensor, long, PosteriorRun> sample)
    {
        var device = model.Device;
        int d = model.ImageLength, m = Shape.Elements(task.Operator.MeasurementShape);
        var result = new float[truth.Length];
        for (int first = 0; first < s.Digits; first += s.Batch)
        {
            int n = Math.Min(s.Batch, s.Digits - first);
            using var x = Tensor.FromHost(device, truth.AsSpan(first * d, n * d), n, model.Channels, model.Height, model.Width);
            using var y = Tensor.Empty(device, [n, .. task.Operator.MeasurementShape]);
            task.Operator.Simulate(x, (float)s.SigmaY, PosteriorSampler.MeasurementDraw(s.Seed, first, m), y);
            sample(x, y, first);
            x.ToHost().CopyTo(result, first * d);
        }
        return result;
    }

    /// <summary>A row from the samples (for FID), their per-digit L2 and, for a refinement, DPS's per-digit L2.</summary>
    private static Row Score(string task, string method, double? h, float[] samples, double[] l2, MnistFid fid,
        GaussianStatistics reference, double langevinTime, double seconds, double[]? dpsL2)
    {
        var (mean, se) = MeanAndStandardError(l2);
        var (diff, diffSe) = dpsL2 is null ? (double.NaN, double.NaN) : MeanAndStandardError([.. l2.Select((v, i) => v - dpsL2[i])]);
        return new Row(task, method, h, mean, se, fid.Distance(samples, reference), langevinTime, seconds, diff, diffSe);
    }

    /// <summary>The per-digit L2 distances of the samples to the truth.</summary>
    private static double[] L2(float[] samples, float[] truth)
    {
        int d = MnistImages.ImageLength, n = truth.Length / d;
        return [.. Enumerable.Range(0, n).Select(i => ImageMetrics.L2(samples.AsSpan(i * d, d), truth.AsSpan(i * d, d)))];
    }

    private static (double Mean, double StandardError) MeanAndStandardError(double[] v)
    {
        int n = v.Length;
        double mean = v.Average();
        return (mean, n > 1 ? Math.Sqrt(v.Sum(x => (x - mean) * (x - mean)) / (n - 1) / n) : double.NaN);
    }
}

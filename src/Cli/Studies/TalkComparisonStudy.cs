using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.Classifier;
using PosteriorGpu.Models.Data;
using PosteriorGpu.Samplers.Diagnostics;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Samplers.Posterior;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Cli.Studies;

/// <summary>The settings of <see cref="TalkComparisonStudy"/>: which digits, tasks and methods, and the budget in network
/// evaluations per image that every method gets.</summary>
internal sealed record TalkSettings : HeldOutDigitSettings
{
    /// <summary>16 digits by default.</summary>
    public TalkSettings() => Digits = 16;

    /// <summary>The tasks: superresF, phase, onebit (and Figure 4's inpaintNN and deblur).</summary>
    public IReadOnlyList<string> Tasks { get; init; } = ["superres4", "phase", "onebit"];

    /// <summary>The methods: dpnp, dps, lgd-mc.</summary>
    public IReadOnlyList<string> Methods { get; init; } = ["dpnp", "dps", "lgd-mc"];

    /// <summary>Network evaluations per image, the same for every method (<see cref="TalkComparisonStudy.Plan"/>).</summary>
    public int Budget { get; init; } = 50;
}

/// <summary>
/// The talk's comparison (Xu and Chi's table) on MNIST: DPnP, DPS and LGD-MC on super-resolution, phase retrieval and
/// one-bit sensing, each with the same budget in network evaluations per image, on the same held-out test digits with
/// the same measurements (same seed, same measurement noise per digit). Per task and method: the mean PSNR of the
/// samples against the truth (with its standard error over the digits), the FID of the samples against the MNIST test
/// images before the first digit (beside the FID of the true digits themselves, the floor at this count), the wall
/// time per image and the network evaluations counted by <see cref="CountingScoreModel"/>.
/// </summary>
internal static class TalkComparisonStudy
{
    /// <summary>The methods the study knows.</summary>
    public static readonly IReadOnlyList<string> MethodNames = ["dpnp", "dps", "lgd-mc"];

    /// <summary>How a method spends the budget: its options, the network evaluations per image they make (forward
    /// passes at distinct inputs, the unit of the budget) and the vector-Jacobian products per image on top.</summary>
    /// <param name="Method">dpnp, dps or lgd-mc.</param>
    /// <param name="Options">The sampler's options.</param>
    /// <param name="Evaluations">Network evaluations per image.</param>
    /// <param name="Backward">Backward passes per image (vector-Jacobian products through the network).</param>
    /// <param name="Split">How the evaluations are spent, in words.</param>
    public sealed record Plan(string Method, PosteriorMethodOptions Options, int Evaluations, int Backward, string Split);

    /// <summary>One cell of the table.</summary>
    /// <param name="Task">The task's name.</param>
    /// <param name="Method">The method's name.</param>
    /// <param name="Evaluations">Planned network evaluations per image.</param>
    /// <param name="CountedEvaluations">Counted: items through the network's epsilon per image.</param>
    /// <param name="CountedBackward">Counted: items through the network's vector-Jacobian product per image.</param>
    /// <param name="PsnrMean">Mean PSNR (dB) of the samples (clipped to [-1, 1]) against the true digits.</param>
    /// <param name="PsnrStandardError">Its standard error over the digits.</param>
    /// <param name="Fid">FID of the samples against the reference.</param>
    /// <param name="SecondsPerImage">Wall time of the sampling divided by the digits.</param>
    /// <param name="Split">How the evaluations were spent.</param>
    /// <param name="Failure">Null for a finished cell; else why the method stopped (a chain diverged: the sampler's message),
    /// and the metrics are NaN. The study records it and goes on with the next cell.</param>
    public sealed record Row(string Task, string Method, int Evaluations, double CountedEvaluations, double CountedBackward,
        double PsnrMean, double PsnrStandardError, double Fid, double SecondsPerImage, string Split, string? Failure = null);

    /// <summary>The table so far and the FID of the true digits.</summary>
    public sealed record Result(IReadOnlyList<Row> Rows, double TruthFid, int Digits, int Budget);

    /// <summary>Splits a task name into the `posterior` task and its settings: phase and onebit as `posterior` builds
    /// them, the rest as Figure 4 names them (superresF, inpaintNN, deblur).</summary>
    /// <exception cref="UsageException">Unknown task name.</exception>
    public static (string Task, TaskSettings Settings) Task(string name)
    {
        if (name is "phase" or "onebit") return (name, new TaskSettings());
        try
        {
            return PaperFigure4Study.Task(name);
        }
        catch (UsageException)
        {
            throw new UsageException($"talk comparison task '{name}': expected superresF, phase, onebit, inpaintNN or deblur");
        }
    }

    /// <summary>
    /// Spends <paramref name="budget"/> network evaluations per image on <paramref name="method"/>. DPS and LGD-MC: one
    /// reverse-diffusion step per evaluation (each step also backpropagates once through the network; LGD-MC's particles
    /// perturb Tweedie's estimate after the network, so they cost forward-operator calls only, no network evaluations).
    /// DPnP: the `posterior` preset's 4-call denoising draw per Gibbs sweep, as many sweeps as fit after a DDIM prior
    /// draw of at least 8 steps, and the prior draw takes the remainder, so the total is the budget exactly (budget >= 5).
    /// </summary>
    /// <exception cref="UsageException">Unknown method, or a budget too small for it.</exception>
    public static Plan PlanFor(string method, string task, int budget, double? operatorNormSquared = null)
    {
        switch (method)
        {
            case "dps":
                Require(budget >= 1, method, budget, 1);
                return new Plan(method, DpsOptions.Image32 with { Steps = budget, StepSize = PosteriorTask.DpsZeta(task) }, budget, budget,
                    $"{budget} DDPM steps, zeta {PosteriorTask.DpsZeta(task)}");
            case "lgd-mc":
                Require(budget >= 1, method, budget, 1);
                var lg = LgdMcOptions.Image32 with { Steps = budget, StepSize = PosteriorTask.DpsZeta(task) };
                return new Plan(method, lg, budget, budget, $"{budget} DDPM steps, {lg.Particles} particles, zeta {lg.StepSize}");
            case "dpnp":
                var preset = DpnpOptions.Image32;
                int perSweep = preset.Denoiser.Steps + 1;
                Require(budget >= perSweep + 1, method, budget, perSweep + 1);
                int sweeps = Math.Max(1, (budget - preset.PriorSteps) / perSweep);
                int prior = budget - sweeps * perSweep;
                var options = preset with { Iterations = sweeps, PriorSteps = prior, OperatorNormSquared = operatorNormSquared };
                return new Plan(method, options, prior + sweeps * perSweep, 0,
                    $"DDIM prior draw {prior} + {sweeps} sweeps x {perSweep}-call denoising draws, eta {options.EtaMax} -> {options.EtaMin}");
            default:
                throw new UsageException($"talk comparison method '{method}': expected {string.Join(", ", MethodNames)}");
        }
    }

    private static void Require(bool ok, string method, int budget, int least)
    {
        if (!ok) throw new UsageException($"--nfe {budget} is too small for {method}: it needs at least {least} network evaluations per image");
    }

    /// <summary>Runs the study; <paramref name="log"/> gets a line per cell and <paramref name="taskDone"/> the table so
    /// far after each task (so a long run leaves its finished tasks on disk).</summary>
    public static Result Run(GpuDevice device, TalkSettings s, TextWriter log, Action<Result>? taskDone = null,
        CancellationToken cancellationToken = default)
    {
        foreach (string m in s.Methods) PlanFor(m, "superres", s.Budget);   // names and budget checked before anything loads
        foreach (string t in s.Tasks) Task(t);
        var images = MnistImages.Load(MnistFolder.File(MnistFolder.TestImages, s.Mnist));
        if (s.FirstDigit < 2 || s.FirstDigit + s.Digits > images.Count)
            throw new UsageException($"digits {s.FirstDigit}..{s.FirstDigit + s.Digits - 1} do not fit the {images.Count} test images (and the FID reference needs the ones before)");
        var truth = images.ToArray(s.FirstDigit, s.Digits);
        using var classifier = ImageClassifier.Load(device, s.Classifier);
        var fid = new MnistFid(classifier);
        var reference = fid.Statistics(images.ToArray(0, s.FirstDigit));
        double truthFid = fid.Distance(truth, reference);
        log.WriteLine($"talk comparison: {s.Digits} test digits from index {s.FirstDigit}, {s.Budget} network evaluations per image; " +
                      $"FID of the true digits against test images 0..{s.FirstDigit - 1}: {truthFid:F2}");

        using var model = DiffusionModel.Load(device, s.Model, withGradients: true);
        var counter = new CountingScoreModel(model.Network);
        var rows = new List<Row>();
        foreach (string name in s.Tasks)
        {
            var (taskName, settings) = Task(name);
            using var task = PosteriorTask.Create(taskName, device, model.Channels, model.Height, model.Width, settings);
            double? norm2 = task.Operator is OneBitOperator ob ? OperatorNormSquared(ob.Matrix, ob.Rows, ob.Columns) : null;
            foreach (string method in s.Methods)
            {
                var plan = PlanFor(method, taskName, s.Budget, norm2);
                var sampler = plan.Options.CreateSampler(counter, model.Schedule);
                var watch = new System.Diagnostics.Stopwatch();
                try
                {
                    // Untimed warm-up on one chain with the smallest budget: the kernels this task and method launch are
                    // compiled here, not inside the timed run.
                    var warm = PlanFor(method, taskName, method == "dpnp" ? 5 : 1, norm2).Options.CreateSampler(counter, model.Schedule);
                    Sample(model, task, truth.AsSpan(0, model.ImageLength).ToArray(), 1, s, (x, y, first) => warm.Sample(x, y, task.Operator, (float)s.SigmaY, s.Seed, first, null, cancellationToken));
                    counter.Reset();
                    watch.Start();
                    var samples = Sample(model, task, truth, s.Digits, s, (x, y, first) =>
                        sampler.Sample(x, y, task.Operator, (float)s.SigmaY, s.Seed, first, null, cancellationToken));
                    double seconds = watch.Elapsed.TotalSeconds;
                    rows.Add(Score(name, plan, samples, truth, fid, reference, counter, seconds, s.Digits));
                }
                catch (SamplerDivergedException e)
                {
                    // A method that diverges on one task is a result of the comparison, not the end of it. The counts are
                    // the timed run's up to the failure (none when the warm-up already diverged).
                    double counted = watch.IsRunning ? 1.0 / s.Digits : 0;
                    rows.Add(new Row(name, plan.Method, plan.Evaluations, counter.Forward * counted, counter.Vjp * counted,
                        double.NaN, double.NaN, double.NaN, watch.Elapsed.TotalSeconds / s.Digits, plan.Split, e.Message));
                }
                log.WriteLine(Format(rows[^1]));
            }
            taskDone?.Invoke(new Result([.. rows], truthFid, s.Digits, s.Budget));
        }
        return new Result(rows, truthFid, s.Digits, s.Budget);
    }

    /// <summary>One line of the log.</summary>
    public static string Format(Row r) => r.Failure is { } failure
        ? $"  {r.Task,-10} {r.Method,-7} FAILED: {failure}  [{r.Split}]"
        : $"  {r.Task,-10} {r.Method,-7} NFE {r.CountedEvaluations:G4} (+{r.CountedBackward:G4} backward)  PSNR {r.PsnrMean:F2} +- {r.PsnrStandardError:F2} dB  " +
          $"FID {r.Fid,8:F2}  {r.SecondsPerImage:F2} s/image  [{r.Split}]";

    /// <summary>||A||_2^2 of a row-major m x d matrix by power iteration on A^T A (what DPnP's likelihood curvature
    /// needs for one-bit sensing, whose operator is not linear and so is not estimated by the sampler).</summary>
    public static double OperatorNormSquared(float[] a, int m, int d, int iterations = 50)
    {
        var v = new double[d];
        var u = new double[m];
        var random = new Random(1);
        for (int j = 0; j < d; j++) v[j] = random.NextDouble() - 0.5;
        double lambda = 0;
        for (int it = 0; it < iterations; it++)
        {
            double norm = Math.Sqrt(v.Sum(x => x * x));
            for (int j = 0; j < d; j++) v[j] /= norm;
            for (int i = 0; i < m; i++)
            {
                double acc = 0;
                for (int j = 0; j < d; j++) acc += a[(long)i * d + j] * v[j];
                u[i] = acc;
            }
            Array.Clear(v);
            for (int i = 0; i < m; i++)
                for (int j = 0; j < d; j++) v[j] += a[(long)i * d + j] * u[i];
            lambda = Math.Sqrt(v.Sum(x => x * x));   // ||A^T A v|| with ||v|| = 1
        }
        return lambda;
    }

    /// <summary>Runs <paramref name="sample"/> over the first <paramref name="digits"/> digits in batches (chain n is digit
    /// n, its measurement simulated with the seed's measurement stream, so every method sees the same y) and returns the
    /// samples on the host.</summary>
    private static float[] Sample(DiffusionModel model, PosteriorTask task, float[] truth, int digits, TalkSettings s,
        Func<Tensor, Tensor, long, PosteriorRun> sample)
    {
        var device = model.Device;
        int d = model.ImageLength, m = Shape.Elements(task.Operator.MeasurementShape);
        var result = new float[digits * d];
        for (int first = 0; first < digits; first += s.Batch)
        {
            int n = Math.Min(s.Batch, digits - first);
            using var x = Tensor.FromHost(device, truth.AsSpan(first * d, n * d), n, model.Channels, model.Height, model.Width);
            using var y = Tensor.Empty(device, [n, .. task.Operator.MeasurementShape]);
            task.Operator.Simulate(x, (float)s.SigmaY, PosteriorSampler.MeasurementDraw(s.Seed, first, m), y);
            sample(x, y, first);
            x.ToHost().CopyTo(result, first * d);
        }
        return result;
    }

    private static Row Score(string task, Plan plan, float[] samples, float[] truth, MnistFid fid, GaussianStatistics reference,
        CountingScoreModel counter, double seconds, int n)
    {
        int d = truth.Length / n;
        // As `posterior` reports them: samples clipped to the data range [-1, 1] (NaN as 0).
        var clipped = samples.Select(v => float.IsNaN(v) ? 0f : Math.Clamp(v, -1f, 1f)).ToArray();
        var psnr = Enumerable.Range(0, n).Select(i => ImageMetrics.Psnr(clipped.AsSpan(i * d, d), truth.AsSpan(i * d, d))).ToArray();
        double mean = psnr.Average();
        double se = n > 1 ? Math.Sqrt(psnr.Sum(v => (v - mean) * (v - mean)) / (n - 1) / n) : double.NaN;
        return new Row(task, plan.Method, plan.Evaluations, (double)counter.Forward / n, (double)counter.Vjp / n, mean, se,
            fid.Distance(clipped, reference), seconds / n, plan.Split);
    }
}

using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.Priors;
using PosteriorGpu.Models.Schedules;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Cli.Studies;

/// <summary>
/// Measures each deterministic sampler's error against the exact answer, with an exact score: for a
/// Gaussian prior N(mu, diag(var)) every deterministic sampler is an affine map per coordinate, so
/// running it on two inputs per coordinate (the mean and the mean plus one standard deviation of the
/// exact starting marginal) gives its output distribution exactly: a Gaussian whose 2-Wasserstein
/// distance to the true marginal is the sampler's discretisation error, free of Monte-Carlo noise.
/// The schedule is Li et al.'s with T steps (the talk's), so T doubles the resolution of the whole
/// path, and the start is the exact marginal at the first timestep, so only discretisation counts.
/// </summary>
internal static class ConvergenceStudy
{
    /// <summary>One sampler's errors at each step count and the observed orders between them: per
    /// doubling of T, and per halving of the schedule's step size c1 log T / T (what a p-th order
    /// method's error scales with; log(2T) / (2 log T) is not 1/2, so the order in T reads low).</summary>
    public sealed record Row(string Sampler, int[] Steps, double[] W2, double[] Orders, double[] StepSizeOrders);

    /// <summary>The deterministic samplers the study covers.</summary>
    public static readonly string[] Samplers = ["pf-ode", "ddim", "li-accelerated", "dpmsolver++2m"];

    /// <summary>Runs the study on <paramref name="device"/> in dimension side^2 (one square image channel).</summary>
    public static IReadOnlyList<Row> Run(GpuDevice device, int[] steps, int side = 8, double c0 = 2, double c1 = 4, int seed = 1)
    {
        int d = side * side;
        var rng = new System.Random(seed);
        var mean = Enumerable.Range(0, d).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var variance = Enumerable.Range(0, d).Select(_ => (float)(0.1 + 0.9 * rng.NextDouble())).ToArray();
        var rows = new List<Row>();
        foreach (var name in Samplers)
        {
            var errors = steps.Select(T => Error(device, name, T, side, mean, variance, c0, c1)).ToArray();
            var orders = Enumerable.Range(0, steps.Length - 1)
                .Select(i => Math.Log(errors[i] / errors[i + 1]) / Math.Log((double)steps[i + 1] / steps[i])).ToArray();
            var stepOrders = Enumerable.Range(0, steps.Length - 1)
                .Select(i => Math.Log(errors[i] / errors[i + 1]) / Math.Log(StepSize(steps[i]) / StepSize(steps[i + 1]))).ToArray();
            rows.Add(new Row(name, steps, errors, orders, stepOrders));
        }
        return rows;
    }

    /// <summary>The Li et al. schedule's step scale c1 log T / T (c1 cancels in the ratios).</summary>
    public static double StepSize(int steps) => Math.Log(steps) / steps;

    /// <summary>W2 between the sampler's output (T steps) and the exact marginal at the last level.</summary>
    public static double Error(GpuDevice device, string sampler, int steps, int side, float[] mean, float[] variance, double c0, double c1)
    {
        int d = side * side;
        var schedule = NoiseSchedule.LiEtAl(steps, c0, c1);
        var abar = schedule.AlphasCumprodDouble;
        using var prior = GaussianPrior.Diagonal(device, 1, side, side, mean.Select(v => (double)v).ToArray(),
            variance.Select(v => (double)v).ToArray(), schedule);
        // Every timestep of the T-step schedule, ending on abar[0] (paper's t = 1), not on 1.
        var options = new SamplerOptions { TimestepSpacing = "leading", SetAlphaToOne = false };
        var s = SamplerFactory.Create(sampler, prior, schedule, options);
        var first = prior.Distribution.AtNoiseLevel(abar[steps - 1]);
        var (m0, v0) = (first.Mean, first.Covariance.Diagonal());
        var start = new float[2 * d];
        for (int j = 0; j < d; j++)
        {
            start[j] = (float)m0[j];
            start[d + j] = (float)(m0[j] + Math.Sqrt(v0[j]));
        }
        using var x = Tensor.FromHost(device, start, 2, 1, side, side);
        s.Sample(x, steps, seed: 0);
        var output = x.ToHost();
        var last = prior.Distribution.AtNoiseLevel(abar[0]);
        var (m1, v1) = (last.Mean, last.Covariance.Diagonal());
        double w2 = 0;
        for (int j = 0; j < d; j++)
        {
            double outMean = output[j], outSd = Math.Abs(output[d + j] - output[j]);
            w2 += Math.Pow(outMean - m1[j], 2) + Math.Pow(outSd - Math.Sqrt(v1[j]), 2);
        }
        return Math.Sqrt(w2);
    }

    /// <summary>The table as Markdown.</summary>
    public static string ToMarkdown(IReadOnlyList<Row> rows)
    {
        var sb = new System.Text.StringBuilder();
        var steps = rows[0].Steps;
        var pairs = Enumerable.Range(0, steps.Length - 1).ToArray();
        sb.AppendLine("| sampler | " + string.Join(" | ", steps.Select(t => $"W2 at T={t}")) + " | " +
                      string.Join(" | ", pairs.Select(i => $"order in T {steps[i]}->{steps[i + 1]}")) + " | " +
                      string.Join(" | ", pairs.Select(i => $"order in step size {steps[i]}->{steps[i + 1]}")) + " |");
        sb.AppendLine("|---|" + string.Concat(Enumerable.Repeat("---|", steps.Length + 2 * pairs.Length)));
        foreach (var r in rows)
            sb.AppendLine($"| {r.Sampler} | " + string.Join(" | ", r.W2.Select(e => e.ToString("E3"))) + " | " +
                          string.Join(" | ", r.Orders.Select(o => o.ToString("F2"))) + " | " +
                          string.Join(" | ", r.StepSizeOrders.Select(o => o.ToString("F2"))) + " |");
        return sb.ToString();
    }
}

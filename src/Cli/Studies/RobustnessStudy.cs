using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;
using PosteriorGpu.Models.Priors;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Samplers.Posterior;
using PosteriorGpu.Models.Schedules;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Cli.Studies;

/// <summary>
/// The robustness claim of Xun, Gupta and Price, measured in the setting of their Figure 3: prior N(0, I_d),
/// y = x + N(0, sigma_y^2 I) with sigma_y = 0.1, every chain with its own (x*, y) drawn from the model (so, averaged
/// over y, exact posterior samples are distributed as the prior). Plain Langevin (the annealed sampler with every
/// level at sigma_y) and annealed Langevin start from prior samples and take the same number of steps; the mean of
/// r^2 = ||x||^2 / d over chains is recorded after each block of steps (plain Langevin's dips to about a half, then
/// returns to 1). Each runs with the exact score and with <see cref="RadialScoreError"/>, a bounded error field on a
/// shell the prior rarely visits; the final samples are scored by E ||x - m_y||^2 / (d v) (m_y, v the exact
/// posterior's mean and variance per coordinate: 1 for exact samples) and the fraction of chains left on the shell.
/// </summary>
internal static class RobustnessStudy
{
    /// <summary>sigma_y of Figure 3.</summary>
    public const float SigmaY = 0.1f;

    /// <summary>One run: its trajectory of mean r^2 per block, the normalised error and the fraction on the shell.</summary>
    public sealed record Run(string Sampler, bool Perturbed, double[] MeanSquaredRadius, double NormalisedError, double OnShell);

    /// <summary>One dimension's runs and the error field's size.</summary>
    public sealed record Setting(int Dimension, double Bound, double InnerRadius, double OuterRadius, double PriorMassOnShell,
        double ErrorL2UnderPrior, IReadOnlyList<Run> Runs);

    /// <summary>Runs plain and annealed Langevin, exact and perturbed, in dimension <paramref name="d"/>.</summary>
    public static Setting Measure(GpuDevice device, int d, int chains, AnnealedLangevinOptions options, double bound = 1000,
        double innerRadius = 0.45, double outerRadius = 0.75, int seed = 1)
    {
        var schedule = NoiseSchedule.Linear(1000, 1e-4, 0.02);
        using var prior = GaussianPrior.Diagonal(device, 1, 1, d, new double[d], Enumerable.Repeat(1.0, d).ToArray(), schedule);
        using var perturbed = new RadialScoreError(prior, schedule, bound, innerRadius, outerRadius);
        var identity = new float[d * d];
        for (int i = 0; i < d; i++) identity[i * d + i] = 1;
        using var op = new CompressedSensingOperator(device, [1, 1, d], d, identity);

        // Per chain: x* ~ N(0, I), y = x* + sigma_y z; the exact posterior is N(y / (1 + s^2), s^2 / (1 + s^2) I).
        var draw = new RandomDraw((ulong)seed, RandomStreams.RobustnessStudy, 0);
        var y = new float[chains * d];
        for (int i = 0; i < y.Length; i++) y[i] = draw.Normal(i) + SigmaY * draw.Normal(y.Length + i);
        using var ty = Tensor.FromHost(device, y, chains, d);

        // The shell's mass under the prior and the error's L2 norm there, from seeded prior samples.
        var probe = GaussianDistribution.Isotropic(new double[d], 1).Sample(20000, seed + 1);
        double mass = Enumerable.Range(0, 20000).Count(k => perturbed.OnShell(Radius(probe, k, d))) / 20000.0;
        double l2 = Math.Sqrt(Enumerable.Range(0, 20000).Average(k => Math.Pow(perturbed.Strength(Radius(probe, k, d)), 2)));

        var runs = new List<Run>();
        foreach (bool annealed in new[] { false, true })
            foreach (bool withError in new[] { false, true })
            {
                IScoreModel model = withError ? perturbed : prior;
                var o = annealed ? options : options with { EtaMax = SigmaY };
                using var x = Tensor.Empty(device, chains, 1, 1, d);
                var trajectory = new List<double>();
                var progress = new Recorder(() => trajectory.Add(MeanSquaredRadius(x.ToHost(), d)));
                new AnnealedLangevinSampler(model, schedule, o).Sample(x, ty, op, SigmaY, (ulong)seed, 0, progress);
                var s = x.ToHost();
                double v = SigmaY * SigmaY / (1 + SigmaY * SigmaY);
                double err = 0;
                for (int i = 0; i < s.Length; i++) err += Math.Pow(s[i] - y[i] / (1 + SigmaY * SigmaY), 2);
                double onShell = Enumerable.Range(0, chains).Count(k => perturbed.OnShell(Radius(s, k, d))) / (double)chains;
                runs.Add(new Run(annealed ? "annealed Langevin" : "plain Langevin", withError, [.. trajectory], err / (s.Length * v), onShell));
            }
        return new Setting(d, bound, innerRadius, outerRadius, mass, l2, runs);
    }

    private static double Radius(float[] samples, int k, int d)
    {
        double s = 0;
        for (int j = 0; j < d; j++) s += (double)samples[k * d + j] * samples[k * d + j];
        return Math.Sqrt(s / d);
    }

    private static double MeanSquaredRadius(float[] s, int d) => s.Select(v => (double)v * v).Sum() / s.Length;

    private sealed class Recorder(Action record) : IProgress<SamplerProgress>
    {
        public void Report(SamplerProgress value) => record();
    }

    /// <summary>The settings as Markdown: the final scores, then the trajectories.</summary>
    public static string ToMarkdown(IReadOnlyList<Setting> settings, AnnealedLangevinOptions options)
    {
        var sb = new System.Text.StringBuilder();
        sb.AppendLine("| d | sampler | score | E ‖x - m_y‖² / (d v) | chains on the shell |");
        sb.AppendLine("|---|---|---|---|---|");
        foreach (var s in settings)
            foreach (var r in s.Runs)
                sb.AppendLine($"| {s.Dimension} | {r.Sampler} | {(r.Perturbed ? $"perturbed (B = {s.Bound})" : "exact")} | {r.NormalisedError:F3} | {r.OnShell:P1} |");
        sb.AppendLine();
        foreach (var s in settings)
        {
            sb.AppendLine($"d = {s.Dimension}: shell {s.InnerRadius} <= ||x|| / sqrt(d) <= {s.OuterRadius}, prior mass on it {s.PriorMassOnShell:P2}, " +
                          $"error field sup {s.Bound}, L2 under the prior {s.ErrorL2UnderPrior:F2} (the score's own L2 norm is sqrt(d) = {Math.Sqrt(s.Dimension):F1}).");
            sb.AppendLine();
            sb.AppendLine("Mean of ||x||^2 / d over chains after each block of " + options.StepsPerLevel + " steps:");
            sb.AppendLine();
            sb.AppendLine("| block | " + string.Join(" | ", s.Runs.Select(r => $"{r.Sampler}{(r.Perturbed ? " (perturbed)" : "")}")) + " |");
            sb.AppendLine("|---|" + string.Concat(s.Runs.Select(_ => "---|")));
            int blocks = s.Runs.Max(r => r.MeanSquaredRadius.Length);
            // Every block while plain Langevin dips (the first ten), then every tenth.
            foreach (int b in Enumerable.Range(0, blocks).Where(b => b < 10 || (b + 1) % 10 == 0))
                sb.AppendLine($"| {b + 1} | " + string.Join(" | ", s.Runs.Select(r => b < r.MeanSquaredRadius.Length ? r.MeanSquaredRadius[b].ToString("F3") : "")) + " |");
            sb.AppendLine();
        }
        return sb.ToString();
    }
}

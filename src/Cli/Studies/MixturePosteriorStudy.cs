using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.Priors;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Samplers.Posterior;
using PosteriorGpu.Models.Schedules;

namespace PosteriorGpu.Cli.Studies;

/// <summary>
/// Posterior samplers on Gaussian-mixture priors, where the posterior is known exactly (a mixture with
/// updated weights): 25 well-separated components (means uniform in [-2, 2]^d, isotropic variance
/// 0.05, equal weights), a random Gaussian A with m rows, sigma_y = 0.1, and the sliced 2-Wasserstein
/// distance (128 seeded directions) between each sampler's chains and exact posterior samples. Two
/// reference rows bound the scale: a second exact draw (the finite-sample floor) and prior samples.
/// The samplers: annealed Langevin, DPnP (DDIM-type denoiser) and DPS (residual rule), each with the options given.
/// </summary>
internal static class MixturePosteriorStudy
{
    /// <summary>One setting and its distances.</summary>
    public sealed record Row(int Dimension, int Measurements, double ExactFloor, double Prior, double AnnealedLangevin,
        double Dpnp = double.NaN, double Dps = double.NaN);

    /// <summary>The step size DPS uses here unless told otherwise (the best of a scan on the exact Gaussian test problem).</summary>
    public static readonly DpsOptions DefaultDps = new() { StepSize = 0.3 };

    /// <summary>Runs every (d, m) pair with <paramref name="chains"/> chains per sampler.</summary>
    /// <remarks>DPnP and DPS run only when their options are given (null leaves their columns NaN).</remarks>
    public static IReadOnlyList<Row> Run(GpuDevice device, int[] dimensions, int[] measurements, int chains = 1024,
        AnnealedLangevinOptions? options = null, int seed = 1, DpnpOptions? dpnp = null, DpsOptions? dps = null)
    {
        var rows = new List<Row>();
        foreach (int d in dimensions)
            foreach (int m in measurements)
                rows.Add(RunOne(device, d, m, chains, options ?? new AnnealedLangevinOptions(), seed, dpnp, dps));
        return rows;
    }

    private static Row RunOne(GpuDevice device, int d, int m, int chains, AnnealedLangevinOptions options, int seed, DpnpOptions? dpnp, DpsOptions? dps)
    {
        var rng = new System.Random(seed * 7919 + d * 31 + m);
        var components = Enumerable.Range(0, 25).Select(_ =>
            GaussianDistribution.Isotropic(Enumerable.Range(0, d).Select(_ => rng.NextDouble() * 4 - 2).ToArray(), 0.05)).ToList();
        var mixture = new GaussianMixtureDistribution(Enumerable.Repeat(1.0 / 25, 25).ToArray(), components);
        var schedule = NoiseSchedule.Linear(1000, 1e-4, 0.02);
        using var prior = new GaussianMixturePrior(device, 1, 1, d, mixture, schedule);
        using var op = new CompressedSensingOperator(device, [1, 1, d], m, seed: (ulong)(seed * 1000 + d + m));
        const float sigmaY = 0.1f;
        var truth = mixture.Sample(1, seed + 17);
        var matrix = op.Matrix;
        var noise = new Kernels.Random.RandomDraw((ulong)seed, 7, 0);
        var y = Enumerable.Range(0, m).Select(i => Enumerable.Range(0, d).Sum(j => (double)matrix[i * d + j] * truth[j]) + sigmaY * noise.Normal(i)).ToArray();
        var posterior = GaussianMixturePosterior.Compute(mixture, matrix, m, y, sigmaY);
        var exact = posterior.Sample(chains, seed + 1);

        using var ty = Tensor.FromHost(device, y.Select(v => (float)v).ToArray(), 1, m);
        using var x = Tensor.Empty(device, chains, 1, 1, d);
        new AnnealedLangevinSampler(prior, schedule, options).Sample(x, ty, op, sigmaY, (ulong)seed);
        double langevin = DistributionDistances.SlicedW2(x.ToHost(), exact, d, 128, seed);
        double dpnpDistance = double.NaN, dpsDistance = double.NaN;
        if (dpnp is not null)
        {
            new DpnpSampler(prior, schedule, dpnp).Sample(x, ty, op, sigmaY, (ulong)seed);
            dpnpDistance = DistributionDistances.SlicedW2(x.ToHost(), exact, d, 128, seed);
        }
        if (dps is not null)
        {
            new DpsSampler(prior, schedule, dps).Sample(x, ty, op, sigmaY, (ulong)seed);
            dpsDistance = DistributionDistances.SlicedW2(x.ToHost(), exact, d, 128, seed);
        }
        double floor = DistributionDistances.SlicedW2(posterior.Sample(chains, seed + 2), exact, d, 128, seed);
        double priorDistance = DistributionDistances.SlicedW2(mixture.Sample(chains, seed + 3), exact, d, 128, seed);
        return new Row(d, m, floor, priorDistance, langevin, dpnpDistance, dpsDistance);
    }

    /// <summary>The table as Markdown.</summary>
    public static string ToMarkdown(IReadOnlyList<Row> rows)
    {
        var sb = new System.Text.StringBuilder();
        bool dpnp = rows.Any(r => !double.IsNaN(r.Dpnp)), dps = rows.Any(r => !double.IsNaN(r.Dps));
        sb.AppendLine("| d | rows of A | exact vs exact (floor) | prior samples | annealed Langevin |" + (dpnp ? " DPnP |" : "") + (dps ? " DPS |" : ""));
        sb.AppendLine("|---|---|---|---|---|" + (dpnp ? "---|" : "") + (dps ? "---|" : ""));
        foreach (var r in rows)
            sb.AppendLine($"| {r.Dimension} | {r.Measurements} | {r.ExactFloor:F4} | {r.Prior:F4} | {r.AnnealedLangevin:F4} |" +
                          (dpnp ? $" {r.Dpnp:F4} |" : "") + (dps ? $" {r.Dps:F4} |" : ""));
        return sb.ToString();
    }
}

namespace PosteriorGpu.Models.Priors;

/// <summary>
/// The noise-level convention of the analytic priors: a function from a (possibly fractional)
/// diffusion timestep t to alpha_bar(t) in [0, 1], with x_t = sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) eps
/// (Ho et al. 2020, eq. 4). The analytic priors build theirs from the NoiseSchedule they are given (its
/// AlphasCumprodDouble through <see cref="Interpolated(IReadOnlyList{double})"/>), so a prior and a sampler handed
/// the same schedule cannot disagree about a noise level.
/// </summary>
public static class AlphaBar
{
    /// <summary>alpha_bar(t) from the table <paramref name="alphasCumprod"/> (index k = diffusers' timestep k):
    /// exact at integer t, linear between neighbouring integers; t outside [0, T-1] throws.</summary>
    /// <exception cref="ArgumentException">The table is empty or holds a value outside [0, 1].</exception>
    public static Func<double, double> Interpolated(IReadOnlyList<double> alphasCumprod)
    {
        ArgumentNullException.ThrowIfNull(alphasCumprod);
        if (alphasCumprod.Count == 0) throw new ArgumentException("alphas_cumprod is empty", nameof(alphasCumprod));
        var table = alphasCumprod.ToArray();
        for (int i = 0; i < table.Length; i++)
        {
            if (!(table[i] >= 0 && table[i] <= 1))
                throw new ArgumentException($"alphas_cumprod[{i}] = {table[i]} is outside [0, 1]", nameof(alphasCumprod));
        }
        int last = table.Length - 1;
        return t =>
        {
            if (!(t >= 0 && t <= last))
                throw new ArgumentOutOfRangeException(nameof(t), t, $"timestep must lie in [0, {last}] for a table of {table.Length} alphas_cumprod");
            int k = Math.Min((int)Math.Floor(t), Math.Max(last - 1, 0));
            double f = t - k;
            return f == 0 ? table[k] : (1 - f) * table[k] + f * table[k + 1];
        };
    }

    /// <summary>As <see cref="Interpolated(IReadOnlyList{double})"/> for a float32 table (widened to double).</summary>
    public static Func<double, double> Interpolated(IReadOnlyList<float> alphasCumprod)
    {
        ArgumentNullException.ThrowIfNull(alphasCumprod);
        return Interpolated(alphasCumprod.Select(a => (double)a).ToArray());
    }

    /// <summary>Checks and returns alpha_bar(t) for item <paramref name="item"/>; the message names both.</summary>
    internal static double Evaluate(Func<double, double> alphaBar, double t, int item)
    {
        double a;
        try
        {
            a = alphaBar(t);
        }
        catch (ArgumentOutOfRangeException e)
        {
            // The table's message without the parameter suffix .NET appends, prefixed by the item.
            string why = e.Message.Split(" (Parameter", 2)[0];
            throw new ArgumentOutOfRangeException(nameof(t), t, $"batch item {item}: {why}");
        }
        if (!(a >= 0 && a <= 1))
            throw new ArgumentOutOfRangeException(nameof(t), t, $"alpha_bar(t = {t}) for batch item {item} is {a}, outside [0, 1]");
        return a;
    }
}

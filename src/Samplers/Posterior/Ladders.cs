namespace PosteriorGpu.Samplers.Posterior;

/// <summary>
/// Level ladders as functions (k-diffusion's get_sigmas_* beside its sample_*): the decreasing noise or coupling levels
/// that annealed samplers walk. The one place a ladder is written.
/// </summary>
public static class Ladders
{
    /// <summary>
    /// <paramref name="count"/> levels from <paramref name="first"/> down to <paramref name="last"/>, equally spaced in
    /// log (first * (last / first)^(i / (count - 1))); one level is <paramref name="last"/> alone.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">count is below 1, or a level is not positive and finite.</exception>
    public static double[] Geometric(double first, double last, int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        if (!(first > 0) || !(last > 0) || double.IsInfinity(first) || double.IsInfinity(last))
            throw new ArgumentOutOfRangeException(nameof(first), $"levels must be positive and finite, got {first} and {last}");
        var levels = new double[count];
        for (int i = 0; i < count; i++) levels[i] = count == 1 ? last : first * Math.Pow(last / first, (double)i / (count - 1));
        return levels;
    }
}

using PosteriorGpu.Models.Schedules;

namespace PosteriorGpu.Samplers.Posterior;

/// <summary>
/// Where a variance-exploding noise level tau sits on a model's training schedule: the fractional
/// timestep t with alpha_bar(t) = 1 / (1 + tau^2), alpha_bar interpolated linearly between neighbouring
/// timesteps (as <c>AlphaBar.Interpolated</c> does for the exact priors, so for them the level is exact).
/// Below the schedule's smallest level sigma_0 the model is asked at t = 0 (its score there is the best
/// the model knows); above its largest, at T - 1.
/// </summary>
internal readonly record struct NoiseLevelMap(double Timestep, double SqrtAlphaBar, double Sigma)
{
    /// <summary>The level for tau: the timestep, sqrt(alpha_bar) there and the level sigma the model sees (>= tau's clamp).</summary>
    public static NoiseLevelMap For(NoiseSchedule schedule, double tau)
    {
        var ac = schedule.AlphasCumprodDouble;
        double target = 1 / (1 + tau * tau);
        int last = ac.Length - 1;
        double t;
        if (target >= ac[0]) t = 0;
        else if (target <= ac[last]) t = last;
        else
        {
            int lo = 0, hi = last;   // ac decreases: ac[lo] > target >= ac[hi]
            while (hi - lo > 1)
            {
                int mid = (lo + hi) / 2;
                if (ac[mid] > target) lo = mid; else hi = mid;
            }
            t = lo + (ac[lo] - target) / (ac[lo] - ac[hi]);
        }
        int k = Math.Min((int)Math.Floor(t), Math.Max(last - 1, 0));
        double f = t - k;
        double a = f == 0 ? ac[k] : (1 - f) * ac[k] + f * ac[k + 1];
        return new NoiseLevelMap(t, Math.Sqrt(a), Math.Sqrt((1 - a) / a));
    }
}

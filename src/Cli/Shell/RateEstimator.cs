namespace PosteriorGpu.Cli;

/// <summary>
/// The rate of a long run for its ETA: an exponential moving average of the rate between progress reports, with a
/// time constant of <see cref="TimeConstantSeconds"/>, that ignores everything before the first report. The first
/// step of a run includes compiling every kernel (seconds on the CPU accelerator), so a rate of "steps done / time
/// since the start" overestimates the remaining time for a long while (the old bar said 11:40 for a 2-minute run).
/// </summary>
internal sealed class RateEstimator
{
    /// <summary>How quickly the average forgets older intervals (seconds).</summary>
    public const double TimeConstantSeconds = 15;

    /// <summary>Shortest interval that updates the average: shorter ones are accumulated (timer noise).</summary>
    public const double MinIntervalSeconds = 0.2;

    private double lastSeconds = double.NaN;
    private long lastDone;

    /// <summary>The smoothed rate in units per second; null until two reports at least <see cref="MinIntervalSeconds"/>
    /// apart have been seen.</summary>
    public double? Rate { get; private set; }

    /// <summary>Records that <paramref name="done"/> units were finished <paramref name="seconds"/> after the start.</summary>
    public void Observe(long done, double seconds)
    {
        if (double.IsNaN(lastSeconds))
        {
            // The anchor: whatever came before (start-up, kernel compilation) says nothing about the steady rate.
            lastSeconds = seconds;
            lastDone = done;
            return;
        }
        double dt = seconds - lastSeconds;
        if (dt < MinIntervalSeconds || done < lastDone) return;
        double instant = (done - lastDone) / dt;
        double weight = 1 - Math.Exp(-dt / TimeConstantSeconds);
        Rate = Rate is double r ? r + weight * (instant - r) : instant;
        lastSeconds = seconds;
        lastDone = done;
    }

    /// <summary>Time left for the <paramref name="total"/> - <paramref name="done"/> remaining units at the smoothed
    /// rate; null while there is no rate yet (or it is zero).</summary>
    public TimeSpan? Remaining(long total, long done) =>
        Rate is double r && r > 0 ? TimeSpan.FromSeconds(Math.Max(0, total - done) / r) : null;

    /// <summary>mm:ss, or h:mm:ss from an hour.</summary>
    public static string Format(TimeSpan t) =>
        t.TotalHours >= 1 ? $"{(int)t.TotalHours}:{t.Minutes:D2}:{t.Seconds:D2}" : $"{t.Minutes:D2}:{t.Seconds:D2}";
}

namespace PosteriorGpu.Cli;

/// <summary>
/// The rate of a long run for its ETA: units done over time across a sliding window of recent progress reports (at
/// least <see cref="MinWindowIntervals"/> intervals and <see cref="MinWindowSeconds"/> seconds), which never includes
/// what came before the first report. The first step of a run includes compiling every kernel (seconds on the CPU
/// accelerator), so "steps done / time since the start" overestimated the remaining time for a long while (the old bar
/// said 11:40 for a 2-minute run); a rate from the last interval alone jumps with every slow step on a shared machine.
/// </summary>
internal sealed class RateEstimator
{
    /// <summary>The window keeps at least this many intervals between reports.</summary>
    public const int MinWindowIntervals = 10;

    /// <summary>The window spans at least this many seconds (when the run is that long).</summary>
    public const double MinWindowSeconds = 60;

    /// <summary>Reports closer than this to the previous kept one are skipped (a fast loop reports thousands).</summary>
    public const double MinIntervalSeconds = 0.2;

    private readonly LinkedList<(long Done, double Seconds)> window = new();

    /// <summary>The rate in units per second over the window; null until two reports at least
    /// <see cref="MinIntervalSeconds"/> apart have been seen.</summary>
    public double? Rate
    {
        get
        {
            if (window.Count < 2) return null;
            var (d0, t0) = window.First!.Value;
            var (d1, t1) = window.Last!.Value;
            return t1 > t0 ? (d1 - d0) / (t1 - t0) : null;
        }
    }

    /// <summary>Records that <paramref name="done"/> units were finished <paramref name="seconds"/> after the start.</summary>
    public void Observe(long done, double seconds)
    {
        // The first report is the anchor: whatever came before it (start-up, kernel compilation) says nothing about the
        // steady rate.
        if (window.Last is { } last && (seconds - last.Value.Seconds < MinIntervalSeconds || done < last.Value.Done)) return;
        window.AddLast((done, seconds));
        while (window.Count > MinWindowIntervals + 1 && seconds - window.First!.Next!.Value.Seconds >= MinWindowSeconds)
            window.RemoveFirst();
    }

    /// <summary>Time left for the <paramref name="total"/> - <paramref name="done"/> remaining units at the window's
    /// rate; null while there is no rate yet (or it is zero).</summary>
    public TimeSpan? Remaining(long total, long done) =>
        Rate is double r && r > 0 ? TimeSpan.FromSeconds(Math.Max(0, total - done) / r) : null;

    /// <summary>mm:ss, or h:mm:ss from an hour.</summary>
    public static string Format(TimeSpan t) =>
        t.TotalHours >= 1 ? $"{(int)t.TotalHours}:{t.Minutes:D2}:{t.Seconds:D2}" : $"{t.Minutes:D2}:{t.Seconds:D2}";
}

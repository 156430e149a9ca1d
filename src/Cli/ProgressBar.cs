using System.Diagnostics;

namespace PosteriorGpu.Cli;

/// <summary>
/// Progress of a long run in network evaluations ("steps"), with rate and ETA. On a terminal it redraws one
/// line in place (carriage return); otherwise (CI, pipes, tests) it writes a plain line at every 10% and at
/// most every 10 seconds, so logs stay short.
/// </summary>
internal sealed class ProgressBar
{
    private const int Width = 28;
    private readonly TextWriter writer;
    private readonly bool interactive;
    private readonly string label;
    private readonly long total;
    private readonly double unitsPerSample;
    private readonly Stopwatch watch = Stopwatch.StartNew();
    private TimeSpan lastDraw = TimeSpan.MinValue;
    private int lastDecile = -1;
    private bool drawn;

    /// <summary>A bar for <paramref name="total"/> steps; <paramref name="unitsPerSample"/> steps make one sample.</summary>
    public ProgressBar(TextWriter writer, bool interactive, string label, long total, double unitsPerSample)
    {
        this.writer = writer;
        this.interactive = interactive;
        this.label = label;
        this.total = Math.Max(1, total);
        this.unitsPerSample = Math.Max(1e-9, unitsPerSample);
    }

    /// <summary>True when writing to the console's stderr and that is a terminal.</summary>
    public static bool IsTerminal(TextWriter writer) => ReferenceEquals(writer, Console.Error) && !Console.IsErrorRedirected;

    /// <summary>Seconds since the bar was made.</summary>
    public double ElapsedSeconds => watch.Elapsed.TotalSeconds;

    /// <summary>Reports <paramref name="done"/> of the total steps.</summary>
    public void Update(long done)
    {
        done = Math.Clamp(done, 0, total);
        var now = watch.Elapsed;
        if (interactive)
        {
            if (done < total && now - lastDraw < TimeSpan.FromMilliseconds(200)) return;
            lastDraw = now;
            writer.Write("\r" + Line(done, now, bar: true) + "  ");
            drawn = true;
            return;
        }
        int decile = (int)(10 * done / total);
        if (decile == lastDecile && now - lastDraw < TimeSpan.FromSeconds(10)) return;
        if (decile == lastDecile && done == 0) return;
        lastDecile = decile;
        lastDraw = now;
        writer.WriteLine(Line(done, now, bar: false));
    }

    /// <summary>Ends the bar's line (on a terminal) and adds a closing note.</summary>
    public void Finish(string note)
    {
        if (interactive && drawn) writer.WriteLine();
        writer.WriteLine($"{label}: {note}");
    }

    private string Line(long done, TimeSpan now, bool bar)
    {
        double seconds = now.TotalSeconds;
        double rate = seconds > 0 ? done / seconds : 0;
        string eta = done > 0 && done < total ? Format(TimeSpan.FromSeconds((total - done) / rate)) : "--:--";
        string samples = seconds > 0 ? $"{done / unitsPerSample / seconds:F2} samples/s" : "";
        string head = bar
            ? $"{label} [{new string('#', (int)(Width * done / total)).PadRight(Width, '.')}] {100.0 * done / total,3:F0}%"
            : $"{label}: {100.0 * done / total:F0}%";
        return $"{head} {done}/{total} steps, {rate:F1} steps/s, {samples}, elapsed {Format(now)}, ETA {eta}";
    }

    private static string Format(TimeSpan t) =>
        t.TotalHours >= 1 ? $"{(int)t.TotalHours}:{t.Minutes:D2}:{t.Seconds:D2}" : $"{t.Minutes:D2}:{t.Seconds:D2}";
}

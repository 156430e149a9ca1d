using System.Diagnostics;
using System.Globalization;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace PosteriorGpu.Cli;

/// <summary>
/// Progress of a long run. On a terminal a Spectre.Console bar on stderr (description, bar, percentage, done/total,
/// the smoothed rate and ETA of <see cref="RateEstimator"/>, elapsed time), redrawn in place while the work runs on the
/// calling thread; lines logged meanwhile appear above it. Off a terminal (pipes, CI, tests) plain lines at every 10 %
/// and at most every 10 seconds, with no escape codes. Dispose (or <see cref="Finish"/>) ends it.
/// </summary>
internal sealed class RunProgress : IDisposable
{
    private readonly CliContext context;
    private readonly string label, unit;
    private readonly long total;
    private readonly Stopwatch watch = Stopwatch.StartNew();
    private readonly RateEstimator estimator = new();
    private readonly object gate = new();
    private long done;
    private string detail = "";

    // Plain mode.
    private int lastDecile = -1;
    private TimeSpan lastLine = TimeSpan.Zero;

    // Terminal mode: the live display runs on its own thread until finished is set.
    private readonly ProgressTask? task;
    private readonly Task? display;
    private readonly ManualResetEventSlim finished = new();
    private bool ended;

    /// <summary>Starts the progress (see <see cref="CliContext.Progress"/>).</summary>
    public RunProgress(CliContext context, string label, long total, string unit)
    {
        this.context = context;
        this.label = label;
        this.unit = unit;
        this.total = Math.Max(1, total);
        if (!context.ErrIsTerminal) return;
        var ready = new ManualResetEventSlim();
        ProgressTask? created = null;
        var progress = context.ErrConsole.Progress().AutoClear(false).HideCompleted(false).Columns(
            new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new TextColumn(Counts),
            new TextColumn(RateAndEta), new ElapsedTimeColumn());
        display = Task.Run(() => progress.Start(ctx =>
        {
            created = ctx.AddTask(Markup.Escape(label), maxValue: this.total);
            ready.Set();
            finished.Wait();
            ctx.Refresh();
        }));
        ready.Wait();
        task = created;
    }

    /// <summary>Seconds since the start.</summary>
    public double ElapsedSeconds => watch.Elapsed.TotalSeconds;

    /// <summary>The smoothed rate (units per second), null until known.</summary>
    public double? Rate => estimator.Rate;

    /// <summary>Reports that <paramref name="value"/> units are done; <paramref name="note"/> (e.g. the current loss)
    /// is shown beside the rate.</summary>
    public void Update(long value, string? note = null)
    {
        lock (gate)
        {
            done = Math.Clamp(value, 0, total);
            if (note is not null) detail = note;
            estimator.Observe(done, watch.Elapsed.TotalSeconds);
        }
        if (task is not null)
        {
            task.Value = done;
            return;
        }
        var now = watch.Elapsed;
        int decile = (int)(10 * done / total);
        if (decile == lastDecile && now - lastLine < TimeSpan.FromSeconds(10)) return;
        if (done == 0) return;
        lastDecile = decile;
        lastLine = now;
        context.Err.WriteLine($"{label}: {100 * done / total}% {Counts()}, {RateAndEta()}, elapsed {RateEstimator.Format(now)}");
    }

    /// <summary>Writes a line of the run's log to stdout without breaking the bar (above it on a terminal).</summary>
    public void Log(string line)
    {
        if (task is not null && !context.OutIsTerminal) context.Out.WriteLine(line);
        else if (task is not null) context.ErrConsole.WriteLine(line);
        else context.Out.WriteLine(line);
    }

    /// <summary>Ends the bar and writes a closing note ("label: note") to stderr.</summary>
    public void Finish(string note)
    {
        End();
        context.Err.WriteLine($"{label}: {note}");
    }

    /// <summary>Ends the bar (idempotent).</summary>
    public void Dispose() => End();

    private void End()
    {
        if (ended) return;
        ended = true;
        finished.Set();
        display?.Wait();
    }

    private string Counts()
    {
        lock (gate) return $"{done}/{total} {unit}";
    }

    private string RateAndEta()
    {
        lock (gate)
        {
            string rate = estimator.Rate is double r ? string.Create(CultureInfo.InvariantCulture, $"{r:F2} {unit}/s") : "rate --";
            string eta = done >= total ? "ETA 00:00"
                : estimator.Remaining(total, done) is TimeSpan left ? $"ETA {RateEstimator.Format(left)}" : "ETA --:--";
            return detail.Length > 0 ? $"{rate}, {eta}, {detail}" : $"{rate}, {eta}";
        }
    }

    /// <summary>A column showing text computed when the bar is redrawn.</summary>
    private sealed class TextColumn(Func<string> text) : ProgressColumn
    {
        public override IRenderable Render(RenderOptions options, ProgressTask task, TimeSpan deltaTime) =>
            new Text(text(), new Style(Color.Grey));
    }
}

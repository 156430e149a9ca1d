using Spectre.Console;

namespace PosteriorGpu.Cli;

/// <summary>What a command's work needs from the shell around it: where it writes, whether a person is watching
/// (progress bars and colour) or a pipe is (plain lines, no escape codes), and the token Ctrl-C cancels.</summary>
internal sealed class CliContext
{
    /// <summary>Results: tables, the files written, summaries.</summary>
    public required TextWriter Out { get; init; }

    /// <summary>Progress, warnings and errors.</summary>
    public required TextWriter Err { get; init; }

    /// <summary>Cancelled by Ctrl-C (the process's) or by a test; a command that sees it stops and exits with
    /// <see cref="ExitCodes.Interrupted"/>.</summary>
    public CancellationToken Cancel { get; init; }

    /// <summary>True when <see cref="Err"/> is the process's stderr and that is a terminal: progress is drawn in place
    /// with Spectre.Console; otherwise it is written as plain lines.</summary>
    public bool ErrIsTerminal { get; init; }

    /// <summary>True when <see cref="Out"/> is the process's stdout and that is a terminal (tables may use colour).</summary>
    public bool OutIsTerminal { get; init; }

    /// <summary>A context writing to two writers that are not terminals (tests, embedding).</summary>
    public static CliContext Plain(TextWriter stdout, TextWriter stderr, CancellationToken cancel = default) =>
        new() { Out = stdout, Err = stderr, Cancel = cancel };

    /// <summary>A Spectre.Console console on <see cref="Out"/>: ANSI colour only on a terminal, so redirected output
    /// holds no escape codes.</summary>
    public IAnsiConsole OutConsole => outConsole ??= Console(Out, OutIsTerminal);

    /// <summary>The same on <see cref="Err"/>.</summary>
    public IAnsiConsole ErrConsole => errConsole ??= Console(Err, ErrIsTerminal);

    private IAnsiConsole? outConsole, errConsole;

    private static IAnsiConsole Console(TextWriter writer, bool terminal) => AnsiConsole.Create(new AnsiConsoleSettings
    {
        Out = new AnsiConsoleOutput(writer),
        Ansi = terminal ? AnsiSupport.Detect : AnsiSupport.No,
        ColorSystem = terminal ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
        Interactive = terminal ? InteractionSupport.Detect : InteractionSupport.No,
    });

    /// <summary>Writes a warning line to <see cref="Err"/>.</summary>
    public void Warn(string message) => Err.WriteLine($"posteriorgpu: warning: {message}");

    /// <summary>Starts progress over <paramref name="total"/> units (network evaluations, training steps): a live
    /// Spectre.Console bar on a terminal, plain lines otherwise.</summary>
    public RunProgress Progress(string label, long total, string unit = "steps") =>
        new(this, label, total, unit);
}

/// <summary>The process exit codes of `posteriorgpu`.</summary>
internal static class ExitCodes
{
    /// <summary>Success.</summary>
    public const int Ok = 0;

    /// <summary>A failure while running: a file that cannot be read or written, a device that is not there, a sampler
    /// that diverged.</summary>
    public const int Failure = 1;

    /// <summary>A mistake in the command line: an unknown command or option, a missing or malformed value, a value out
    /// of range, a flag the chosen sampler does not read.</summary>
    public const int Usage = 2;

    /// <summary>Stopped by Ctrl-C (128 + SIGINT, as shells report it); what was finished is written.</summary>
    public const int Interrupted = 130;
}

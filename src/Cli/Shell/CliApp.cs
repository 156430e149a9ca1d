using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;
using PosteriorGpu.Kernels.Device;

namespace PosteriorGpu.Cli;

/// <summary>What a command's definition gets: the shell context and the options every command shares.</summary>
/// <param name="Context">Where the command writes, and its cancellation.</param>
/// <param name="Device">--device (on every command).</param>
internal sealed record CommandSetup(CliContext Context, Option<string> Device)
{
    /// <summary>The device kind --device asks for; null picks CUDA, else OpenCL, else the CPU.</summary>
    public DeviceKind? DeviceOf(ParseResult parse) => DeviceKinds.Parse(parse.GetValue(Device), "--device");
}

/// <summary>
/// The `posteriorgpu` command line on System.CommandLine: one subcommand per job (each defined in its own file by a
/// <c>Create(CommandSetup)</c> method, listed in Program.cs), per-command --help with defaults, shell completion
/// (the [suggest] directive that dotnet-suggest uses), and one exit-code policy: 0 success, 2 for every usage error
/// (the parser's and <see cref="UsageException"/>), 1 for a failure while running, 130 for Ctrl-C. Errors are one
/// line on stderr; --verbose adds the stack trace and keeps the exit code.
/// </summary>
internal static partial class CliApp
{
    /// <summary>The process entry point: the console's streams, Ctrl-C cancels the run (a second Ctrl-C kills it).</summary>
    public static int RunConsole(string[] args)
    {
        using var cts = new CancellationTokenSource();
        void OnCancel(object? sender, ConsoleCancelEventArgs e)
        {
            if (cts.IsCancellationRequested) return;
            e.Cancel = true;
            Console.Error.WriteLine();
            Console.Error.WriteLine("posteriorgpu: stopping (Ctrl-C again to kill); writing what is done ...");
            cts.Cancel();
        }
        Console.CancelKeyPress += OnCancel;
        try
        {
            return Run(args, new CliContext
            {
                Out = Console.Out, Err = Console.Error, Cancel = cts.Token,
                OutIsTerminal = !Console.IsOutputRedirected, ErrIsTerminal = !Console.IsErrorRedirected,
            });
        }
        finally
        {
            Console.CancelKeyPress -= OnCancel;
        }
    }

    /// <summary>Runs a command line with plain (non-terminal) writers; returns the exit code.</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr) => Run(args, CliContext.Plain(stdout, stderr));

    /// <summary>Runs a command line; returns the exit code (<see cref="ExitCodes"/>).</summary>
    public static int Run(string[] args, CliContext context)
    {
        var root = Build(context, out _);
        var parse = root.Parse(args);
        bool verbose = args.Contains("--verbose");
        // A forgotten value explains the errors that follow from it (the next option's value left over): report it alone.
        var errors = MissingValues(root, parse).ToList();
        if (errors.Count == 0 && parse.Action is ParseErrorAction) errors = [.. parse.Errors.Select(Describe).Distinct()];
        if (errors.Count > 0)
        {
            string command = parse.CommandResult.Command is RootCommand ? Name : $"{Name} {parse.CommandResult.Command.Name}";
            context.Err.WriteLine($"posteriorgpu: error: {string.Join("; ", errors)} (see '{command} --help')");
            return ExitCodes.Usage;
        }
        // Help, version and completion text go through this buffer so that they name the command as users type it.
        var text = new StringWriter();
        try
        {
            return parse.Invoke(new InvocationConfiguration
            {
                Output = text, Error = context.Err, EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null,
            });
        }
        catch (OperationCanceledException) when (context.Cancel.IsCancellationRequested)
        {
            context.Err.WriteLine("posteriorgpu: interrupted");
            return ExitCodes.Interrupted;
        }
        catch (Exception e)
        {
            context.Err.WriteLine($"posteriorgpu: error: {Message(e)}");
            if (verbose) context.Err.WriteLine(e.ToString());
            return e is UsageException ? ExitCodes.Usage : ExitCodes.Failure;
        }
        finally
        {
            context.Out.Write(text.ToString().Replace(RootCommand.ExecutableName + " ", Name + " "));
        }
    }

    /// <summary>The command's name as installed (the .NET tool's command name).</summary>
    public const string Name = "posteriorgpu";

    /// <summary>Options that took the next option's name as their value ("--task --count 1"): the parser reads "--count"
    /// as --task's value, but the user forgot the value.</summary>
    private static IEnumerable<string> MissingValues(RootCommand root, ParseResult parse)
    {
        var names = new HashSet<string>(root.Options.Concat(parse.CommandResult.Command.Options).SelectMany(o => o.Aliases.Prepend(o.Name)));
        foreach (var child in parse.CommandResult.Children.Concat(parse.RootCommandResult.Children))
            if (child is OptionResult { Implicit: false } o && o.Tokens.Count > 0 && names.Contains(o.Tokens[0].Value))
                yield return $"{o.Option.Name} needs a value" + (o.Option.HelpName is { } h ? $" ({h})" : "") + $", but the next word is the option {o.Tokens[0].Value}";
    }

    /// <summary>The root command with every subcommand (also for completion tests).</summary>
    public static RootCommand Build(CliContext context, out CommandSetup setup)
    {
        var device = new Option<string>("--device")
        {
            Description = $"the accelerator: cuda, opencl, cpu, or auto (CUDA, else OpenCL, else the CPU). Default: ${DeviceKinds.EnvironmentVariable}, " +
                          "else auto. A kind this machine does not have is an error (exit 1; `posteriorgpu devices` lists what there is)",
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable(DeviceKinds.EnvironmentVariable) is { Length: > 0 } env ? env.ToLowerInvariant() : "auto",
            Recursive = true,
            HelpName = "kind",
        };
        device.AcceptOnlyFromAmong("auto", "cuda", "opencl", "cl", "cpu");
        var verbose = new Option<bool>("--verbose") { Description = "on an error, print the stack trace too (the exit code stays 1 or 2)", Recursive = true };
        var root = new RootCommand("posteriorgpu: diffusion models and posterior sampling for inverse problems (y = A(x) + noise), " +
                                   "every step an ILGPU kernel on CUDA, OpenCL or the CPU.")
        {
            device, verbose,
        };
        setup = new CommandSetup(context, device);
        foreach (var create in Commands) root.Subcommands.Add(create(setup));
        // No command: the list of commands, and a usage error.
        root.SetAction(parse =>
        {
            new HelpAction().Invoke(parse);
            return ExitCodes.Usage;
        });
        return root;
    }

    /// <summary>A parse error in the command line's words: a missing value says which option needs one.</summary>
    private static string Describe(ParseError error)
    {
        if (error.SymbolResult is OptionResult { Tokens.Count: 0, Implicit: false } o && o.Option.Arity.MinimumNumberOfValues > 0)
            return $"{o.Option.Name} needs a value" + (o.Option.HelpName is { } h ? $" ({h})" : "");
        string message = error.Message.ReplaceLineEndings(" ").Replace("\t", "").Replace("  ", " ");
        foreach (var (type, words) in TypeWords) message = message.Replace($"as expected type '{type}'", $"as {words}");
        return message;
    }

    private static readonly (string Type, string Words)[] TypeWords =
    [
        ("System.Nullable`1[System.Int32]", "an integer"), ("System.Int32", "an integer"), ("System.UInt64", "a non-negative integer"),
        ("System.Nullable`1[System.Double]", "a number"), ("System.Double", "a number"),
    ];

    /// <summary>The message, with the inner exception's when the outer one only wraps it.</summary>
    private static string Message(Exception e) =>
        e is AggregateException { InnerExceptions.Count: 1 } a ? Message(a.InnerExceptions[0]) : e.Message.ReplaceLineEndings(" ");
}

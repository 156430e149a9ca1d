using System.CommandLine;

namespace PosteriorGpu.Cli.Studies;

/// <summary>The command-line options of <see cref="HeldOutDigitSettings"/>, shared by the `paper-figure4` and
/// `talk-comparison` commands, and the comma-separated list option both use for tasks and methods.</summary>
internal sealed class HeldOutDigitOptions
{
    private readonly Option<string?> model, classifier, mnist;
    private readonly Option<int> digits, first, batch;
    private readonly Option<double> sigmaY;
    private readonly Option<ulong> seed;

    /// <summary>The options with <paramref name="defaults"/>' values as their defaults.</summary>
    public HeldOutDigitOptions(HeldOutDigitSettings defaults, string digitsDescription)
    {
        model = CliOptions.Text("--model", $"the diffusion model folder (default: the shipped {DefaultPaths.Model})", "dir");
        classifier = CliOptions.Text("--classifier", $"the FID classifier folder (default: the shipped {DefaultPaths.Classifier})", "dir");
        mnist = CliOptions.Text("--mnist", "the MNIST folder (from tools/fetch-mnist)", "dir");
        digits = CliOptions.Int("--digits", defaults.Digits, digitsDescription, min: 2);
        first = CliOptions.Int("--first-digit", defaults.FirstDigit, "test-set index of the first held-out digit (the FID reference is the test images before it)", min: 2);
        sigmaY = CliOptions.Double("--sigma-y", defaults.SigmaY, "measurement noise sigma_y", positive: true);
        batch = CliOptions.Int("--batch", defaults.Batch, "chains per batch", min: 1);
        seed = CliOptions.Seed("--seed", "seed of the measurements and the samplers");
    }

    /// <summary>Adds the options to <paramref name="command"/>.</summary>
    public void AddTo(Command command)
    {
        foreach (Option o in new Option[] { model, classifier, mnist, digits, first, sigmaY, batch, seed }) command.Options.Add(o);
    }

    /// <summary><paramref name="settings"/> with the parsed values of these options.</summary>
    /// <exception cref="UsageException">No --classifier and the shipped classifier was not found.</exception>
    public T Read<T>(ParseResult p, T settings) where T : HeldOutDigitSettings => settings with
    {
        Model = CliFiles.ModelFolder(p.GetValue(model)),
        Classifier = p.GetValue(classifier) ?? DefaultPaths.Find(DefaultPaths.Classifier)
            ?? throw new UsageException($"classifier folder: the default {DefaultPaths.Classifier} was not found; give --classifier DIR"),
        Mnist = p.GetValue(mnist), Digits = p.GetValue(digits), FirstDigit = p.GetValue(first), SigmaY = p.GetValue(sigmaY),
        Batch = p.GetValue(batch), Seed = p.GetValue(seed),
    };

    /// <summary>A comma-separated list option (e.g. "superres4,phase"), each entry validated by <paramref name="check"/>.</summary>
    public static Option<string[]> List(string name, IReadOnlyList<string> fallback, string description, Action<string> check)
    {
        var option = new Option<string[]>(name)
        {
            Description = description, HelpName = "list", DefaultValueFactory = _ => [.. fallback],
            CustomParser = r => r.Tokens.Count == 0 ? [.. fallback] : r.Tokens[0].Value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries),
        };
        option.Validators.Add(r =>
        {
            foreach (string t in r.GetValueOrDefault<string[]>() ?? [])
                try { check(t); }
                catch (UsageException e) { r.AddError($"{name}: {e.Message}"); }
        });
        return option;
    }
}

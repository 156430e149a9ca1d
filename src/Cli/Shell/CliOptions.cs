using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace PosteriorGpu.Cli;

/// <summary>Typed options with a default, a description and a range check that names the option, so every command
/// states and checks its values the same way (a value out of range is a usage error, exit code 2).</summary>
internal static class CliOptions
{
    /// <summary>An integer option in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public static Option<int> Int(string name, int fallback, string description, int min = int.MinValue, int max = int.MaxValue)
    {
        var o = new Option<int>(name) { Description = description, DefaultValueFactory = _ => fallback, HelpName = "int" };
        o.Validators.Add(r => { if (Value<int>(r) is var (ok, v) && ok) Check(r, name, v, min, max); });
        return o;
    }

    /// <summary>An integer option without a default (null when not given: the method's own value applies).</summary>
    public static Option<int?> OptionalInt(string name, string description, int min = int.MinValue, int max = int.MaxValue)
    {
        var o = new Option<int?>(name) { Description = description, HelpName = "int" };
        o.Validators.Add(r => { if (Value<int?>(r) is (true, int v)) Check(r, name, v, min, max); });
        return o;
    }

    /// <summary>A seed: any non-negative 64-bit integer.</summary>
    public static Option<ulong> Seed(string name, string description) =>
        new(name) { Description = description, DefaultValueFactory = _ => 0UL, HelpName = "uint64" };

    /// <summary>A finite floating-point option; <paramref name="positive"/> also requires it to be above zero.</summary>
    public static Option<double> Double(string name, double fallback, string description, bool positive = false, double min = double.NegativeInfinity)
    {
        var o = new Option<double>(name) { Description = description, DefaultValueFactory = _ => fallback, HelpName = "number" };
        o.Validators.Add(r => { if (Value<double>(r) is var (ok, v) && ok) CheckDouble(r, name, v, positive, min); });
        return o;
    }

    /// <summary>A finite floating-point option without a default (null when not given).</summary>
    public static Option<double?> OptionalDouble(string name, string description, bool positive = false, double min = double.NegativeInfinity)
    {
        var o = new Option<double?>(name) { Description = description, HelpName = "number" };
        o.Validators.Add(r => { if (Value<double?>(r) is (true, double v)) CheckDouble(r, name, v, positive, min); });
        return o;
    }

    /// <summary>One of <paramref name="values"/> (shell completion offers them).</summary>
    public static Option<string> Choice(string name, string fallback, string description, IEnumerable<string> values)
    {
        var o = new Option<string>(name) { Description = description, DefaultValueFactory = _ => fallback };
        o.AcceptOnlyFromAmong([.. values]);
        return o;
    }

    /// <summary>A text (usually a path) option; null when not given and not <paramref name="required"/>.</summary>
    public static Option<string?> Text(string name, string description, string helpName = "path", bool required = false) =>
        new(name) { Description = description, HelpName = helpName, Required = required };

    /// <summary>A path option with a default (shown in --help).</summary>
    public static Option<string> Path(string name, string fallback, string description) =>
        new(name) { Description = description, HelpName = "path", DefaultValueFactory = _ => fallback };

    /// <summary>A switch (no value).</summary>
    public static Option<bool> Flag(string name, string description) => new(name) { Description = description };

    /// <summary>Integers separated by commas ("1,2,4"), each at least <paramref name="min"/>.</summary>
    public static Option<int[]> IntList(string name, string fallback, string description, int min = 1, int minCount = 1)
    {
        var o = new Option<int[]>(name)
        {
            Description = description, HelpName = "list", DefaultValueFactory = _ => ParseList(fallback),
            CustomParser = r =>
            {
                string text = r.Tokens.Count > 0 ? r.Tokens[0].Value : fallback;
                var values = new List<int>();
                foreach (string s in text.Split(',', StringSplitOptions.TrimEntries))
                {
                    if (!int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) || v < min)
                    {
                        r.AddError($"{name} takes integers >= {min} separated by commas, but got '{s}' in '{text}'");
                        return [];
                    }
                    values.Add(v);
                }
                if (values.Count < minCount) r.AddError($"{name} needs at least {minCount} values but got '{text}'");
                return [.. values];
            },
        };
        return o;
    }

    /// <summary>The option's value, or (false, default) when the text did not convert (the parser reports that itself).</summary>
    private static (bool Ok, T? Value) Value<T>(OptionResult r)
    {
        try
        {
            return (true, r.GetValueOrDefault<T>());
        }
        catch (InvalidOperationException)
        {
            return (false, default);
        }
    }

    private static int[] ParseList(string text) =>
        [.. text.Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture))];

    private static void Check(OptionResult r, string name, int v, int min, int max)
    {
        if (v < min || v > max)
            r.AddError(max == int.MaxValue ? $"{name} must be at least {min} but got {v}" : $"{name} must be in [{min}, {max}] but got {v}");
    }

    private static void CheckDouble(OptionResult r, string name, double v, bool positive, double min)
    {
        if (!double.IsFinite(v)) r.AddError($"{name} must be a finite number but got {v.ToString(CultureInfo.InvariantCulture)}");
        else if (positive && !(v > 0)) r.AddError($"{name} must be positive but got {v.ToString(CultureInfo.InvariantCulture)}");
        else if (v < min) r.AddError($"{name} must be at least {min.ToString(CultureInfo.InvariantCulture)} but got {v.ToString(CultureInfo.InvariantCulture)}");
    }
}

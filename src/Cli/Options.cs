namespace PosteriorGpu.Cli;

/// <summary>Parses "--name value" pairs and "--flag" switches; every option must be known to the
/// command, so a typo is an error instead of being ignored.</summary>
internal sealed class Options
{
    private readonly Dictionary<string, string?> values = new();

    /// <summary>Parses args after <paramref name="command"/>'s name: <paramref name="known"/> options
    /// take a value, <paramref name="flags"/> take none; any other option is a usage error.</summary>
    public Options(string command, IEnumerable<string> args, string[] known, params string[] flags)
    {
        using var e = args.GetEnumerator();
        while (e.MoveNext())
        {
            string a = e.Current;
            if (!a.StartsWith("--", StringComparison.Ordinal) || a.Length == 2)
                throw new UsageException($"unexpected argument '{a}'; options look like --name value");
            string name = a[2..];
            if (!known.Contains(name) && !flags.Contains(name))
                throw new UsageException($"{command}: unknown option --{name}; it takes {string.Join(", ", known.Concat(flags).Select(k => "--" + k))}");
            if (flags.Contains(name)) values[name] = null;
            else if (e.MoveNext()) values[name] = e.Current;
            else throw new UsageException($"option --{name} needs a value");
        }
    }

    /// <summary>The value of --name, or null.</summary>
    public string? Get(string name)
    {
        return values.TryGetValue(name, out var v) ? v : null;
    }

    /// <summary>The value of --name; a usage error when missing.</summary>
    public string Required(string name, string what) =>
        Get(name) ?? throw new UsageException($"missing --{name} ({what})");

    /// <summary>True when --name was given.</summary>
    public bool Flag(string name)
    {
        return values.ContainsKey(name);
    }

    /// <summary>An integer option with a default.</summary>
    public int Int(string name, int fallback)
    {
        var s = Get(name);
        if (s is null) return fallback;
        return int.TryParse(s, out int v) ? v : throw new UsageException($"--{name} must be an integer but got '{s}'");
    }

    /// <summary>A floating-point option with a default.</summary>
    public double Double(string name, double fallback)
    {
        var s = Get(name);
        if (s is null) return fallback;
        return double.TryParse(s, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double v)
            ? v : throw new UsageException($"--{name} must be a number but got '{s}'");
    }

}

namespace PosteriorGpu.Cli;

/// <summary>Finds files that ship with the repository (the default model, the default inputs) whether the
/// command runs from the repository root (`dotnet run --project src/Cli`), from elsewhere, or from a
/// published folder: the path as given, then the same relative path under the executable's folder and
/// each folder above it (bin/Release/net10.0 lies inside the repository).</summary>
internal static class DefaultPaths
{
    /// <summary>The default model folder, relative to the repository root.</summary>
    public const string Model = "models/mnist-unet";

    /// <summary>The default MNIST classifier (the FID's features), relative to the repository root.</summary>
    public const string Classifier = "models/mnist-classifier";

    /// <summary>The default inputs, relative to the repository root.</summary>
    public const string Digits = "data/mnist-test-digits.npy";

    /// <summary>The first existing file or folder among the candidates; null when none exists.</summary>
    public static string? Find(string relative)
    {
        foreach (string candidate in Candidates(relative))
            if (File.Exists(candidate) || Directory.Exists(candidate)) return candidate;
        return null;
    }

    /// <summary>Where <see cref="Find"/> looks, in order (for error messages).</summary>
    public static IEnumerable<string> Candidates(string relative)
    {
        yield return Path.GetFullPath(relative);
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            yield return Path.Combine(dir.FullName, relative);
    }
}

using NUnit.Framework;

namespace PosteriorGpu.Tests;

/// <summary>Locates the shared test fixtures (reference checkpoints and arrays made by diffusers) that
/// live outside the repository, in a <c>shared/fixtures</c> folder beside it (or inside it).</summary>
public static class Fixtures
{
    /// <summary>The folder of fixture <paramref name="name"/>; ignores (skips) the test when it is absent.</summary>
    public static string Path(string name)
    {
        string? root = RepositoryRoot();
        if (root is not null)
        {
            foreach (var shared in new[] { System.IO.Path.Combine(root, "shared"), System.IO.Path.Combine(root, "..", "shared") })
            {
                string candidate = System.IO.Path.GetFullPath(System.IO.Path.Combine(shared, "fixtures", name));
                if (Directory.Exists(candidate) || System.IO.File.Exists(candidate)) return candidate;
            }
        }
        Assert.Ignore($"fixture '{name}' not found: looked for shared/fixtures/{name} inside and beside the repository root " +
                      $"({root ?? "no PosteriorGpu.sln above " + TestContext.CurrentContext.TestDirectory})");
        return null!;
    }

    /// <summary>A file inside fixture <paramref name="name"/>.</summary>
    public static string File(string name, string file) => System.IO.Path.Combine(Path(name), file);

    private static string? RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); dir is not null; dir = dir.Parent)
            if (System.IO.File.Exists(System.IO.Path.Combine(dir.FullName, "PosteriorGpu.sln"))) return dir.FullName;
        return null;
    }
}

using NUnit.Framework;

namespace PosteriorGpu.Tests.Samplers;

/// <summary>Locates the shared fixtures (shared/fixtures/&lt;name&gt;) for the schedule tests; ignores the test when absent.</summary>
public static class ScheduleFixtures
{
    /// <summary>The folder of fixture <paramref name="name"/>: &lt;repo&gt;/shared/fixtures/name or &lt;repo&gt;/../shared/fixtures/name,
    /// where &lt;repo&gt; is the first folder above the test assembly holding PosteriorGpu.sln.</summary>
    public static string Path(string name)
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(System.IO.Path.Combine(dir.FullName, "PosteriorGpu.sln"))) dir = dir.Parent;
        if (dir is null) Assert.Ignore($"fixture '{name}': no PosteriorGpu.sln above {AppContext.BaseDirectory}");
        foreach (var root in new[] { System.IO.Path.Combine(dir!.FullName, "shared"), System.IO.Path.Combine(dir.FullName, "..", "shared") })
        {
            string p = System.IO.Path.GetFullPath(System.IO.Path.Combine(root, "fixtures", name));
            if (Directory.Exists(p)) return p;
        }
        Assert.Ignore($"fixture '{name}' not found under shared/fixtures beside or inside {dir.FullName}");
        return "";
    }
}

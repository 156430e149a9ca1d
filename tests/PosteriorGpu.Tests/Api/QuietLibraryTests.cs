using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using NUnit.Framework;

namespace PosteriorGpu.Tests.Api;

/// <summary>The library writes nothing to the console and reads environment variables only where documented: the
/// device choice (POSTERIORGPU_DEVICE, in PosteriorGpu.Kernels), per-kernel profiling (POSTERIORGPU_PROFILE, in
/// PosteriorGpu.Kernels; its table goes to an event the hosts print) and the MNIST folder (POSTERIORGPU_MNIST, in
/// PosteriorGpu.Models). Checked on the compiled assemblies' member references.</summary>
public class QuietLibraryTests
{
    private static readonly string[] Libraries = ["PosteriorGpu.Kernels", "PosteriorGpu.Models", "PosteriorGpu.Samplers"];

    private static HashSet<string> MemberReferences(string assembly)
    {
        string path = Path.Combine(AppContext.BaseDirectory, assembly + ".dll");
        using var stream = File.OpenRead(path);
        using var pe = new PEReader(stream);
        var md = pe.GetMetadataReader();
        var names = new HashSet<string>();
        foreach (var handle in md.MemberReferences)
        {
            var member = md.GetMemberReference(handle);
            if (member.Parent.Kind != HandleKind.TypeReference) continue;
            var type = md.GetTypeReference((TypeReferenceHandle)member.Parent);
            names.Add($"{md.GetString(type.Namespace)}.{md.GetString(type.Name)}.{md.GetString(member.Name)}");
        }
        return names;
    }

    [Test]
    public void NoLibraryTouchesTheConsole()
    {
        Assert.That(MemberReferences("PosteriorGpu.Cli").Any(n => n.StartsWith("System.Console.")), Is.True,
            "control: the command-line tool does write to the console, so the scan sees such references");
        foreach (var lib in Libraries)
        {
            var console = MemberReferences(lib).Where(n => n.StartsWith("System.Console.")).ToArray();
            Assert.That(console, Is.Empty, $"{lib} uses {string.Join(", ", console)}");
        }
    }

    [Test]
    public void EnvironmentVariablesAreReadOnlyWhereDocumented()
    {
        var readers = Libraries.Where(lib => MemberReferences(lib).Contains("System.Environment.GetEnvironmentVariable")).ToArray();
        Assert.That(readers, Is.EquivalentTo(new[] { "PosteriorGpu.Kernels", "PosteriorGpu.Models" }));
        Assert.That(Libraries.SelectMany(MemberReferences).Where(n => n.StartsWith("System.Environment.SetEnvironmentVariable")), Is.Empty);
    }
}

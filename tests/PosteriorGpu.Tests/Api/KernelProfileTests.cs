using NUnit.Framework;
using PosteriorGpu.Kernels.Device;

namespace PosteriorGpu.Tests.Api;

/// <summary>POSTERIORGPU_PROFILE's table: each interval between launcher lookups goes to the earlier key, a launcher's
/// loading is not timed, and the rows are per key with their launch counts.</summary>
public class KernelProfileTests
{
    [Test]
    public void Report_CountsEachKeysIntervals()
    {
        var acc = TestDevices.Cpu.Accelerator;
        var profile = new KernelProfile();
        profile.Enter(acc, "first");
        profile.Loaded();
        Thread.Sleep(30);
        profile.Enter(acc, "second");
        profile.Loaded();
        profile.Enter(acc, "first");
        profile.Loaded();
        string report = profile.Report(acc, "test device");
        TestContext.Out.WriteLine(report);
        var rows = report.Split('\n').Where(l => l.StartsWith("| first") || l.StartsWith("| second")).ToList();
        Assert.That(rows, Has.Count.EqualTo(2));
        Assert.That(rows[0], Does.StartWith("| first | 2 |"), "heaviest first: first holds the 30 ms sleep");
        double firstMs = double.Parse(rows[0].Split('|')[3], System.Globalization.CultureInfo.InvariantCulture);
        Assert.That(firstMs, Is.GreaterThanOrEqualTo(29));
        Assert.That(report, Does.Contain("3 launches"));
    }

    [Test]
    public void FromEnvironment_IsOffUnlessAskedFor()
    {
        if (Environment.GetEnvironmentVariable(KernelProfile.Variable) == "1") Assert.Ignore("profiling is on in this run");
        Assert.That(KernelProfile.FromEnvironment(), Is.Null);
    }
}

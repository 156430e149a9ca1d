using NUnit.Framework;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Tests.Samplers;

/// <summary>What a graph does, off CUDA: capture keeps the window's launches without running them, and every replay runs
/// the launches of the captured window (with that window's host-side arguments) again. A run replayed through it is
/// bitwise the plain run only if no launch in a window takes a per-step value from the host.</summary>
internal sealed class HostReplay(Action window) : ILaunchReplay
{
    public int Nodes => 0;
    public int Launches { get; private set; }

    public void Launch()
    {
        window();
        Launches++;
    }

    public void Dispose() { }

    /// <summary>The report of a graph-replay run off CUDA: the table's steps ran one by one, none replayed, because of CUDA.</summary>
    public static void AssertTableStepsRanUnreplayed(StepLaunchReport? report)
    {
        Assert.That(report, Is.Not.Null);
        Assert.That(report!.DeviceTable, Is.True, "the table's steps ran");
        Assert.That(report.StepsReplayed, Is.Zero, "no graph off CUDA");
        Assert.That(report.Fallback, Does.Contain("CUDA"));
    }
}

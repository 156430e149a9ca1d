using PosteriorGpu.Kernels.Device;
using NUnit.Framework;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.Schedules;
using PosteriorGpu.Models.UNet;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Tests.Samplers;

/// <summary>
/// A sampler step stalls nothing: with the U-Net (whose forward pass makes no sync or copy) every unconditional
/// sampler's run makes one read-back of the starting x and one per <see cref="DiffusionSampler.DivergenceCheckInterval"/>
/// steps, and copies nothing from the host.
/// </summary>
public class SamplerHostSyncTests
{
    private static IEnumerable<string> Names => SamplerFactory.Names;

    /// <summary>Steps of the counted runs.</summary>
    internal const int Steps = 20;

    /// <summary>Host read-backs of a run of <paramref name="steps"/> steps: the starting x's, and one per check interval.</summary>
    internal static long Reads(int steps) =>
        1 + (steps + DiffusionSampler.DefaultDivergenceCheckInterval - 1) / DiffusionSampler.DefaultDivergenceCheckInterval;

    /// <summary>The device counters of a <see cref="Steps"/>-step run of <paramref name="sampler"/> from a fixed one-item start on
    /// the tiny U-Net, after a warm-up run (kernels load).</summary>
    internal static DeviceCounters CountedRun(GpuDevice dev, UNet2DModel model, DiffusionSampler sampler)
    {
        int s = model.Height;
        using var x = Tensor.FromHost(dev, TestData.Random(model.Channels * s * s, 2), 1, model.Channels, s, s);
        var start = x.ToHost();
        sampler.Sample(x, 3, seed: 1);   // warm-up: kernels load
        x.CopyFrom(start);
        var before = dev.Counters;
        sampler.Sample(x, Steps, seed: 1);
        return dev.Counters - before;
    }

    [TestCaseSource(nameof(Names))]
    public void Run_ReadsBackOncePerCheckInterval(string sampler)
    {
        var dev = TestDevices.Cpu;
        using var model = UNet2DModel.Load(dev, Fixtures.Path("diffusers-unet-tiny"));
        var used = CountedRun(dev, model, SamplerFactory.Create(sampler, model, NoiseSchedule.Linear(1000, 1e-4, 0.02)));
        TestContext.Out.WriteLine($"{sampler}, {Steps} steps: {used}");
        long reads = Reads(Steps);
        Assert.That((used.HostSyncs, used.DeviceToHostCopies, used.HostToDeviceCopies), Is.EqualTo((reads, reads, 0L)), used.ToString());
    }
}

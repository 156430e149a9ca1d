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

    [TestCaseSource(nameof(Names))]
    public void Run_ReadsBackOncePerCheckInterval(string sampler)
    {
        var dev = TestDevices.Cpu;
        using var model = UNet2DModel.Load(dev, Fixtures.Path("diffusers-unet-tiny"));
        var schedule = NoiseSchedule.Linear(1000, 1e-4, 0.02);
        int s = model.Config.SampleSize!.Value;
        using var x = Tensor.FromHost(dev, TestData.Random(model.Channels * s * s, 2), 1, model.Channels, s, s);
        var run = SamplerFactory.Create(sampler, model, schedule);
        var start = x.ToHost();
        run.Sample(x, 3, seed: 1);   // warm-up: kernels load
        const int steps = 20;
        x.CopyFrom(start);
        var before = dev.Counters;
        run.Sample(x, steps, seed: 1);
        var used = dev.Counters - before;
        TestContext.Out.WriteLine($"{sampler}, {steps} steps: {used}");
        long reads = 1 + (steps + DiffusionSampler.DefaultDivergenceCheckInterval - 1) / DiffusionSampler.DefaultDivergenceCheckInterval;
        Assert.That((used.HostSyncs, used.DeviceToHostCopies, used.HostToDeviceCopies), Is.EqualTo((reads, reads, 0L)), used.ToString());
    }
}

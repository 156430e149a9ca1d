using NUnit.Framework;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.IO;
using PosteriorGpu.Models.UNet;
using PosteriorGpu.Models.Schedules;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Tests.Samplers;

public class DdimFixtureTests
{
    [Test]
    public void Ddim10Steps_ReproducesDiffusersRun()
    {
        // diffusers' DDIMScheduler(set_timesteps(10), eta 0) from ddim_xT.npy gave ddim_x0.npy (fixture README).
        string folder = Fixtures.Path("diffusers-unet-tiny");
        var dev = TestDevices.Cpu;
        using var model = UNet2DModel.Load(dev, folder);
        var config = SchedulerConfig.Load(Path.Combine(folder, "scheduler_config.json"));
        var schedule = NoiseSchedule.FromConfig(config);
        Assert.That(schedule.Timesteps(10, config.TimestepSpacing, config.StepsOffset),
            Is.EqualTo(new[] { 900, 800, 700, 600, 500, 400, 300, 200, 100, 0 }), "meta.json's timesteps");
        var xT = Npy.Read(Path.Combine(folder, "ddim_xT.npy"));
        var expected = Npy.Read(Path.Combine(folder, "ddim_x0.npy")).ToFloat32();
        using var x = Tensor.FromHost(dev, xT.ToFloat32(), xT.Shape);
        var steps = new List<int>();
        new DdimSampler(model, schedule, 0, SamplerOptions.FromConfig(config))
            .Sample(x, 10, seed: 0, progress: SyncProgress.Of(p => steps.Add(p.Step)));
        TestData.AssertClose(x.ToHost(), expected, 1e-4, "ddim vs diffusers' ddim_x0.npy");
        Assert.That(steps, Is.EqualTo(Enumerable.Range(1, 10)));
    }
}

/// <summary>An IProgress that reports synchronously (Progress&lt;T&gt; posts to the thread pool).</summary>
internal sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}

internal static class SyncProgress
{
    public static SyncProgress<SamplerProgress> Of(Action<SamplerProgress> report) => new(report);
}

using NUnit.Framework;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.UNet;

namespace PosteriorGpu.Tests.Models;

/// <summary>
/// Batch-1 latency is launches and stalls: a U-Net forward pass makes no host synchronisation and no host copy
/// (its timestep goes to the embedding kernel as an argument), and the S32 architecture's pass stays within its
/// launch budget. Counted by <see cref="GpuDevice.Counters"/>, which every launcher, sync and copy goes through.
/// </summary>
public class UNetLaunchCountTests
{
    /// <summary>The benchmarks' "S32" (bench/Models/UNetArchitectures.cs): 64/128/128 channels, attention at 16x16.</summary>
    internal static readonly UNet2DConfig S32 = new()
    {
        SampleSize = 32,
        InChannels = 3,
        OutChannels = 3,
        BlockOutChannels = [64, 128, 128],
        LayersPerBlock = 2,
        NormNumGroups = 32,
        DownBlockTypes = ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D"],
        UpBlockTypes = ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
    };

    /// <summary>Launch budget of one S32 forward pass on the CPU accelerator: a ratchet at today's count, lowered with each
    /// fusion (issue 21's target is 60).</summary>
    public const int S32LaunchBudget = 197;

    private static DeviceCounters CountForward(UNet2DModel model, int n, float[] timesteps)
    {
        var dev = model.Device;
        var c = model.Config;
        int s = c.SampleSize!.Value;
        using var x = Tensor.FromHost(dev, TestData.Random(n * c.InChannels * s * s, 3), n, c.InChannels, s, s);
        using var eps = Tensor.Empty(dev, n, c.OutChannels, s, s);
        model.PredictEpsilon(x, timesteps, eps);   // warm-up: kernels load, the pool sizes itself
        var before = dev.Counters;
        var perKernel = dev.LaunchesByKernel;
        model.PredictEpsilon(x, timesteps, eps);
        var used = dev.Counters - before;
        TestContext.Out.WriteLine($"forward pass, batch {n}: {used}");
        foreach (var (key, count) in dev.LaunchesByKernel.OrderBy(p => p.Key))
            if (count - perKernel.GetValueOrDefault(key) is var d and > 0) TestContext.Out.WriteLine($"  {key}: {d}");
        return used;
    }

    /// <summary>Launch budget of one S32 forward pass at batch 1 on the GPU's paths planned for an H100's 132
    /// multiprocessors (split-K as planned for it, summed inside the GEMM kernel): a ratchet at today's count (issue 21's target, met: 71 before the concatenations' tables were prepared and the time path became one launch).</summary>
    public const int S32GpuLaunchBudget = 60;

    [Test]
    public void S32ForwardPass_OnTheGpuPaths_StaysWithinItsLaunchBudget()
    {
        // Counted without running the kernels (OpenLaunchCounter): the launchers' GPU choices, exactly.
        using var dev = GpuDevice.OpenLaunchCounter(132);
        using var model = UNet2DModel.Create(dev, S32, seed: 1, withGradients: false);
        var used = CountForward(model, 1, [999f]);
        Assert.That((used.HostSyncs, used.HostToDeviceCopies, used.DeviceToHostCopies), Is.EqualTo((0L, 0L, 0L)), used.ToString());
        Assert.That(used.Launches, Is.LessThanOrEqualTo(S32GpuLaunchBudget), used.ToString());
        var kernels = dev.LaunchesByKernel.Keys.ToList();
        Assert.That(kernels, Has.Some.StartsWith("conv2d-normalized-core").And.Some.StartsWith("conv2d-upsampled-core"), "the GPU's fusions are counted");
        Assert.That(kernels, Has.None.StartsWith("conv2d-register-tile").And.None.StartsWith("group-norm-chunk"));
        // Every GroupNorm's table comes from the launch that produced its input, a concatenation's from its two producers.
        Assert.That(kernels, Has.None.StartsWith("group-norm-table"), string.Join(", ", kernels));
    }

    /// <summary>Managed bytes one S32 forward pass at batch 1 may allocate on the GPU's paths: a ratchet at today's count
    /// (2026-12-04: 6,864 bytes, 97 a launch, once the generic launchers stopped composing their kernel keys and capturing
    /// closures per launch). What remains is per layer, not per element: the Tensor objects the pass rents from its pool
    /// and slices, and the shape arrays of the concatenation buffers.</summary>
    public const long S32GpuForwardBytes = 7_000;

    [Test]
    public void S32ForwardPass_OnTheGpuPaths_AllocatesWithinItsBudget()
    {
        // On the launch counter no kernel runs, so every byte is the library's own (ILGPU's launchers allocate nothing on
        // CUDA; its CPU accelerator's per-launch task object is not in this count).
        using var dev = GpuDevice.OpenLaunchCounter(132);
        using var model = UNet2DModel.Create(dev, S32, seed: 1, withGradients: false);
        using var x = Tensor.FromHost(dev, TestData.Random(3 * 32 * 32, 3), 1, 3, 32, 32);
        using var eps = Tensor.Empty(dev, 1, 3, 32, 32);
        model.PredictEpsilon(x, [999f], eps);
        model.PredictEpsilon(x, [999f], eps);
        long before = GC.GetAllocatedBytesForCurrentThread(), launches = dev.KernelLookups;
        model.PredictEpsilon(x, [999f], eps);
        long bytes = GC.GetAllocatedBytesForCurrentThread() - before;
        launches = dev.KernelLookups - launches;
        TestContext.Out.WriteLine($"S32 forward pass, batch 1, GPU paths: {bytes:N0} bytes in {launches} launches ({(double)bytes / launches:F0} per launch)");
        Assert.That(bytes, Is.LessThanOrEqualTo(S32GpuForwardBytes));
    }

    [TestCase(1)]
    [TestCase(3)]
    public void ForwardPass_MakesNoHostSyncOrCopy(int n)
    {
        using var model = UNet2DModel.Load(TestDevices.Cpu, Fixtures.Path("diffusers-unet-tiny"));
        var used = CountForward(model, n, [417f]);
        Assert.That(used.Launches, Is.GreaterThan(0), "the counters see the pass");
        Assert.That((used.HostSyncs, used.HostToDeviceCopies, used.DeviceToHostCopies), Is.EqualTo((0L, 0L, 0L)), used.ToString());
    }

    [Test]
    public void ForwardPass_SameTimestepPerItem_MakesNoHostCopy()
    {
        // One value per item, all equal, is the same call as one value for all.
        using var model = UNet2DModel.Load(TestDevices.Cpu, Fixtures.Path("diffusers-unet-tiny"));
        var used = CountForward(model, 2, [250f, 250f]);
        Assert.That((used.HostSyncs, used.HostToDeviceCopies), Is.EqualTo((0L, 0L)), used.ToString());
    }

    [Test]
    public void ForwardPass_DistinctTimestepsPerItem_UploadsThemOnce()
    {
        // Distinct timesteps (training) have to reach the device: one copy, still no sync.
        using var model = UNet2DModel.Load(TestDevices.Cpu, Fixtures.Path("diffusers-unet-tiny"));
        var used = CountForward(model, 2, [250f, 900f]);
        Assert.That((used.HostSyncs, used.HostToDeviceCopies, used.DeviceToHostCopies), Is.EqualTo((0L, 1L, 0L)), used.ToString());
    }

    [Test]
    public void S32ForwardPass_StaysWithinTheLaunchBudget()
    {
        using var model = UNet2DModel.Create(TestDevices.Cpu, S32, seed: 1, withGradients: false);
        var used = CountForward(model, 1, [999f]);
        Assert.That((used.HostSyncs, used.HostToDeviceCopies, used.DeviceToHostCopies), Is.EqualTo((0L, 0L, 0L)), used.ToString());
        Assert.That(used.Launches, Is.LessThanOrEqualTo(S32LaunchBudget), used.ToString());
    }
}

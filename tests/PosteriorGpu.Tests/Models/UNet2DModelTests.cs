using NUnit.Framework;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.IO;
using PosteriorGpu.Models.UNet;

namespace PosteriorGpu.Tests.Models;

public class UNet2DModelTests
{
    private static string Folder => Fixtures.Path("diffusers-unet-tiny");

    private static float[] RunFixture(GpuDevice dev, out float[] expected)
    {
        using var model = UNet2DModel.Load(dev, Folder);
        var x = Npy.Read(System.IO.Path.Combine(Folder, "x.npy"));
        var t = Npy.Read(System.IO.Path.Combine(Folder, "t.npy")).ToInt64().Select(v => (float)v).ToArray();
        expected = Npy.Read(System.IO.Path.Combine(Folder, "eps.npy")).ToFloat32();
        using var tx = Tensor.FromHost(dev, x.ToFloat32(), x.Shape);
        using var eps = Tensor.Empty(dev, x.Shape);
        model.PredictEpsilon(tx, t, eps);
        return eps.ToHost();
    }

    [Test]
    public void Fixture_ReproducesDiffusersEpsilon()
    {
        var got = RunFixture(TestDevices.Cpu, out var expected);
        double err = TestData.RelativeError(got, expected);
        TestContext.Out.WriteLine($"cpu: relative L2 error against diffusers' eps.npy = {err:E3}");
        Assert.That(err, Is.LessThan(1e-4));
    }

    /// <summary>The whole forward pass on the GPU's code paths (GEMM core, GroupNorm slab, GroupNorm normalised inside the
    /// resnets' convolutions, conv2 with the 1x1 shortcut as one sum, the upsampler's conv reading the un-upsampled input, the attention block's grouped
    /// projections), executed by the CPU accelerator: diffusers' output all the same, and launches and host traffic as a
    /// GPU pass makes them.</summary>
    [Test]
    public void Fixture_ReproducesDiffusersEpsilon_OnTheGpuPaths()
    {
        var dev = TestDevices.CpuOnGpuPaths;
        var before = dev.LaunchesByKernel;
        var got = RunFixture(dev, out var expected);
        double err = TestData.RelativeError(got, expected);
        TestContext.Out.WriteLine($"cpu on the gpu paths: relative L2 error against diffusers' eps.npy = {err:E3}");
        Assert.That(err, Is.LessThan(1e-4));
        var launched = dev.LaunchesByKernel.Where(p => p.Value > before.GetValueOrDefault(p.Key)).Select(p => p.Key).ToList();
        TestContext.Out.WriteLine("kernels: " + string.Join(", ", launched.Order()));
        foreach (string key in new[] { "conv2d-normalized-core", "conv2d-normalized-shortcut-core", "group-norm-table", "conv2d-upsampled-core",
            "conv2d-core-norm-stats", "conv2d-normalized-core-norm-stats", "conv2d-normalized-shortcut-core-norm-stats", "attention-qkv-normalized-core" })
            Assert.That(launched, Has.Some.StartsWith(key), $"the GPU path launches {key}");
        Assert.That(launched, Has.None.StartsWith("conv2d-register-tile").And.None.EqualTo("upsample2x"));
    }

    [Test, Category("Gpu")]
    public void Fixture_ReproducesDiffusersEpsilon_OnGpu()
    {
        var got = RunFixture(TestDevices.Gpu, out var expected);
        double err = TestData.RelativeError(got, expected);
        TestContext.Out.WriteLine($"gpu: relative L2 error against diffusers' eps.npy = {err:E3}");
        Assert.That(err, Is.LessThan(1e-4));
    }

    [Test]
    public void RepeatedCalls_AllocateNoDeviceMemoryAfterTheFirst()
    {
        var dev = TestDevices.Cpu;
        using var model = UNet2DModel.Load(dev, Folder);
        using var x = Tensor.FromHost(dev, TestData.Random(2 * 16 * 16, 3), 2, 1, 16, 16);
        using var eps = Tensor.Empty(dev, 2, 1, 16, 16);
        model.PredictEpsilon(x, [10f, 500f], eps);
        int pooled = model.PoolAllocations;
        long live = dev.LiveBuffers;
        var first = eps.ToHost();
        for (int i = 0; i < 3; i++) model.PredictEpsilon(x, [10f, 500f], eps);
        Assert.That(model.PoolAllocations, Is.EqualTo(pooled));
        Assert.That(dev.LiveBuffers, Is.EqualTo(live));
        Assert.That(eps.ToHost(), Is.EqualTo(first), "same input, same output, bitwise");
    }

    [Test]
    public void WrongInputs_AreClearErrors()
    {
        var dev = TestDevices.Cpu;
        using var model = UNet2DModel.Load(dev, Folder);
        using var x3 = Tensor.Zeros(dev, 1, 3, 16, 16);
        using var e3 = Tensor.Zeros(dev, 1, 3, 16, 16);
        Assert.That(Assert.Throws<ArgumentException>(() => model.PredictEpsilon(x3, [1f], e3))!.Message, Does.Contain("1 channel"));
        using var x = Tensor.Zeros(dev, 2, 1, 16, 16);
        using var e = Tensor.Zeros(dev, 2, 1, 16, 16);
        Assert.That(Assert.Throws<ArgumentException>(() => model.PredictEpsilon(x, [1f, 2f, 3f], e))!.Message, Does.Contain("3 timesteps"));
        using var odd = Tensor.Zeros(dev, 1, 1, 15, 15);
        using var eodd = Tensor.Zeros(dev, 1, 1, 15, 15);
        Assert.Throws<ArgumentException>(() => model.PredictEpsilon(odd, [1f], eodd));
        Assert.Throws<FileNotFoundException>(() => UNet2DModel.Load(dev, "/nonexistent/model"));
    }
}

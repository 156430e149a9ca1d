using NUnit.Framework;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Tests.Kernels;

public class TensorTests
{
    [Test]
    public void RoundTripsHostData_AndViewsShareMemory()
    {
        var dev = TestDevices.Cpu;
        var data = TestData.Random(2 * 3 * 4 * 5, 1);
        using var t = Tensor.FromHost(dev, data, 2, 3, 4, 5);
        Assert.That((t.N, t.C, t.H, t.W, t.ItemLength), Is.EqualTo((2, 3, 4, 5, 60)));
        Assert.That(t.ToHost(), Is.EqualTo(data));
        using var flat = t.Reshape(120);
        Assert.That(flat.ToHost(), Is.EqualTo(data));
        using var second = t.SliceBatch(1, 1);
        Assert.That(second.ToHost(), Is.EqualTo(data[60..]));
        second.Clear();
        Assert.That(t.ToHost()[60..], Is.All.EqualTo(0f));
        Assert.That(t.ToHost()[..60], Is.EqualTo(data[..60]));
    }

    [Test]
    public void ShapeErrors_NameBothShapes()
    {
        var dev = TestDevices.Cpu;
        using var t = Tensor.Zeros(dev, 2, 3);
        Assert.That(Assert.Throws<ArgumentException>(() => t.Reshape(7))!.Message, Does.Contain("[2, 3]").And.Contain("[7]"));
        Assert.That(Assert.Throws<ArgumentException>(() => Tensor.FromHost(dev, new float[5], 2, 3))!.Message, Does.Contain("[2, 3]"));
        Assert.Throws<InvalidOperationException>(() => _ = t.C);
        Assert.Throws<ArgumentOutOfRangeException>(() => t.SliceBatch(1, 2));
    }

    [Test]
    public void DisposedTensor_ThrowsAndFreesMemory()
    {
        var dev = TestDevices.Cpu;
        long before = dev.LiveBuffers;
        var t = Tensor.Zeros(dev, 10);
        Assert.That(dev.LiveBuffers, Is.EqualTo(before + 1));
        t.Dispose();
        t.Dispose();
        Assert.That(dev.LiveBuffers, Is.EqualTo(before));
        Assert.Throws<ObjectDisposedException>(() => t.ToHost());
    }

    [Test]
    public void Pool_AllocatesOnlyInFirstIteration()
    {
        var dev = TestDevices.Cpu;
        long before = dev.LiveBuffers;
        using (var pool = new TensorPool(dev))
        {
            for (int step = 0; step < 20; step++)
            {
                using var a = pool.Rent(2, 8);
                using var b = pool.Rent(4, 4);   // same length: another buffer while a is out
                using var c = pool.RentZeros(3);
                Assert.That(c.ToHost(), Is.All.EqualTo(0f));
                Assert.That(b.Shape, Is.EqualTo(new[] { 4, 4 }));
            }
            Assert.That(pool.Allocations, Is.EqualTo(3));
            Assert.That(pool.Outstanding, Is.EqualTo(0));
            Assert.That(dev.LiveBuffers, Is.EqualTo(before + 3));
        }
        Assert.That(dev.LiveBuffers, Is.EqualTo(before), "disposing the pool frees every buffer");
    }
}

public class DeviceTests
{
    [Test]
    public void Parse_AcceptsKnownNamesAndRejectsOthers()
    {
        Assert.That(DeviceKinds.Parse("CUDA"), Is.EqualTo(DeviceKind.Cuda));
        Assert.That(DeviceKinds.Parse("opencl"), Is.EqualTo(DeviceKind.OpenCL));
        Assert.That(DeviceKinds.Parse("cpu"), Is.EqualTo(DeviceKind.Cpu));
        Assert.That(DeviceKinds.Parse(null), Is.Null);
        Assert.That(Assert.Throws<ArgumentException>(() => DeviceKinds.Parse("tpu"))!.Message, Does.Contain("tpu").And.Contain("cuda, opencl, cpu"));
    }

    [Test]
    public void List_IncludesTheCpuAccelerator()
    {
        Assert.That(GpuDevice.List().Any(d => d.Kind == DeviceKind.Cpu));
    }

    [Test]
    public void MissingRequestedDevice_IsAClearError()
    {
        if (GpuDevice.List().Any(d => d.Kind == DeviceKind.Cuda)) Assert.Ignore("this machine has CUDA");
        var ex = Assert.Throws<InvalidOperationException>(() => GpuDevice.Open(DeviceKind.Cuda));
        Assert.That(ex!.Message, Does.Contain("cuda").And.Contain("requested"));
    }

    [Test]
    public void Plans_CoverEveryElementOnce([Values(1, 2, 2047, 2049, 100_003)] int n, [Values] bool cpu)
    {
        var plan = ElementRange.For(n, cpu);
        var seen = new int[n];
        for (int t = 0; t < plan.Threads; t++)
            for (int k = 0; k < plan.Count; k++)
            {
                int i = plan.Index(t, k);
                if (i >= plan.Total) break;
                seen[i]++;
            }
        Assert.That(seen, Is.All.EqualTo(1));
    }
}

using NUnit.Framework;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Embedding;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Tests.Kernels;

/// <summary>The time path in one launch (<see cref="TimestepMlp"/>) against its double-precision specification: the
/// shared-timestep and per-item forms, an odd sinusoid width, several chunks of outputs, with and without the last SiLU,
/// on the default CPU accelerator and on 256-thread groups (the GPU's shape).</summary>
public class TimestepMlpTests
{
    private static IEnumerable<TestCaseData> Cases()
    {
        foreach (var (name, device) in new[] { ("cpu", (Func<GpuDevice>)(() => TestDevices.Cpu)), ("wide", () => TestDevices.CpuWide) })
        {
            // (dim, hidden, outputs, batch, per-item timesteps, flip, shift, SiLU out)
            yield return new TestCaseData(device, 64, 256, 256, 1, false, true, 0f, true).SetArgDisplayNames(name, "S32-like");
            yield return new TestCaseData(device, 33, 70, 95, 3, true, false, 1f, false).SetArgDisplayNames(name, "odd, per-item, 3 chunks");
            // 256-thread groups on the CPU are slow: the larger case on the default accelerator only.
            if (name == "cpu")
                yield return new TestCaseData(device, 128, 512, 512, 2, false, false, 1f, true).SetArgDisplayNames(name, "cifar10-like, shared");
        }
        yield return new TestCaseData((Func<GpuDevice>)(() => TestDevices.Gpu), 64, 256, 256, 1, false, true, 0f, true)
            .SetArgDisplayNames("gpu", "S32-like").SetCategory("Gpu");
    }

    [TestCaseSource(nameof(Cases))]
    public void MatchesTheReference(Func<GpuDevice> device, int dim, int hidden, int outputs, int batch, bool perItem, bool flip, float shift, bool silu)
    {
        var dev = device();
        var w1 = TestData.Random(hidden * dim, 1, 0.2f);
        var b1 = TestData.Random(hidden, 2, 0.5f);
        var w2 = TestData.Random(outputs * hidden, 3, 0.1f);
        var b2 = TestData.Random(outputs, 4, 0.5f);
        var timesteps = perItem ? Enumerable.Range(0, batch).Select(i => 17.5f + 311 * i).ToArray() : Enumerable.Repeat(999f, batch).ToArray();
        var expected = new float[batch * outputs];
        TimestepMlp.Reference(timesteps, dim, flip, shift, w1, b1, hidden, w2, b2, outputs, silu, expected);

        using var tw1 = Tensor.FromHost(dev, w1, hidden, dim);
        using var tb1 = Tensor.FromHost(dev, b1, hidden);
        using var tw2 = Tensor.FromHost(dev, w2, outputs, hidden);
        using var tb2 = Tensor.FromHost(dev, b2, outputs);
        using var y = Tensor.Empty(dev, batch, outputs);
        if (perItem)
        {
            using var t = Tensor.FromHost(dev, timesteps, batch);
            TimestepMlp.Run(t, dim, flip, shift, tw1, tb1, tw2, tb2, silu, y);
        }
        else
        {
            TimestepMlp.Run(timesteps[0], dim, flip, shift, tw1, tb1, tw2, tb2, silu, y);
        }
        TestData.AssertClose(y.ToHost(), expected, 2e-6, $"timestep mlp {dim}->{hidden}->{outputs}");
    }

    [Test]
    public void IsOneLaunch_AndShapesThatDoNotFit_SayWhy()
    {
        var dev = TestDevices.Cpu;
        using var w1 = Tensor.Zeros(dev, 16, 8);
        using var b1 = Tensor.Zeros(dev, 16);
        using var w2 = Tensor.Zeros(dev, 40, 16);
        using var b2 = Tensor.Zeros(dev, 40);
        using var y = Tensor.Empty(dev, 2, 40);
        var before = dev.Counters;
        TimestepMlp.Run(5f, 8, true, 0f, w1, b1, w2, b2, true, y);
        Assert.That((dev.Counters.Launches - before.Launches, dev.Counters.HostToDeviceCopies - before.HostToDeviceCopies), Is.EqualTo((1L, 0L)));

        Assert.That(() => TimestepMlp.Run(5f, 9, true, 0f, w1, b1, w2, b2, true, y), Throws.ArgumentException.With.Message.Contains("linear_1 weight"));
        using var y2 = Tensor.Empty(dev, 2, 39);
        Assert.That(() => TimestepMlp.Run(5f, 8, true, 0f, w1, b1, w2, b2, true, y2), Throws.ArgumentException.With.Message.Contains("y"));
        using var wide = Tensor.Zeros(dev, TimestepMlp.MaxHidden + 1, 8);
        using var wideBias = Tensor.Zeros(dev, TimestepMlp.MaxHidden + 1);
        using var w2Wide = Tensor.Zeros(dev, 40, TimestepMlp.MaxHidden + 1);
        Assert.That(() => TimestepMlp.Run(5f, 8, true, 0f, wide, wideBias, w2Wide, b2, true, y), Throws.ArgumentException.With.Message.Contains("exceed"));
    }
}

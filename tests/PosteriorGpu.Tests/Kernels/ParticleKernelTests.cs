using NUnit.Framework;
using PosteriorGpu.Kernels.Layout;
using PosteriorGpu.Kernels.Reductions;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Tests.Kernels;

/// <summary>The two kernels of LGD-MC's particles: repeat each chain, and sum each chain's particles with weights.</summary>
public class ParticleKernelTests
{
    [TestCase(1, 1, 1)]
    [TestCase(1, 7, 5)]
    [TestCase(3, 1, 33)]
    [TestCase(4, 10, 1024)]
    [TestCase(5, 3, 4099)]
    public void RepeatItems_MatchesReference(int items, int repeats, int itemLength)
    {
        var dev = TestDevices.Cpu;
        var x = TestData.Random(items * itemLength, 90);
        using var tx = Tensor.FromHost(dev, x, items, itemLength);
        using var ty = Tensor.Empty(dev, items * repeats, itemLength);
        RepeatItems.Run(tx, repeats, ty);
        var expected = new float[items * repeats * itemLength];
        RepeatItems.Reference(x, items, repeats, expected);
        Assert.That(ty.ToHost(), Is.EqualTo(expected));
        // Spot check of the specification itself: the last copy of the last item.
        Assert.That(expected[^1], Is.EqualTo(x[^1]));
        Assert.That(expected[(repeats - 1) * itemLength], Is.EqualTo(x[0]));
    }

    [TestCase(1, 1, 1)]
    [TestCase(1, 7, 5)]
    [TestCase(3, 1, 33)]
    [TestCase(4, 10, 1024)]
    [TestCase(5, 3, 4099)]
    public void WeightedItemSum_MatchesReference(int groups, int repeats, int itemLength)
    {
        var dev = TestDevices.Cpu;
        var x = TestData.Random(groups * repeats * itemLength, 91, 3f);
        var w = TestData.Random(groups * repeats, 92);
        using var tx = Tensor.FromHost(dev, x, groups * repeats, itemLength);
        using var tw = Tensor.FromHost(dev, w, groups * repeats);
        using var ty = Tensor.Empty(dev, groups, itemLength);
        WeightedItemSum.Run(tx, tw, repeats, ty);
        var expected = new float[groups * itemLength];
        WeightedItemSum.Reference(x, w, groups, repeats, expected);
        TestData.AssertClose(ty.ToHost(), expected, 1e-6, "weighted item sum");
    }

    [Test]
    public void WeightedItemSum_OfOneItemWithWeightOne_IsBitwiseTheItem()
    {
        var dev = TestDevices.Cpu;
        var x = TestData.Random(3 * 50, 93);
        x[7] = -0f;
        using var tx = Tensor.FromHost(dev, x, 3, 50);
        using var tw = Tensor.FromHost(dev, [1f, 1f, 1f], 3);
        using var ty = Tensor.Empty(dev, 3, 50);
        WeightedItemSum.Run(tx, tw, 1, ty);
        var y = ty.ToHost();
        Assert.That(y.Select(BitConverter.SingleToInt32Bits), Is.EqualTo(x.Select(BitConverter.SingleToInt32Bits)));
    }

    [Test]
    public void MismatchedShapes_AreRejected()
    {
        var dev = TestDevices.Cpu;
        using var x = Tensor.Zeros(dev, 2, 5);
        using var y = Tensor.Zeros(dev, 5, 5);
        Assert.That(Assert.Throws<ArgumentException>(() => RepeatItems.Run(x, 3, y))!.Message, Does.Contain("[6, 5]"));
        Assert.Throws<ArgumentException>(() => RepeatItems.Run(x, 0, y));
        using var w = Tensor.Zeros(dev, 5);
        using var s = Tensor.Zeros(dev, 2, 5);
        Assert.Throws<ArgumentException>(() => WeightedItemSum.Run(y, w, 3, s));
        using var w6 = Tensor.Zeros(dev, 6);
        using var x6 = Tensor.Zeros(dev, 6, 5);
        Assert.DoesNotThrow(() => WeightedItemSum.Run(x6, w6, 3, s));
        Assert.Throws<ArgumentException>(() => WeightedItemSum.Run(x6, w, 3, s));
    }
}

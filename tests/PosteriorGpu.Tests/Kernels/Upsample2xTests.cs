using NUnit.Framework;
using PosteriorGpu.Kernels.Resample;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Tests.Kernels;

public class Upsample2xTests
{
    [TestCase(1, 1, 1, 1)]
    [TestCase(1, 3, 5, 7)]
    [TestCase(3, 2, 33, 17)]
    public void MatchesReference(int n, int c, int h, int w)
    {
        var dev = TestDevices.Cpu;
        var x = TestData.Random(n * c * h * w, 50);
        using var tx = Tensor.FromHost(dev, x, n, c, h, w);
        using var ty = Tensor.Empty(dev, n, c, 2 * h, 2 * w);
        Upsample2x.Run(tx, ty);
        var expected = new float[ty.Length];
        Upsample2x.Reference(x, n * c, h, w, expected);
        Assert.That(ty.ToHost(), Is.EqualTo(expected), "a copy is exact");
    }

    [Test]
    public void SmallExample()
    {
        var dev = TestDevices.Cpu;
        using var tx = Tensor.FromHost(dev, [1f, 2f, 3f, 4f, 5f, 6f], 1, 1, 2, 3);
        using var ty = Tensor.Empty(dev, 1, 1, 4, 6);
        Upsample2x.Run(tx, ty);
        Assert.That(ty.ToHost(), Is.EqualTo(new float[]
        {
            1, 1, 2, 2, 3, 3,
            1, 1, 2, 2, 3, 3,
            4, 4, 5, 5, 6, 6,
            4, 4, 5, 5, 6, 6,
        }));
    }

    [Test]
    public void RejectsWrongOutputShape()
    {
        var dev = TestDevices.Cpu;
        using var x = Tensor.Zeros(dev, 2, 3, 4, 5);
        using var y = Tensor.Zeros(dev, 2, 3, 8, 9);
        var ex = Assert.Throws<ArgumentException>(() => Upsample2x.Run(x, y));
        Assert.That(ex!.Message, Does.Contain("[2, 3, 8, 10]").And.Contain("[2, 3, 8, 9]"));
        using var flat = Tensor.Zeros(dev, 2, 3);
        Assert.Throws<ArgumentException>(() => Upsample2x.Run(flat, y));
    }

    [Test, Category("Gpu")]
    public void Gpu_MatchesReference()
    {
        var dev = TestDevices.Gpu;
        const int n = 8, c = 128, h = 32, w = 32;
        var x = TestData.Random(n * c * h * w, 51);
        using var tx = Tensor.FromHost(dev, x, n, c, h, w);
        using var ty = Tensor.Empty(dev, n, c, 2 * h, 2 * w);
        Upsample2x.Run(tx, ty);
        var expected = new float[ty.Length];
        Upsample2x.Reference(x, n * c, h, w, expected);
        var got = ty.ToHost();
        TestContext.Out.WriteLine($"upsample2x: max abs {TestData.MaxAbsError(got, expected):E2}");
        Assert.That(got, Is.EqualTo(expected));
    }
}

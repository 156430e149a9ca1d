using NUnit.Framework;
using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Tests.Kernels;

/// <summary>
/// The fused noise-drawing updates take one Philox block per four elements; the random stream must stay the one
/// <see cref="Philox.Normal"/> defines per element (seeds reproduce samples across versions). Each kernel is compared
/// bitwise with its per-element reference on awkward lengths and on draws whose offset is not a multiple of four (a
/// batch starting at an odd sample of odd-sized items), so quads straddle the range's ends.
/// </summary>
public class NoiseQuadTests
{
    private static readonly int[] Lengths = [1, 3, 5, 8, 10_007];
    private static readonly long[] Offsets = [0, 1, 2, 3, 4 * 1001 + 3];

    private static IEnumerable<TestCaseData> Cases() =>
        from n in Lengths from o in Offsets select new TestCaseData(n, o).SetArgDisplayNames($"n={n}", $"offset={o}");

    [Test]
    public void Normal4_IsBitwiseTheFourPerElementNormals()
    {
        foreach (long quad in new long[] { 0, 1, 12345, (1L << 32) + 7 })
        {
            Philox.Normal4(99, 5, 1UL << 33 | 17, quad, out float a, out float b, out float c, out float d);
            Assert.That(new[] { a, b, c, d }, Is.EqualTo(Enumerable.Range(0, 4).Select(j => Philox.Normal(99, 5, 1UL << 33 | 17, 4 * quad + j)).ToArray()));
        }
    }

    [TestCaseSource(nameof(Cases))]
    public void LangevinStep_IsBitwiseItsReference(int n, long offset)
    {
        var dev = TestDevices.Cpu;
        var draw = new RandomDraw(7, 3, 11, offset);
        var x = TestData.Random(n, 1);
        var s = TestData.Random(n, 2);
        var g = TestData.Random(n, 3);
        using var tx = Tensor.FromHost(dev, x, n);
        using var ts = Tensor.FromHost(dev, s, n);
        using var tg = Tensor.FromHost(dev, g, n);
        LangevinStep.Run(tx, ts, tg, 0.3f, draw);
        LangevinStep.Reference(x, s, g, 0.3f, draw);
        Assert.That(tx.ToHost(), Is.EqualTo(x));
        using var tx2 = Tensor.FromHost(dev, x, n);
        LangevinStep.Run(tx2, ts, null, 0.3f, draw);
        LangevinStep.Reference(x, s, default, 0.3f, draw);
        Assert.That(tx2.ToHost(), Is.EqualTo(x), "without a gradient");
    }

    [TestCaseSource(nameof(Cases))]
    public void ProximalLangevinStep_IsBitwiseItsReference(int n, long offset)
    {
        var dev = TestDevices.Cpu;
        var draw = new RandomDraw(8, 4, 2, offset);
        var x = TestData.Random(n, 4);
        var a = TestData.Random(n, 5);
        var g = TestData.Random(n, 6);
        using var tx = Tensor.FromHost(dev, x, n);
        using var ta = Tensor.FromHost(dev, a, n);
        using var tg = Tensor.FromHost(dev, g, n);
        ProximalLangevinStep.Run(tx, ta, tg, 0.7f, 0.2f, 0.5f, draw);
        ProximalLangevinStep.Reference(x, a, g, 0.7f, 0.2f, 0.5f, draw);
        Assert.That(tx.ToHost(), Is.EqualTo(x));
    }

    [TestCaseSource(nameof(Cases))]
    public void AddNoise_IsBitwiseItsReference(int n, long offset)
    {
        var dev = TestDevices.Cpu;
        var draw = new RandomDraw(9, 1, 0, offset);
        var x = TestData.Random(n, 7);
        using var tx = Tensor.FromHost(dev, x, n);
        AddNoise.Run(tx, -0.4f, draw);
        AddNoise.Reference(x, -0.4f, draw);
        Assert.That(tx.ToHost(), Is.EqualTo(x));
    }

    [TestCaseSource(nameof(Cases))]
    public void DiffusionStep_IsBitwiseItsReference(int n, long offset)
    {
        var dev = TestDevices.Cpu;
        var draw = new RandomDraw(10, 2, 500, offset);
        foreach (var c in new[] { DiffusionStep.Ddpm(0.3, 0.35), DiffusionStep.Ddim(0.3, 0.35, 0) })
        {
            var x = TestData.Random(n, 8);
            var eps = TestData.Random(n, 9);
            using var tx = Tensor.FromHost(dev, x, n);
            using var te = Tensor.FromHost(dev, eps, n);
            DiffusionStep.Run(tx, te, c, draw);
            DiffusionStep.Reference(x, eps, c, draw);
            Assert.That(tx.ToHost(), Is.EqualTo(x), $"sigma {c.Sigma}");
        }
    }
}

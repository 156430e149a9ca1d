using NUnit.Framework;
using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Tests.Kernels;

/// <summary>DPnP's fused kernels against their references on awkward shapes.</summary>
public class PlugAndPlayKernelTests
{
    private static readonly int[][] Shapes = [[1, 1, 1, 1], [1, 3, 5, 7], [3, 2, 9, 11], [2, 1, 128, 131]];

    private static IEnumerable<TestCaseData> Cases() => Shapes.Select(s => new TestCaseData((object)s).SetArgDisplayNames(Shape.Format(s)));

    [TestCaseSource(nameof(Cases))]
    public void DenoisingUpdate_MatchesReference(int[] shape)
    {
        var dev = TestDevices.Cpu;
        int n = Shape.Elements(shape);
        var z = TestData.Random(n, 1);
        var a = TestData.Random(n, 2);
        var e = TestData.Random(n, 3);
        var prev = TestData.Random(n, 4);
        var u = new float[n];
        var draw = new RandomDraw(5, 6, 7);
        var c = new DenoisingUpdate.Coefficients(0.3f, 0.7f, -0.2f, 0.5f, 0.6f, -0.1f, 0.05f, 0.9f, 0.4f);
        using var tz = Tensor.FromHost(dev, z, shape);
        using var ta = Tensor.FromHost(dev, a, shape);
        using var te = Tensor.FromHost(dev, e, shape);
        using var tp = Tensor.FromHost(dev, prev, shape);
        using var tu = Tensor.Empty(dev, shape);
        DenoisingUpdate.Run(tz, ta, te, tp, tu, c, draw);
        DenoisingUpdate.Reference(z, a, e, prev, u, c, draw);
        TestData.AssertClose(tz.ToHost(), z, 1e-5, "z");
        TestData.AssertClose(tp.ToHost(), prev, 1e-5, "prev");
        TestData.AssertClose(tu.ToHost(), u, 1e-5, "u");
    }

    [TestCaseSource(nameof(Cases))]
    public void ProximalLangevinStep_MatchesReference(int[] shape)
    {
        var dev = TestDevices.Cpu;
        int n = Shape.Elements(shape);
        var x = TestData.Random(n, 8);
        var a = TestData.Random(n, 9);
        var g = TestData.Random(n, 10);
        var draw = new RandomDraw(11, 12, 13);
        using var tx = Tensor.FromHost(dev, x, shape);
        using var ta = Tensor.FromHost(dev, a, shape);
        using var tg = Tensor.FromHost(dev, g, shape);
        ProximalLangevinStep.Run(tx, ta, tg, 0.8f, 0.01f, 0.3f, draw);
        ProximalLangevinStep.Reference(x, a, g, 0.8f, 0.01f, 0.3f, draw);
        TestData.AssertClose(tx.ToHost(), x, 1e-5, "proximal langevin");
    }

    [Test]
    public void ProximalLangevinStep_WithoutLikelihood_DrawsTheGaussianExactly()
    {
        // C1 = exp(-h / eta^2), C2 = eta^2 (1 - C1), C3 = eta sqrt(1 - C1^2): from x ~ N(a, eta^2) one step keeps N(a, eta^2).
        var dev = TestDevices.Cpu;
        const int n = 200_000;
        const float eta = 0.5f, c1 = 0.6f;
        using var x = Tensor.Zeros(dev, n);
        using var a = Tensor.Zeros(dev, n);
        using var g = Tensor.Zeros(dev, n);
        AddNoise.Run(x, eta, new RandomDraw(1, 2, 3));
        ProximalLangevinStep.Run(x, a, g, c1, eta * eta * (1 - c1), eta * MathF.Sqrt(1 - c1 * c1), new RandomDraw(1, 2, 4));
        double var = x.ToHost().Select(v => (double)v * v).Sum() / n;
        Assert.That(var, Is.EqualTo(eta * eta).Within(0.01 * eta * eta));
    }

    [Test]
    public void Kernels_RejectMismatchedShapes()
    {
        var dev = TestDevices.Cpu;
        using var a = Tensor.Zeros(dev, 2, 3);
        using var b = Tensor.Zeros(dev, 3, 2);
        Assert.That(Assert.Throws<ArgumentException>(() => ProximalLangevinStep.Run(a, b, a, 1, 0, 0, default))!.Message,
            Does.Contain("[2, 3]").And.Contain("[3, 2]"));
        Assert.That(Assert.Throws<ArgumentException>(() => DenoisingUpdate.Run(a, a, b, a, a, default, default))!.Message,
            Does.Contain("[2, 3]").And.Contain("[3, 2]"));
    }
}

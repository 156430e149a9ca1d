using NUnit.Framework;
using PosteriorGpu.Kernels.Activations;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Tests.Kernels;

public class SiluTests
{
    [TestCase(new[] { 1 })]
    [TestCase(new[] { 1, 3, 5, 7 })]
    [TestCase(new[] { 3, 2, 129, 67 })]
    public void MatchesReference(int[] shape)
    {
        var dev = TestDevices.Cpu;
        var x = TestData.Random(Shape.Elements(shape), 40, 8f);
        using var tx = Tensor.FromHost(dev, x, shape);
        using var ty = Tensor.Empty(dev, shape);
        Silu.Run(tx, ty);
        var expected = new float[x.Length];
        Silu.Reference(x, expected);
        TestData.AssertClose(ty.ToHost(), expected, 1e-6, "silu");
        Silu.Run(tx, tx);
        TestData.AssertClose(tx.ToHost(), expected, 1e-6, "silu in place");
    }

    [Test]
    public void ExtremeInputs_StayFinite()
    {
        var dev = TestDevices.Cpu;
        float[] x = [-1000f, -100f, -20f, 0f, 20f, 100f, 1000f];
        using var tx = Tensor.FromHost(dev, x, x.Length);
        Silu.Run(tx, tx);
        var y = tx.ToHost();
        Assert.That(y, Is.EqualTo(new[] { 0f, 0f, -20f * 2.0611537e-9f, 0f, 20f, 100f, 1000f }).Within(1e-6));
    }

    [Test]
    public void RejectsMismatchedShapes()
    {
        var dev = TestDevices.Cpu;
        using var a = Tensor.Zeros(dev, 2, 3);
        using var b = Tensor.Zeros(dev, 3, 2);
        var ex = Assert.Throws<ArgumentException>(() => Silu.Run(a, b));
        Assert.That(ex!.Message, Does.Contain("[2, 3]").And.Contain("[3, 2]"));
    }

    [Test, Category("Gpu")]
    public void Gpu_MatchesReference()
    {
        var dev = TestDevices.Gpu;
        int[] shape = [8, 128, 64, 64];
        var x = TestData.Random(Shape.Elements(shape), 41, 10f);
        using var tx = Tensor.FromHost(dev, x, shape);
        Silu.Run(tx, tx);
        var expected = new float[x.Length];
        Silu.Reference(x, expected);
        var got = tx.ToHost();
        TestContext.Out.WriteLine($"silu {Shape.Format(shape)}: rel {TestData.RelativeError(got, expected):E2} max abs {TestData.MaxAbsError(got, expected):E2}");
        TestData.AssertClose(got, expected, 1e-6, "silu on GPU");
    }
}

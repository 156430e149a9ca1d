using NUnit.Framework;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Samplers.Operators;

namespace PosteriorGpu.Tests.Operators;

/// <summary>One adjointness test for every linear operator (&lt;A x, y&gt; = &lt;x, A^T y&gt;), plus the
/// likelihood gradient and the shape checks they share.</summary>
public class LinearOperatorTests
{
    public static IEnumerable<TestCaseData> Operators()
    {
        yield return new TestCaseData((Func<GpuDevice, ILinearOperator>)(d => InpaintingOperator.Box(d, 3, 7, 9, 2, 3, 3, 4)), 1).SetArgDisplayNames("inpainting-box-b1");
        yield return new TestCaseData((Func<GpuDevice, ILinearOperator>)(d => InpaintingOperator.RandomPixels(d, 1, 8, 8, 0.3, 2)), 3).SetArgDisplayNames("inpainting-random-b3");
        yield return new TestCaseData((Func<GpuDevice, ILinearOperator>)(d => InpaintingOperator.HalfImage(d, 2, 5, 6)), 2).SetArgDisplayNames("inpainting-half-b2");
        yield return new TestCaseData((Func<GpuDevice, ILinearOperator>)(d => CompressedSensingOperator.Gaussian(d, [1, 5, 7], 11, 3)), 1).SetArgDisplayNames("cs-11x35-b1");
        yield return new TestCaseData((Func<GpuDevice, ILinearOperator>)(d => CompressedSensingOperator.Gaussian(d, [3, 4, 4], 17, 4)), 3).SetArgDisplayNames("cs-17x48-b3");
    }

    private static int[] Batched(int n, int[] item) => new[] { n }.Concat(item).ToArray();

    private static double Dot(float[] a, float[] b) => a.Zip(b, (u, v) => (double)u * v).Sum();

    [TestCaseSource(nameof(Operators))]
    public void Adjoint_SatisfiesTheInnerProductIdentity(Func<GpuDevice, ILinearOperator> make, int batch)
    {
        var dev = TestDevices.Cpu;
        using var op = make(dev);
        int[] xs = Batched(batch, op.InputShape), ys = Batched(batch, op.MeasurementShape);
        var x = TestData.Random(Shape.Elements(xs), 1);
        var y = TestData.Random(Shape.Elements(ys), 2);
        using var tx = Tensor.FromHost(dev, x, xs);
        using var ty = Tensor.FromHost(dev, y, ys);
        using var ax = Tensor.Empty(dev, ys);
        using var aty = Tensor.Empty(dev, xs);
        op.Forward(tx, ax);
        op.Adjoint(ty, aty);
        double left = Dot(ax.ToHost(), y), right = Dot(x, aty.ToHost());
        TestContext.Out.WriteLine($"{op.Name}: <Ax, y> = {left:F6}, <x, A^T y> = {right:F6}");
        Assert.That(Math.Abs(left - right) / (Math.Abs(left) + 1e-6), Is.LessThan(1e-5));
    }

    [TestCaseSource(nameof(Operators))]
    public void LogLikelihoodGradient_IsAdjointOfScaledResidual(Func<GpuDevice, ILinearOperator> make, int batch)
    {
        var dev = TestDevices.Cpu;
        using var op = make(dev);
        int[] xs = Batched(batch, op.InputShape), ys = Batched(batch, op.MeasurementShape);
        var x = TestData.Random(Shape.Elements(xs), 3);
        var y = TestData.Random(Shape.Elements(ys), 4);
        using var tx = Tensor.FromHost(dev, x, xs);
        using var ty = Tensor.FromHost(dev, y, ys);
        using var grad = Tensor.Empty(dev, xs);
        op.LogLikelihoodGradient(tx, ty, 0.5f, grad);
        using var ax = Tensor.Empty(dev, ys);
        op.Forward(tx, ax);
        var r = ax.ToHost().Zip(y, (a, b) => (b - a) / 0.25f).ToArray();
        using var tr = Tensor.FromHost(dev, r, ys);
        using var expected = Tensor.Empty(dev, xs);
        op.Adjoint(tr, expected);
        TestData.AssertClose(grad.ToHost(), expected.ToHost(), 1e-5, $"{op.Name}: grad log p(y|x)");
    }

    [Test, Category("Gpu")]
    public void Gpu_OperatorsMatchTheCpu()
    {
        foreach (var data in Operators())
        {
            var make = (Func<GpuDevice, ILinearOperator>)data.Arguments[0]!;
            int batch = (int)data.Arguments[1]!;
            float[] Run(GpuDevice dev, bool adjoint)
            {
                using var op = make(dev);
                int[] xs = Batched(batch, op.InputShape), ys = Batched(batch, op.MeasurementShape);
                using var tx = Tensor.FromHost(dev, TestData.Random(Shape.Elements(xs), 1), xs);
                using var ty = Tensor.FromHost(dev, TestData.Random(Shape.Elements(ys), 2), ys);
                if (adjoint) { op.Adjoint(ty, tx); return tx.ToHost(); }
                op.Forward(tx, ty);
                return ty.ToHost();
            }
            foreach (bool adjoint in new[] { false, true })
                TestData.AssertClose(Run(TestDevices.Gpu, adjoint), Run(TestDevices.Cpu, adjoint), 1e-5, $"{data.TestName} {(adjoint ? "adjoint" : "forward")} cuda vs cpu");
        }
    }

    [Test]
    public void ShapeMismatch_NamesTheExpectedShape()
    {
        var dev = TestDevices.Cpu;
        using var op = CompressedSensingOperator.Gaussian(dev, [1, 4, 4], 5, 1);
        using var x = Tensor.Zeros(dev, 2, 1, 4, 4);
        using var wrong = Tensor.Zeros(dev, 2, 6);
        Assert.That(Assert.Throws<ArgumentException>(() => op.Forward(x, wrong))!.Message, Does.Contain("[N, 5]").And.Contain("[2, 6]"));
        using var wrongX = Tensor.Zeros(dev, 2, 1, 4, 5);
        using var y = Tensor.Zeros(dev, 2, 5);
        Assert.That(Assert.Throws<ArgumentException>(() => op.Forward(wrongX, y))!.Message, Does.Contain("[N, 1, 4, 4]"));
        Assert.Throws<ArgumentOutOfRangeException>(() => op.LogLikelihoodGradient(x, y, 0f, x));
    }

    [Test]
    public void SeededOperators_Reproduce()
    {
        var dev = TestDevices.Cpu;
        using var a = CompressedSensingOperator.Gaussian(dev, [1, 3, 3], 4, 7);
        using var b = CompressedSensingOperator.Gaussian(dev, [1, 3, 3], 4, 7);
        using var c = InpaintingOperator.RandomPixels(dev, 1, 6, 6, 0.5, 8);
        using var e = InpaintingOperator.RandomPixels(dev, 1, 6, 6, 0.5, 8);
        Assert.That(a.Matrix, Is.EqualTo(b.Matrix));
        Assert.That(c.Mask, Is.EqualTo(e.Mask));
        Assert.That(a.Matrix.Select(v => (double)v * v).Average(), Is.EqualTo(0.25).Within(0.15), "entries are N(0, 1/m) with m = 4");
    }
}

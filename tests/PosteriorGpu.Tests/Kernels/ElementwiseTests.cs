using ILGPU;
using ILGPU.Runtime;
using NUnit.Framework;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Tests.Kernels;

public class ElementwiseTests
{
    // Awkward shapes: batch 1 and several, odd sizes, one large enough to split over many CPU threads.
    private static readonly int[][] Shapes = [[1, 1, 1, 1], [1, 3, 5, 7], [3, 2, 9, 11], [2, 1, 128, 131]];

    private static IEnumerable<TestCaseData> Cases() => Shapes.Select(s => new TestCaseData((object)s).SetArgDisplayNames(Shape.Format(s)));

    [TestCaseSource(nameof(Cases))]
    public void Axpby_MatchesReference(int[] shape)
    {
        var dev = TestDevices.Cpu;
        int n = Shape.Elements(shape);
        var x = TestData.Random(n, 1);
        var y = TestData.Random(n, 2);
        using var tx = Tensor.FromHost(dev, x, shape);
        using var ty = Tensor.FromHost(dev, y, shape);
        Axpby.Run(0.7f, tx, -1.3f, ty);
        Axpby.Reference(0.7f, x, -1.3f, y);
        TestData.AssertClose(ty.ToHost(), y, 1e-6, "axpby");
    }

    [Test]
    public void Axpby_WithZeroBeta_DoesNotReadY()
    {
        // A rented buffer may hold NaN; y = a x must not become 0 * NaN = NaN.
        var x = new float[] { 1, -2, 3 };
        var y = new float[] { float.NaN, float.PositiveInfinity, 5 };
        using var tx = Tensor.FromHost(TestDevices.Cpu, x, [1, 1, 1, 3]);
        using var ty = Tensor.FromHost(TestDevices.Cpu, y, [1, 1, 1, 3]);
        Axpby.Run(2f, tx, 0f, ty);
        Axpby.Reference(2f, x, 0f, y);
        Assert.That(ty.ToHost(), Is.EqualTo(new float[] { 2, -4, 6 }));
        Assert.That(y, Is.EqualTo(new float[] { 2, -4, 6 }));
    }

    [TestCaseSource(nameof(Cases))]
    public void LangevinStep_MatchesReference(int[] shape)
    {
        var dev = TestDevices.Cpu;
        int n = Shape.Elements(shape);
        var x = TestData.Random(n, 3);
        var s = TestData.Random(n, 4);
        var g = TestData.Random(n, 5);
        var draw = new RandomDraw(17, 2, 9);
        using var tx = Tensor.FromHost(dev, x, shape);
        using var ts = Tensor.FromHost(dev, s, shape);
        using var tg = Tensor.FromHost(dev, g, shape);
        LangevinStep.Run(tx, ts, tg, 0.01f, draw);
        LangevinStep.Reference(x, s, g, 0.01f, draw);
        TestData.AssertClose(tx.ToHost(), x, 1e-5, "langevin");
    }

    [Test]
    public void LangevinStep_WithoutGradient_AndNoiseHasRightScale()
    {
        var dev = TestDevices.Cpu;
        const int n = 100_000;
        using var tx = Tensor.Zeros(dev, n);
        using var ts = Tensor.Zeros(dev, n);
        LangevinStep.Run(tx, ts, null, 0.5f, new RandomDraw(1, 0, 0));
        var x = tx.ToHost();
        double var = x.Select(v => (double)v * v).Sum() / n;
        Assert.That(var, Is.EqualTo(1.0).Within(0.02), "sqrt(2h) z with h = 1/2 has unit variance");
    }

    [Test]
    public void LangevinStep_RejectsBadStepAndShapes()
    {
        var dev = TestDevices.Cpu;
        using var a = Tensor.Zeros(dev, 2, 3);
        using var b = Tensor.Zeros(dev, 3, 2);
        var ex = Assert.Throws<ArgumentException>(() => LangevinStep.Run(a, b, null, 0.1f, default));
        Assert.That(ex!.Message, Does.Contain("[2, 3]").And.Contain("[3, 2]"));
        Assert.Throws<ArgumentOutOfRangeException>(() => LangevinStep.Run(a, a, null, -1f, default));
        Assert.Throws<ArgumentOutOfRangeException>(() => LangevinStep.Run(a, a, null, float.NaN, default));
    }

    [Test]
    public void Noise_DoesNotDependOnLaunchConfiguration()
    {
        var dev = TestDevices.Cpu;
        const int n = 10_007;
        var s = TestData.Random(n, 6);
        using var ts = Tensor.FromHost(dev, s, n);
        var vector = dev.Kernel("test-langevin-explicit", acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, QuadSplit,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, float, float, float, QuadDraw>(LangevinStep.Kernel<VectorIO>));
        var scalar = dev.Kernel("test-langevin-explicit-scalar", acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, QuadSplit,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, float, float, float, QuadDraw>(LangevinStep.Kernel<ScalarIO>));
        // Offset 0: whole quads from element 0 (16-byte aligned); offset 5: a head quad of 3 and a tail of 0..3 elements.
        foreach (long offset in new long[] { 0, 5 })
        {
            var draw = new RandomDraw(3, 1, 4, offset);
            var split = QuadSplit.For(n, draw);
            float[]? first = null;
            foreach (var plan in new[] { ElementRange.For(split.Full, cpu: true), ElementRange.For(split.Full, cpu: false),
                         ElementRange.Explicit(split.Full, 7, chunked: true), ElementRange.Explicit(split.Full, 13, chunked: false) })
                foreach (var kernel in split.Aligned(ts.View) ? new[] { vector, scalar } : new[] { scalar })
                {
                    using var tx = Tensor.Zeros(dev, n);
                    kernel(plan.Threads, plan, split, tx.View, ts.View, ts.View, 0f, 0.1f, MathF.Sqrt(0.2f), new QuadDraw(draw));
                    var r = tx.ToHost();
                    if (first is null) first = r;
                    else Assert.That(r, Is.EqualTo(first), $"bitwise equal for every plan (offset {offset})");
                }
        }
    }

    [TestCase(0.9, 0.95, 0.0)]
    [TestCase(0.3, 0.6, 1.0)]
    [TestCase(0.01, 0.2, 0.5)]
    public void DdimStep_MatchesFormula(double alphaT, double alphaPrev, double eta)
    {
        var dev = TestDevices.Cpu;
        int[] shape = [2, 3, 5, 7];
        int n = Shape.Elements(shape);
        var x = TestData.Random(n, 7);
        var eps = TestData.Random(n, 8);
        var draw = new RandomDraw(5, 0, 1);
        using var tx = Tensor.FromHost(dev, x, shape);
        using var te = Tensor.FromHost(dev, eps, shape);
        DiffusionStep.Run(tx, te, DiffusionStep.Ddim(alphaT, alphaPrev, eta), draw);
        // The formula of Song et al. written out directly, in double precision.
        double sigma = eta * Math.Sqrt((1 - alphaPrev) / (1 - alphaT) * (1 - alphaT / alphaPrev));
        var expected = new float[n];
        for (int i = 0; i < n; i++)
        {
            double x0 = (x[i] - Math.Sqrt(1 - alphaT) * eps[i]) / Math.Sqrt(alphaT);
            expected[i] = (float)(Math.Sqrt(alphaPrev) * x0 + Math.Sqrt(1 - alphaPrev - sigma * sigma) * eps[i] + sigma * draw.Normal(i));
        }
        TestData.AssertClose(tx.ToHost(), expected, 1e-5, "ddim");
    }

    [TestCase(0.9, 0.95, false)]
    [TestCase(0.3, 0.6, true)]
    public void DdpmStep_MatchesPosteriorMeanAndVariance(double alphaT, double alphaPrev, bool fixedLarge)
    {
        var dev = TestDevices.Cpu;
        int[] shape = [3, 1, 4, 5];
        int n = Shape.Elements(shape);
        var x = TestData.Random(n, 9);
        var eps = TestData.Random(n, 10);
        var draw = new RandomDraw(8, 0, 2);
        using var tx = Tensor.FromHost(dev, x, shape);
        using var te = Tensor.FromHost(dev, eps, shape);
        DiffusionStep.Run(tx, te, DiffusionStep.Ddpm(alphaT, alphaPrev, fixedLarge), draw);
        double beta = 1 - alphaT / alphaPrev;
        double variance = fixedLarge ? beta : (1 - alphaPrev) / (1 - alphaT) * beta;
        var expected = new float[n];
        for (int i = 0; i < n; i++)
        {
            double x0 = (x[i] - Math.Sqrt(1 - alphaT) * eps[i]) / Math.Sqrt(alphaT);
            double mean = Math.Sqrt(alphaPrev) * beta / (1 - alphaT) * x0 + Math.Sqrt(1 - beta) * (1 - alphaPrev) / (1 - alphaT) * x[i];
            expected[i] = (float)(mean + Math.Sqrt(variance) * draw.Normal(i));
        }
        TestData.AssertClose(tx.ToHost(), expected, 1e-5, "ddpm");
    }
}

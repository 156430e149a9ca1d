using NUnit.Framework;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Samplers.Operators;

namespace PosteriorGpu.Tests.Operators;

public class OperatorTests
{
    private static IEnumerable<TestCaseData> Batched(IEnumerable<OperatorCase> cases) =>
        from c in cases
        from n in new[] { 1, 3 }
        select new TestCaseData(c, n).SetArgDisplayNames(c.Name, $"N={n}");

    private static IEnumerable<TestCaseData> AllCases() => Batched(OperatorCases.All);
    private static IEnumerable<TestCaseData> LinearCases() => Batched(OperatorCases.Linear());

    private static double Dot(float[] a, float[] b)
    {
        Assert.That(a.Length, Is.EqualTo(b.Length));
        double s = 0;
        for (int i = 0; i < a.Length; i++) s += (double)a[i] * b[i];
        return s;
    }

    /// <summary>The one adjointness test: &lt;A x, y&gt; = &lt;x, A^T y&gt; for every linear operator.</summary>
    [TestCaseSource(nameof(LinearCases))]
    public void Adjoint_SatisfiesInnerProductIdentity(OperatorCase c, int n)
    {
        var dev = TestDevices.Cpu;
        using var op = c.Create(dev);
        var lin = (LinearOperator)op;
        var x = TestData.Random(n * op.InputLength, 31 + n);
        var y = TestData.Random(n * op.MeasurementLength, 41 + n);
        using var tx = Tensor.FromHost(dev, x, OperatorCases.Batched(n, op.InputShape));
        using var ty = Tensor.FromHost(dev, y, OperatorCases.Batched(n, op.MeasurementShape));
        using var ax = Tensor.Empty(dev, ty.Shape);
        using var aty = Tensor.Empty(dev, tx.Shape);
        lin.Forward(tx, ax);
        lin.Adjoint(ty, aty);
        double left = Dot(ax.ToHost(), y), right = Dot(x, aty.ToHost());
        double rel = Math.Abs(left - right) / (Math.Abs(left) + 1e-12);
        TestContext.Out.WriteLine($"{c.Name} N={n}: <A x, y> = {left:R}, relative gap {rel:E2}");
        Assert.That(rel, Is.LessThan(1e-5), $"{c.Name}: <A x, y> = {left:R}, <x, A^T y> = {right:R}");
        Assert.That(op.IsLinear, Is.True);
    }

    [TestCaseSource(nameof(AllCases))]
    public void Forward_MatchesReference(OperatorCase c, int n)
    {
        var dev = TestDevices.Cpu;
        using var op = c.Create(dev);
        var x = TestData.Random(n * op.InputLength, 51 + n);
        using var tx = Tensor.FromHost(dev, x, OperatorCases.Batched(n, op.InputShape));
        using var ty = Tensor.Empty(dev, OperatorCases.Batched(n, op.MeasurementShape));
        op.Forward(tx, ty);
        TestData.AssertClose(ty.ToHost(), op.ForwardReference(x), 1e-5, $"{c.Name} forward");
        Assert.That(tx.ToHost(), Is.EqualTo(x), "the input must be left unchanged");
        if (op is LinearOperator lin)
        {
            var y = TestData.Random(n * op.MeasurementLength, 61 + n);
            ty.CopyFrom(y);
            lin.Adjoint(ty, tx);
            TestData.AssertClose(tx.ToHost(), lin.AdjointReference(y), 1e-5, $"{c.Name} adjoint");
        }
    }

    [TestCaseSource(nameof(LinearCases))]
    public void LinearGradient_IsAdjointOfScaledResidual(OperatorCase c, int n)
    {
        var dev = TestDevices.Cpu;
        using var op = c.Create(dev);
        var lin = (LinearOperator)op;
        const float sigma = 0.3f;
        var x = TestData.Random(n * op.InputLength, 71 + n);
        var y = TestData.Random(n * op.MeasurementLength, 81 + n);
        using var tx = Tensor.FromHost(dev, x, OperatorCases.Batched(n, op.InputShape));
        using var ty = Tensor.FromHost(dev, y, OperatorCases.Batched(n, op.MeasurementShape));
        using var grad = Tensor.Empty(dev, tx.Shape);
        lin.LogLikelihoodGradient(tx, ty, sigma, grad);
        // A^T (y - A x) / sigma^2 composed from the operator's own forward and adjoint.
        using var ax = Tensor.Empty(dev, ty.Shape);
        lin.Forward(tx, ax);
        var r = ax.ToHost();
        for (int i = 0; i < r.Length; i++) r[i] = (y[i] - r[i]) / (sigma * sigma);
        using var tr = Tensor.FromHost(dev, r, ty.Shape);
        using var expected = Tensor.Empty(dev, tx.Shape);
        lin.Adjoint(tr, expected);
        TestData.AssertClose(grad.ToHost(), expected.ToHost(), 1e-6, $"{c.Name} gradient vs A^T(y - Ax)/sigma^2");
        TestData.AssertClose(grad.ToHost(), op.LogLikelihoodGradientReference(x, y, sigma), 1e-5, $"{c.Name} gradient vs reference");
        Assert.That(op.ScratchOutstanding, Is.EqualTo(0), "scratch returned to the pool");
    }

    [TestCaseSource(nameof(AllCases))]
    public void ShapeMismatch_NamesBothShapes(OperatorCase c, int n)
    {
        var dev = TestDevices.Cpu;
        using var op = c.Create(dev);
        using var x = Tensor.Zeros(dev, OperatorCases.Batched(n, op.InputShape));
        var badMeasurement = OperatorCases.Batched(n, op.MeasurementShape);
        badMeasurement[^1] += 1;
        using var yBad = Tensor.Zeros(dev, badMeasurement);
        var e = Assert.Throws<ArgumentException>(() => op.Forward(x, yBad))!;
        string expected = Shape.Format(OperatorCases.Batched(n, op.MeasurementShape));
        Assert.That(e.Message, Does.Contain($"operator {op.Name}").And.Contain(expected).And.Contain(Shape.Format(badMeasurement)));

        using var yWrongBatch = Tensor.Zeros(dev, OperatorCases.Batched(n + 1, op.MeasurementShape));
        Assert.That(Assert.Throws<ArgumentException>(() => op.Forward(x, yWrongBatch))!.Message, Does.Contain(expected));

        using var xFlat = Tensor.Zeros(dev, n, op.InputLength + 1);
        using var y = Tensor.Zeros(dev, OperatorCases.Batched(n, op.MeasurementShape));
        Assert.That(Assert.Throws<ArgumentException>(() => op.Forward(xFlat, y))!.Message,
            Does.Contain($"[N, {string.Join(", ", op.InputShape)}]").And.Contain(Shape.Format(xFlat.Shape)));
        Assert.That(Assert.Throws<ArgumentException>(() => op.LogLikelihoodGradient(x, yBad, 0.1f, x))!.Message, Does.Contain(expected));
        Assert.Throws<ArgumentOutOfRangeException>(() => op.LogLikelihoodGradient(x, y, 0f, x));
        if (op is LinearOperator lin)
            Assert.That(Assert.Throws<ArgumentException>(() => lin.Adjoint(yBad, x))!.Message, Does.Contain(Shape.Format(badMeasurement)));
    }

    [Test]
    public void SeededOperators_ReproduceFromTheSameSeed()
    {
        var dev = TestDevices.Cpu;
        using (var a = new CompressedSensingOperator(dev, [3, 4, 5], 20, 77))
        using (var b = new CompressedSensingOperator(dev, [3, 4, 5], 20, 77))
        using (var other = new CompressedSensingOperator(dev, [3, 4, 5], 20, 78))
        {
            Assert.That(a.Matrix, Is.EqualTo(b.Matrix));
            Assert.That(a.Matrix, Is.Not.EqualTo(other.Matrix));
            SameForward(a, b);
            // Entries N(0, 1/m): the mean square is about 1/m.
            double ms = a.Matrix.Average(v => (double)v * v);
            Assert.That(ms * 20, Is.EqualTo(1).Within(0.15));
        }
        using (var a = new OneBitOperator(dev, [2, 3, 3], 30, 0.5f, 5))
        using (var b = new OneBitOperator(dev, [2, 3, 3], 30, 0.5f, 5))
        using (var other = new OneBitOperator(dev, [2, 3, 3], 30, 0.5f, 6))
        {
            Assert.That(a.Matrix, Is.EqualTo(b.Matrix));
            Assert.That(a.Dither, Is.EqualTo(b.Dither));
            Assert.That(a.Dither, Is.Not.EqualTo(other.Dither));
            Assert.That(a.Dither.All(t => Math.Abs(t) <= 0.5f), Is.True);
            SameForward(a, b);
        }
        using (var a = InpaintingOperator.RandomPixels(dev, 3, 16, 16, 0.3, 1))
        using (var b = InpaintingOperator.RandomPixels(dev, 3, 16, 16, 0.3, 1))
        using (var other = InpaintingOperator.RandomPixels(dev, 3, 16, 16, 0.3, 2))
        {
            Assert.That(a.Mask, Is.EqualTo(b.Mask));
            Assert.That(a.Mask, Is.Not.EqualTo(other.Mask));
            Assert.That(a.ObservedFraction, Is.EqualTo(0.3).Within(0.1));
            SameForward(a, b);
        }
        using (var a = FourierSubsamplingOperator.RandomLines(dev, 1, 32, 64, 0.25, 0.08, 3))
        using (var b = FourierSubsamplingOperator.RandomLines(dev, 1, 32, 64, 0.25, 0.08, 3))
        using (var other = FourierSubsamplingOperator.RandomLines(dev, 1, 32, 64, 0.25, 0.08, 4))
        {
            Assert.That(a.Mask, Is.EqualTo(b.Mask));
            Assert.That(a.Mask, Is.Not.EqualTo(other.Mask));
            var m = a.Mask;
            // round(0.08 * 64) = 5 centre columns: frequencies -2..2 (0, 1, 2, 62, 63), whole columns.
            foreach (int l in new[] { 0, 1, 2, 62, 63 })
                Assert.That(Enumerable.Range(0, 32).All(k => m[k * 64 + l] == 1f), Is.True, $"centre column {l} sampled");
            for (int l = 0; l < 64; l++)
                Assert.That(Enumerable.Range(0, 32).Select(k => m[k * 64 + l]).Distinct().Count(), Is.EqualTo(1), "whole lines");
            Assert.That(a.SampledFraction, Is.EqualTo(0.25).Within(0.12));
            SameForward(a, b);
        }
        using (var a = new PhaseRetrievalOperator(dev, 1, 4, 4, 2, PhaseMaskKind.UniformPhase, 8))
        using (var b = new PhaseRetrievalOperator(dev, 1, 4, 4, 2, PhaseMaskKind.UniformPhase, 8))
        using (var signs = new PhaseRetrievalOperator(dev, 1, 4, 4, 2, PhaseMaskKind.RandomSigns, 8))
        {
            Assert.That(a.Modulation, Is.EqualTo(b.Modulation));
            var s = signs.Modulation;
            for (int i = 0; i < s.Length / 2; i++)
            {
                Assert.That(Math.Abs(s[2 * i]), Is.EqualTo(1f));
                Assert.That(s[2 * i + 1], Is.EqualTo(0f));
            }
            SameForward(a, b);
        }
    }

    private static void SameForward(ForwardOperator a, ForwardOperator b)
    {
        var dev = a.Device;
        var x = TestData.Random(2 * a.InputLength, 90);
        using var tx = Tensor.FromHost(dev, x, OperatorCases.Batched(2, a.InputShape));
        using var ya = Tensor.Empty(dev, OperatorCases.Batched(2, a.MeasurementShape));
        using var yb = Tensor.Empty(dev, ya.Shape);
        a.Forward(tx, ya);
        b.Forward(tx, yb);
        Assert.That(ya.ToHost(), Is.EqualTo(yb.ToHost()), $"{a.Name}: same seed, same measurement");
    }

    [Test]
    public void Presets_MakeTheDocumentedMasks()
    {
        var dev = TestDevices.Cpu;
        using var box = InpaintingOperator.Box(dev, 1, 4, 5, 1, 2, 2, 10);
        Assert.That(box.Mask, Is.EqualTo(new float[]
        {
            1, 1, 1, 1, 1,
            1, 1, 0, 0, 0,
            1, 1, 0, 0, 0,
            1, 1, 1, 1, 1,
        }));
        using var left = InpaintingOperator.HalfImage(dev, 1, 2, 5, ImageHalf.Left);
        Assert.That(left.Mask, Is.EqualTo(new float[] { 1, 1, 0, 0, 0, 1, 1, 0, 0, 0 }));
        using var bottom = InpaintingOperator.HalfImage(dev, 1, 3, 2, ImageHalf.Bottom);
        Assert.That(bottom.Mask, Is.EqualTo(new float[] { 0, 0, 1, 1, 1, 1 }));
        var g = BlurOperator.GaussianFilter(5, 1.5f);
        Assert.That(g.Sum(), Is.EqualTo(1f).Within(1e-6));
        Assert.That(g[12], Is.EqualTo(g.Max()));
        Assert.That(g[0], Is.EqualTo(g[24]).And.EqualTo(g[4]));
        Assert.Throws<ArgumentException>(() => new SuperResolutionOperator(dev, 1, 6, 8, 4));
        Assert.Throws<ArgumentException>(() => new FourierSubsamplingOperator(dev, 1, 6, 8, new float[48]));
        Assert.Throws<ArgumentException>(() => new PhaseRetrievalOperator(dev, 1, 6, 8, 2, PhaseMaskKind.RandomSigns, 1));
        Assert.Throws<ArgumentException>(() => new BlurOperator(dev, 1, 6, 8, new float[4], 2, 2, BlurBoundary.Zero));
        Assert.That(Assert.Throws<ArgumentException>(() => new CompressedSensingOperator(dev, [2, 3], 4, new float[5]))!.Message,
            Does.Contain("4 x 6"));
    }

    [Test]
    public void AddGaussianNoise_MatchesReference()
    {
        var dev = TestDevices.Cpu;
        var y = TestData.Random(3 * 1001, 3);
        var draw = new RandomDraw(12, 3, 4);
        using var ty = Tensor.FromHost(dev, y, 3, 1001);
        Measurements.AddGaussianNoise(ty, 0.25f, draw);
        var expected = (float[])y.Clone();
        Measurements.AddGaussianNoiseReference(expected, 0.25f, draw);
        TestData.AssertClose(ty.ToHost(), expected, 1e-6, "measurement noise");
        double ms = 0;
        var got = ty.ToHost();
        for (int i = 0; i < y.Length; i++) ms += (got[i] - y[i]) * (double)(got[i] - y[i]);
        Assert.That(Math.Sqrt(ms / y.Length), Is.EqualTo(0.25).Within(0.02));
        Assert.Throws<ArgumentOutOfRangeException>(() => Measurements.AddGaussianNoise(ty, -1f, draw));
    }
}

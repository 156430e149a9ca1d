using NUnit.Framework;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Samplers.Operators;

namespace PosteriorGpu.Tests.Operators;

/// <summary>What every operator owns besides A: simulating a noisy measurement, the discrepancy of a sample against
/// it, and a preview of it as images; and the defaults an operator of your own gets.</summary>
public class OperatorTaskTests
{
    private static IEnumerable<TestCaseData> AllCases() =>
        from c in OperatorCases.All
        from n in new[] { 1, 3 }
        select new TestCaseData(c, n).SetArgDisplayNames(c.Name, $"N={n}");

    private static readonly RandomDraw Draw = new(21, 5, 2);

    [TestCaseSource(nameof(AllCases))]
    public void Simulate_AddsNoiseAfterTheOperator_OneBitBeforeItsQuantizer(OperatorCase c, int n)
    {
        var dev = TestDevices.Cpu;
        using var op = c.Create(dev);
        const float sigma = 0.3f;
        var x = TestData.Random(n * op.InputLength, 11 + n);
        using var tx = Tensor.FromHost(dev, x, OperatorCases.Batched(n, op.InputShape));
        using var ty = Tensor.Empty(dev, OperatorCases.Batched(n, op.MeasurementShape));
        // Through the interface, as a sampler or the CLI calls it: the override must be the one that runs.
        ((IForwardOperator)op).Simulate(tx, sigma, Draw, ty);
        var got = ty.ToHost();
        if (op is OneBitOperator oneBit)
        {
            Assert.That(got, Is.EqualTo(oneBit.SimulateReference(x, sigma, Draw)), "one-bit: sign(A x + tau + sigma z)");
            Assert.That(got.All(v => v is 1f or -1f), Is.True, "one-bit measurements are signs");
        }
        else
        {
            var expected = op.ForwardReference(x);
            Measurements.AddGaussianNoiseReference(expected, sigma, Draw);
            TestData.AssertClose(got, expected, 1e-5, $"{c.Name}: A(x) + sigma z");
        }
        // sigma = 0 is the noise-free forward map for every operator.
        ((IForwardOperator)op).Simulate(tx, 0f, Draw, ty);
        TestData.AssertClose(ty.ToHost(), op.ForwardReference(x), 1e-5, $"{c.Name}: sigma 0");
        Assert.Throws<ArgumentOutOfRangeException>(() => op.Simulate(tx, -0.1f, Draw, ty));
        Assert.Throws<ArgumentOutOfRangeException>(() => op.Simulate(tx, float.NaN, Draw, ty));
        using var wrong = Tensor.Empty(dev, OperatorCases.Batched(n + 1, op.MeasurementShape));
        Assert.That(Assert.Throws<ArgumentException>(() => op.Simulate(tx, sigma, Draw, wrong))!.Message, Does.Contain($"operator {op.Name}"));
    }

    [TestCaseSource(nameof(AllCases))]
    public void Discrepancy_IsTheResidualOverSigma_OrTheSignAgreement(OperatorCase c, int n)
    {
        var dev = TestDevices.Cpu;
        using var op = c.Create(dev);
        const float sigma = 0.05f;
        var truth = TestData.Random(n * op.InputLength, 13 + n);
        var other = TestData.Random(n * op.InputLength, 14 + n);
        using var tTruth = Tensor.FromHost(dev, truth, OperatorCases.Batched(n, op.InputShape));
        using var tOther = Tensor.FromHost(dev, other, tTruth.Shape);
        using var y = Tensor.Empty(dev, OperatorCases.Batched(n, op.MeasurementShape));
        op.Simulate(tTruth, sigma, Draw, y);
        var d = op.Discrepancy;
        bool signs = op is OneBitOperator;
        Assert.That(d, Is.SameAs(signs ? MeasurementDiscrepancy.SignAgreement : MeasurementDiscrepancy.ResidualOverSigma));
        Assert.That(((IForwardOperator)op).Discrepancy, Is.SameAs(d));

        var ofTruth = d.Evaluate(op, tTruth, y, sigma);
        var ofOther = d.Evaluate(op, tOther, y, sigma);
        Assert.That(ofTruth, Has.Length.EqualTo(n));
        var yHost = y.ToHost();
        int m = op.MeasurementLength;
        foreach (var (x, values) in new[] { (truth, ofTruth), (other, ofOther) })
        {
            var ax = op.ForwardReference(x);
            for (int i = 0; i < n; i++)
            {
                double expected = 0;
                for (int j = 0; j < m; j++)
                {
                    double r = ax[i * m + j] - yHost[i * m + j];
                    expected += signs ? (r == 0 ? 1.0 / m : 0) : r * r;
                }
                if (!signs) expected = Math.Sqrt(expected) / sigma;
                Assert.That(values[i], Is.EqualTo(expected).Within(1e-4 * Math.Max(1, expected)), $"{c.Name} item {i}");
            }
        }
        for (int i = 0; i < n; i++)
        {
            if (signs)
            {
                // Noise flips only the bits whose A x + tau lies within a few sigma of 0.
                Assert.That(ofTruth[i], Is.GreaterThan(0.8).And.GreaterThan(ofOther[i]), $"{c.Name}: the truth reproduces most signs");
            }
            else
            {
                // ||sigma z|| / sigma is chi with m degrees of freedom: sqrt(m) within a few tenths times 3.
                Assert.That(ofTruth[i], Is.EqualTo(Math.Sqrt(m)).Within(3), $"{c.Name}: the truth's residual is the noise's");
                Assert.That(ofOther[i], Is.GreaterThan(ofTruth[i]), $"{c.Name}: another x fits y worse");
            }
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => d.Evaluate(op, tTruth, y, 0));
    }

    [TestCaseSource(nameof(AllCases))]
    public void Preview_ShowsTheMeasurementAsImagesOfTheInputShape(OperatorCase c, int n)
    {
        var dev = TestDevices.Cpu;
        using var op = c.Create(dev);
        var yValues = TestData.Random(n * op.MeasurementLength, 17 + n);
        if (op is OneBitOperator) yValues = yValues.Select(v => v >= 0 ? 1f : -1f).ToArray();
        if (op is PhaseRetrievalOperator) yValues = yValues.Select(Math.Abs).ToArray();
        using var y = Tensor.FromHost(dev, yValues, OperatorCases.Batched(n, op.MeasurementShape));
        var preview = ((IForwardOperator)op).Preview(y);
        Assert.That(preview, Has.Length.EqualTo(n * op.InputLength));
        Assert.That(preview.All(float.IsFinite), Is.True);
        int d = op.InputLength;
        float[] Stretched(float[] v)
        {
            var s = (float[])v.Clone();
            MeasurementPreview.Stretch(s, n);
            return s;
        }
        switch (op)
        {
            case IdentityOperator or BlurOperator:
                Assert.That(preview, Is.EqualTo(yValues), "y itself");
                break;
            case InpaintingOperator or FourierSubsamplingOperator:
                TestData.AssertClose(preview, ((LinearOperator)op).AdjointReference(yValues), 1e-5, "A^T y, unstretched");
                break;
            case CompressedSensingOperator cs:
                TestData.AssertClose(preview, Stretched(cs.AdjointReference(yValues)), 1e-5, "A^T y stretched");
                break;
            case SuperResolutionOperator sr:
                // Pixel repetition: the adjoint spreads y / f^2 over each block.
                var spread = sr.AdjointReference(yValues).Select(v => v * sr.Factor * sr.Factor).ToArray();
                TestData.AssertClose(preview, spread, 1e-5, "y repeated over f x f blocks");
                break;
            case OneBitOperator ob:
                var back = new float[n * d];
                var a = ob.Matrix;
                for (int k = 0; k < n; k++)
                    for (int r = 0; r < ob.Rows; r++)
                        for (int i = 0; i < d; i++) back[k * d + i] += a[r * d + i] * yValues[k * ob.Rows + r];
                TestData.AssertClose(preview, Stretched(back), 1e-5, "A^T y of the signs, stretched");
                break;
            case PhaseRetrievalOperator:
                // A log spectrum stretched per image: it spans [-1, 1] and depends only on |y|.
                for (int k = 0; k < n; k++)
                {
                    var img = preview.AsSpan(k * d, d).ToArray();
                    Assert.That(img.Min(), Is.EqualTo(-1f).Within(1e-6));
                    Assert.That(img.Max(), Is.EqualTo(1f).Within(1e-6));
                }
                y.CopyFrom(yValues.Select(v => -v).ToArray());
                Assert.That(op.Preview(y), Is.EqualTo(preview), "a function of |y|");
                break;
            default:
                Assert.Fail($"{c.Name}: no expectation for {op.GetType().Name}");
                break;
        }
        using var wrong = Tensor.Empty(dev, n, op.MeasurementLength + 1);
        Assert.That(Assert.Throws<ArgumentException>(() => op.Preview(wrong))!.Message, Does.Contain($"operator {op.Name}"));
    }

    [Test]
    public void Stretch_MapsEachImageOntoMinusOneToOne()
    {
        var images = new float[] { 0, 1, 2, 3, 5, 5, 5, 5 };
        MeasurementPreview.Stretch(images, 2);
        Assert.That(images, Is.EqualTo(new float[] { -1, -1f / 3, 1f / 3, 1, 0, 0, 0, 0 }).Within(1e-6));
        Assert.Throws<ArgumentException>(() => MeasurementPreview.Stretch(new float[5], 2));
    }

    /// <summary>y = x^2 elementwise on the host, implemented on the interface alone, as a user might.</summary>
    private sealed class Square(GpuDevice device, int d) : IForwardOperator
    {
        public string Name => "square";
        public int[] InputShape => [d];
        public int[] MeasurementShape => [d];
        public bool IsLinear => false;

        public void Forward(Tensor x, Tensor y) => y.CopyFrom(x.ToHost().Select(v => v * v).ToArray());

        public void LogLikelihoodGradient(Tensor x, Tensor y, float sigma, Tensor grad)
        {
            var xh = x.ToHost();
            var yh = y.ToHost();
            grad.CopyFrom(xh.Select((v, i) => 2 * v * (yh[i] - v * v) / (sigma * sigma)).ToArray());
        }

        public GpuDevice Device => device;
    }

    /// <summary>A^T y = the column sums of a fixed 2 x 3 matrix, through HostLinearOperator.</summary>
    private sealed class TwoByThree(GpuDevice device) : HostLinearOperator(device, "two-by-three", [3], [2])
    {
        private static readonly float[] A = [1, 2, 0, -1, 0, 3];

        protected override void ForwardItem(ReadOnlySpan<float> x, Span<float> y)
        {
            for (int r = 0; r < 2; r++) y[r] = A[3 * r] * x[0] + A[3 * r + 1] * x[1] + A[3 * r + 2] * x[2];
        }

        protected override void AdjointItem(ReadOnlySpan<float> y, Span<float> x)
        {
            for (int j = 0; j < 3; j++) x[j] = A[j] * y[0] + A[3 + j] * y[1];
        }
    }

    [Test]
    public void UserOperators_GetTheDefaults()
    {
        var dev = TestDevices.Cpu;
        IForwardOperator square = new Square(dev, 4);
        var x = new float[] { 1, -2, 0.5f, 3, 0, 1, -1, 2 };
        using var tx = Tensor.FromHost(dev, x, 2, 4);
        using var y = Tensor.Empty(dev, 2, 4);
        square.Simulate(tx, 0.1f, Draw, y);
        var expected = x.Select(v => v * v).ToArray();
        Measurements.AddGaussianNoiseReference(expected, 0.1f, Draw);
        TestData.AssertClose(y.ToHost(), expected, 1e-6, "default simulate: A(x) + sigma z");
        Assert.That(square.Discrepancy, Is.SameAs(MeasurementDiscrepancy.ResidualOverSigma));
        var r = square.Discrepancy.Evaluate(square, tx, y, 0.1);
        Assert.That(r[0], Is.GreaterThan(0).And.LessThan(6));
        Assert.That(square.Preview(y), Is.EqualTo(new float[8]), "a nonlinear operator without a preview shows mid grey");
        Assert.Throws<ArgumentOutOfRangeException>(() => square.Simulate(tx, -1f, Draw, y));

        using var lin = new TwoByThree(dev);
        using var ly = Tensor.FromHost(dev, [1f, 1f], 1, 2);
        // A^T [1, 1] = [0, 2, 3], stretched: [-1, 1/3, 1].
        Assert.That(lin.Preview(ly), Is.EqualTo(new[] { -1f, 1f / 3, 1f }).Within(1e-6), "a linear operator shows A^T y stretched");
        Assert.That(lin.Discrepancy, Is.SameAs(MeasurementDiscrepancy.ResidualOverSigma));
    }
}

using NUnit.Framework;
using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Reductions;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Tests.Kernels;

/// <summary>The per-item dynamic threshold and the clipped DDPM/DDIM step against their plain references.</summary>
public class DynamicThresholdTests
{
    // Awkward shapes: one value, batch 1 and several, odd sizes, one item longer than a CPU chunk.
    private static readonly int[][] Shapes = [[1, 1, 1, 1], [1, 1, 1, 2], [3, 1, 1, 7], [2, 3, 5, 7], [1, 2, 37, 61]];
    private static readonly float[] Ratios = [0.995f, 0.5f, 0f, 1f, 0.9f];

    private static IEnumerable<TestCaseData> Cases() =>
        from s in Shapes from q in Ratios select new TestCaseData(s, q).SetArgDisplayNames(Shape.Format(s), q.ToString("R"));

    // x0 = (x - 0.6 eps) / 0.8 spans about [-6, 6], so thresholds land between 1 and the cap.
    private const float SqrtAlpha = 0.8f, SqrtOneMinusAlpha = 0.6f;

    private static float[] Thresholds(float[] x, float[] eps, int[] shape, float ratio, float max)
    {
        var dev = TestDevices.Cpu;
        using var tx = Tensor.FromHost(dev, x, shape);
        using var te = Tensor.FromHost(dev, eps, shape);
        using var hist = Tensor.Zeros(dev, shape[0] * DynamicThreshold.Bins);
        using var s = Tensor.Zeros(dev, shape[0]);
        DynamicThreshold.Run(tx, te, SqrtAlpha, SqrtOneMinusAlpha, ratio, max, hist, s);
        return s.ToHost();
    }

    [TestCaseSource(nameof(Cases))]
    public void Kernel_MatchesReference(int[] shape, float ratio)
    {
        int n = Shape.Elements(shape);
        var x = TestData.Random(n, 1, 3f);
        var eps = TestData.Random(n, 2, 3f);
        var expected = new float[shape[0]];
        DynamicThreshold.Reference(x, eps, SqrtAlpha, SqrtOneMinusAlpha, ratio, 4.5f, expected);
        Assert.That(Thresholds(x, eps, shape, ratio, 4.5f), Is.EqualTo(expected), "same float operations: bit for bit");
    }

    [Test]
    public void Kernel_HandlesTiesZerosInfinityAndNaNPerItem()
    {
        // Item 0: many ties and zeros (quantised values); item 1: an infinity; item 2: a NaN (only its threshold is NaN).
        int len = 41;
        var x = new float[3 * len];
        var eps = new float[3 * len];
        for (int i = 0; i < len; i++) x[i] = 0.8f * (i % 4) * 0.75f;
        for (int i = 0; i < len; i++) x[len + i] = 0.8f * (i - 20) / 4f;
        x[len + 7] = float.NegativeInfinity;
        for (int i = 0; i < len; i++) x[2 * len + i] = i;
        x[2 * len + 3] = float.NaN;
        foreach (float q in new[] { 0.995f, 0.97f, 0.5f })
        {
            var expected = new float[3];
            DynamicThreshold.Reference(x, eps, SqrtAlpha, SqrtOneMinusAlpha, q, 10f, expected);
            var got = Thresholds(x, eps, [3, 1, 1, len], q, 10f);
            Assert.That(got, Is.EqualTo(expected), $"q = {q}");
            // (Item 1's interpolation towards the infinity is NaN when the weight is >= 0.5, as torch.lerp's formula gives.)
            Assert.That(float.IsNaN(got[2]) && float.IsFinite(got[0]));
        }
    }

    [Test]
    public void Quantile_IsTorchsLinearInterpolation()
    {
        // torch.quantile(tensor([4., 1., 3., 2.]), q): rank q * 3, linear between neighbours.
        Assert.That(DynamicThreshold.Quantile(new float[] { 4, 1, 3, 2 }, 0.5f), Is.EqualTo(2.5f));
        Assert.That(DynamicThreshold.Quantile(new float[] { 4, 1, 3, 2 }, 1f), Is.EqualTo(4f));
        Assert.That(DynamicThreshold.Quantile(new float[] { 4, 1, 3, 2 }, 0f), Is.EqualTo(1f));
        Assert.That(DynamicThreshold.Quantile(new float[] { 10, 0 }, 0.25f), Is.EqualTo(2.5f));
        Assert.That(DynamicThreshold.Quantile(new float[] { 10, 0 }, 0.75f), Is.EqualTo(7.5f));
        Assert.That(float.IsNaN(DynamicThreshold.Quantile(new float[] { 1, float.NaN, 2 }, 0.5f)));
        // Against a double-precision definition on random data.
        var v = TestData.Random(1001, 5, 2f);
        var sorted = v.Select(a => (double)a).Order().ToArray();
        double rank = 0.995 * 1000;
        double want = sorted[(int)rank] + (rank - (int)rank) * (sorted[(int)rank + 1] - sorted[(int)rank]);
        Assert.That(DynamicThreshold.Quantile(v, 0.995f), Is.EqualTo(want).Within(1e-5));
    }

    [Test]
    public void Reference_ClampsToOneAndTheCap()
    {
        var x = new float[] { 0.1f, -0.2f, 0.3f, 8f, -9f, 7f };   // items of 3: |x0| small, then large
        var s = new float[2];
        DynamicThreshold.Reference(x, new float[6], 1f, 0f, 0.5f, 2.5f, s);
        Assert.That(s, Is.EqualTo(new[] { 1f, 2.5f }));
        // sample_max_value below 1: torch.clamp's max wins.
        DynamicThreshold.Reference(x, new float[6], 1f, 0f, 0.5f, 0.75f, s);
        Assert.That(s, Is.EqualTo(new[] { 0.75f, 0.75f }));
    }

    private static IEnumerable<TestCaseData> StepCases() =>
        from s in Shapes from mode in new[] { "clip", "threshold" } from sigma in new[] { 0f, 0.3f }
        select new TestCaseData(s, mode, sigma).SetArgDisplayNames(Shape.Format(s), mode, sigma.ToString("R"));

    [TestCaseSource(nameof(StepCases))]
    public void ClippedStep_MatchesReference(int[] shape, string mode, float sigma)
    {
        var dev = TestDevices.Cpu;
        int n = Shape.Elements(shape);
        var x = TestData.Random(n, 3, 3f);
        var eps = TestData.Random(n, 4, 3f);
        var c = new ClippedDiffusionStep.Coefficients(SqrtAlpha, SqrtOneMinusAlpha, 0.7f, 0.2f, -0.4f, sigma);
        var draw = new RandomDraw(9, 1, 2).ForBatch(5, n / shape[0]);
        var thresholds = mode == "clip" ? [] : TestData.Random(shape[0], 6).Select(v => 1 + Math.Abs(v)).ToArray();
        using var tx = Tensor.FromHost(dev, x, shape);
        using var te = Tensor.FromHost(dev, eps, shape);
        using var ts = mode == "clip" ? null : Tensor.FromHost(dev, thresholds, shape[0]);
        ClippedDiffusionStep.Run(tx, te, c, 1.5f, ts, draw);
        ClippedDiffusionStep.Reference(x, eps, c, 1.5f, thresholds, draw);
        Assert.That(tx.ToHost(), Is.EqualTo(x));
    }

    private static IEnumerable<TestCaseData> EpsilonCases() =>
        from s in Shapes from mode in new[] { "clip", "threshold" } select new TestCaseData(s, mode).SetArgDisplayNames(Shape.Format(s), mode);

    [TestCaseSource(nameof(EpsilonCases))]
    public void ClippedEpsilon_MatchesReference_AndGivesBackTheClippedX0(int[] shape, string mode)
    {
        var dev = TestDevices.Cpu;
        int n = Shape.Elements(shape);
        var x = TestData.Random(n, 3, 3f);
        var eps = TestData.Random(n, 4, 3f);
        var thresholds = mode == "clip" ? [] : TestData.Random(shape[0], 6).Select(v => 1 + Math.Abs(v)).ToArray();
        using var tx = Tensor.FromHost(dev, x, shape);
        using var te = Tensor.FromHost(dev, eps, shape);
        using var ts = mode == "clip" ? null : Tensor.FromHost(dev, thresholds, shape[0]);
        ClippedEpsilon.Run(tx, te, SqrtAlpha, SqrtOneMinusAlpha, 1.5f, ts);
        var expected = (float[])eps.Clone();
        ClippedEpsilon.Reference(x, expected, SqrtAlpha, SqrtOneMinusAlpha, 1.5f, thresholds);
        var got = te.ToHost();
        Assert.That(got, Is.EqualTo(expected));
        int len = n / shape[0];
        for (int i = 0; i < n; i++)
        {
            float x0 = DynamicThreshold.PredictX0(x[i], eps[i], SqrtAlpha, SqrtOneMinusAlpha);
            float want = mode == "clip" ? Math.Clamp(x0, -1.5f, 1.5f) : Math.Clamp(x0, -thresholds[i / len], thresholds[i / len]) / thresholds[i / len];
            Assert.That(DynamicThreshold.PredictX0(x[i], got[i], SqrtAlpha, SqrtOneMinusAlpha), Is.EqualTo(want).Within(1e-5), $"x0 read back at {i}");
        }
    }

    [Test]
    public void ClippedStep_ClampsThenDivides()
    {
        // x0 = x (sqrt(a) = 1, eps = 0), x' = x0': clip to +-1.5, or threshold s = 2 per item (clamp to +-2, divide by 2).
        var x = new float[] { -3f, -1f, 0.5f, 1.75f, 4f, float.NaN };
        var c = new ClippedDiffusionStep.Coefficients(1f, 0f, 1f, 0f, 0f, 0f);
        var clipped = (float[])x.Clone();
        ClippedDiffusionStep.Reference(clipped, new float[6], c, 1.5f, [], default);
        Assert.That(clipped[..5], Is.EqualTo(new[] { -1.5f, -1f, 0.5f, 1.5f, 1.5f }));
        Assert.That(float.IsNaN(clipped[5]), "a NaN is not clamped away");
        var thresholded = (float[])x.Clone();
        ClippedDiffusionStep.Reference(thresholded, new float[6], c, 1.5f, [2f, 4f], default);
        Assert.That(thresholded[..5], Is.EqualTo(new[] { -1f, -0.5f, 0.25f, 1.75f / 4, 1f }));
    }

    [Test]
    public void ClampSymmetric_IsTheTwoSidedClampBitForBit()
    {
        // Every bound the steps use is positive (or NaN from a NaN quantile); zero and infinity are edge cases.
        float[] bounds = [0f, 1e-40f, 1f, 1.5f, 2.75f, 1e30f, float.PositiveInfinity, float.NaN];
        var values = new List<float> { 0f, -0f, 1e-45f, -1e-45f, float.PositiveInfinity, float.NegativeInfinity, float.NaN, -float.NaN };
        values.AddRange(bounds.SelectMany(b => new[] { b, -b, BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(b) + 1) }));
        values.AddRange(TestData.Random(200, 31, 5f));
        foreach (float s in bounds)
            foreach (float v in values)
                Assert.That(BitConverter.SingleToInt32Bits(DynamicThreshold.ClampSymmetric(v, s)),
                    Is.EqualTo(BitConverter.SingleToInt32Bits(DynamicThreshold.Clamp(v, -s, s))), $"clamp({v}, -{s}, {s})");
    }

    [Test]
    public void Run_RejectsWrongShapes()
    {
        var dev = TestDevices.Cpu;
        using var x = Tensor.Zeros(dev, 2, 1, 2, 3);
        using var e = Tensor.Zeros(dev, 2, 1, 2, 3);
        using var hist = Tensor.Zeros(dev, 2 * DynamicThreshold.Bins);
        using var s = Tensor.Zeros(dev, 3);
        Assert.Throws<ArgumentException>(() => DynamicThreshold.Run(x, e, 1, 0, 0.9f, 1, hist, s));
        using var s2 = Tensor.Zeros(dev, 2);
        Assert.Throws<ArgumentOutOfRangeException>(() => DynamicThreshold.Run(x, e, 1, 0, 1.5f, 1, hist, s2));
        Assert.Throws<ArgumentException>(() => ClippedDiffusionStep.Run(x, e, default, 1, s, default));
        Assert.Throws<ArgumentOutOfRangeException>(() => ClippedDiffusionStep.Run(x, e, default, 0f, null, default));
        Assert.Throws<ArgumentOutOfRangeException>(() => ClippedEpsilon.Run(x, e, 1f, 0.5f, float.NaN, null));
    }
}

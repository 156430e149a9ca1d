using NUnit.Framework;
using PosteriorGpu.Kernels.Operators;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Samplers.Operators;

namespace PosteriorGpu.Tests.Operators;

/// <summary>The nonlinear operators' log-likelihood gradients: against their references and against
/// central finite differences of the double-precision log-likelihood along random directions.</summary>
public class NonlinearGradientTests
{
    private static IEnumerable<TestCaseData> Cases() =>
        from n in new[] { 1, 3 }
        from name in new[] { "phase-retrieval-signs", "phase-retrieval-phases", "one-bit" }
        select new TestCaseData(name, n).SetArgDisplayNames(name, $"N={n}");

    private static double[] LogLikelihood(ForwardOperator op, double[] x, float[] y, double sigma) => op switch
    {
        PhaseRetrievalOperator pr => pr.LogLikelihoodReference(x, y, sigma),
        OneBitOperator ob => ob.LogLikelihoodReference(x, y, sigma),
        _ => throw new ArgumentException(op.Name),
    };

    /// <summary>A measurement of x_true through the operator's noise model.</summary>
    private static float[] Measure(ForwardOperator op, float[] xTrue, int n, float sigma)
    {
        var dev = op.Device;
        using var tx = Tensor.FromHost(dev, xTrue, OperatorCases.Batched(n, op.InputShape));
        using var ty = Tensor.Empty(dev, OperatorCases.Batched(n, op.MeasurementShape));
        op.Simulate(tx, sigma, new RandomDraw(99, 1, 0), ty);
        return ty.ToHost();
    }

    [TestCaseSource(nameof(Cases))]
    public void Gradient_MatchesReferenceAndFiniteDifferences(string name, int n)
    {
        var dev = TestDevices.Cpu;
        using var op = OperatorCases.All.Single(c => c.Name == name).Create(dev);
        float sigma = op is OneBitOperator ? 0.3f : 0.2f;
        var xTrue = TestData.Random(n * op.InputLength, 5 + n);
        var x = TestData.Random(n * op.InputLength, 6 + n);
        var y = Measure(op, xTrue, n, sigma);

        using var tx = Tensor.FromHost(dev, x, OperatorCases.Batched(n, op.InputShape));
        using var ty = Tensor.FromHost(dev, y, OperatorCases.Batched(n, op.MeasurementShape));
        using var grad = Tensor.Empty(dev, tx.Shape);
        op.LogLikelihoodGradient(tx, ty, sigma, grad);
        var g = grad.ToHost();
        Assert.That(g.All(float.IsFinite), Is.True);
        TestData.AssertClose(g, op.LogLikelihoodGradientReference(x, y, sigma), 1e-5, $"{name} gradient vs reference");
        Assert.That(op.ScratchOutstanding, Is.EqualTo(0));

        // Central differences of the double log-likelihood, summed over items, along 3 random directions.
        var rng = new Random(17 + n);
        const double h = 1e-4;
        for (int dir = 0; dir < 3; dir++)
        {
            var v = Enumerable.Range(0, x.Length).Select(_ => rng.NextDouble() * 2 - 1).ToArray();
            var plus = x.Select((xi, i) => xi + h * v[i]).ToArray();
            var minus = x.Select((xi, i) => xi - h * v[i]).ToArray();
            double fd = (LogLikelihood(op, plus, y, sigma).Sum() - LogLikelihood(op, minus, y, sigma).Sum()) / (2 * h);
            double analytic = 0;
            for (int i = 0; i < x.Length; i++) analytic += g[i] * v[i];
            double rel = Math.Abs(analytic - fd) / Math.Abs(fd);
            TestContext.Out.WriteLine($"{name} N={n} direction {dir}: relative error {rel:E2}");
            Assert.That(rel, Is.LessThan(1e-3), $"{name} direction {dir}: <grad, v> = {analytic:R}, finite difference {fd:R}");
        }
    }

    [Test]
    public void PhaseRetrieval_ForwardIsMagnitudeOfFourierTransform()
    {
        // Independent of the operator's references: |B x| from the double log-likelihood with y = 0
        // gives -||B x||^2 / (2 sigma^2), and Parseval with a unit-modulus modulation gives ||B x|| = ||x||.
        var dev = TestDevices.Cpu;
        using var op = new PhaseRetrievalOperator(dev, 2, 4, 8, 2, PhaseMaskKind.UniformPhase, 1);
        var x = TestData.Random(2 * 4 * 8, 2);
        using var tx = Tensor.FromHost(dev, x, 1, 2, 4, 8);
        using var ty = Tensor.Empty(dev, 1, 2, 8, 16);
        op.Forward(tx, ty);
        double normY = ty.ToHost().Sum(v => (double)v * v), normX = x.Sum(v => (double)v * v);
        Assert.That(normY, Is.EqualTo(normX).Within(1e-5 * normX));
        double ll = op.LogLikelihoodReference(x.Select(v => (double)v).ToArray(), new float[ty.Length], 1.0)[0];
        Assert.That(-2 * ll, Is.EqualTo(normX).Within(1e-7 * normX));   // the modulation is unit-modulus to float rounding
    }

    [Test]
    public void ProbitLogCdf_IsAccurateEverywhere()
    {
        // The kernel's log Phi against MathNet's erfc (and the continued fraction below u = -30): the erfcx fit's
        // fractional error (1.2e-7) becomes an absolute error of the log, however negative u is.
        double worst = 0, worstAt = 0;
        for (double u = -3000; u <= 40; u += u < -50 ? 7.3 : 0.0173)
        {
            double got = ProbitLogCdf.LogCdf(u), expected = Probit.LogCdfReference(u);
            Assert.That(double.IsFinite(got) && got <= 0, Is.True, $"log Phi({u}) = {got}");
            double err = Math.Abs(got - expected);
            if (err > worst) (worst, worstAt) = (err, u);
        }
        TestContext.Out.WriteLine($"log Phi(u): worst absolute error {worst:E2} at u = {worstAt}");
        Assert.That(worst, Is.LessThan(2e-7), $"largest absolute error of log Phi(u) (at u = {worstAt})");
        // Where Phi(u) rounds to 1 in double, log Phi(u) ~ -phi(u) / u is tiny but not lost (no 1 - Phi cancellation).
        // (log(1 - q) = -q to double precision for q = 1 - Phi(8) = erfc(8 / sqrt 2) / 2 = 6.2e-16.)
        double q = 0.5 * MathNet.Numerics.SpecialFunctions.Erfc(8 / Math.Sqrt(2));
        Assert.That(ProbitLogCdf.LogCdf(8), Is.EqualTo(-q).Within(1e-6 * q));
        Assert.That(ProbitLogCdf.LogCdf(0), Is.EqualTo(Math.Log(0.5)).Within(2e-7));
    }

    [TestCase(1, 0.5f)]
    [TestCase(3, 0.05f)]
    public void OneBitLogLikelihood_OnTheDevice_MatchesTheDoubleReference(int n, float sigma)
    {
        var dev = TestDevices.Cpu;
        using var op = new OneBitOperator(dev, [1, 6, 5], 97, 0.5f, 7);
        var x = TestData.Random(n * 30, 21);
        using var tx = Tensor.FromHost(dev, x, n, 1, 6, 5);
        using var ty = Tensor.Zeros(dev, n, 97);
        op.Simulate(tx, sigma, new RandomDraw(3, 1, 0), ty);
        // Evaluate at a point other than the truth, so that many signs disagree (terms far below 0).
        var x2 = TestData.Random(n * 30, 22);
        using var tx2 = Tensor.FromHost(dev, x2, n, 1, 6, 5);
        using var ll = Tensor.Zeros(dev, n);
        op.LogLikelihood(tx2, ty, sigma, ll);
        var expected = op.LogLikelihoodReference(x2.Select(v => (double)v).ToArray(), ty.ToHost(), sigma);
        var got = ll.ToHost();
        for (int i = 0; i < n; i++)
            Assert.That(got[i], Is.EqualTo(expected[i]).Within(1e-5 * Math.Abs(expected[i]) + 97 * 2e-7), $"item {i}");
        using var wrong = Tensor.Zeros(dev, n + 1);
        Assert.Throws<ArgumentException>(() => op.LogLikelihood(tx2, ty, sigma, wrong));
        Assert.Throws<ArgumentOutOfRangeException>(() => op.LogLikelihood(tx2, ty, 0f, ll));
    }

    [Test]
    public void InverseMillsRatio_IsAccurateAndFiniteEverywhere()
    {
        // Relative error where the bits disagree or barely agree (u <= 4); for larger u, R(u) ~ phi(u)
        // carries the float rounding of u^2 / 2 in its exponent (relative error ~ u^2 eps), but is
        // below 1e-4 there, so the absolute error is what matters.
        double worstRelative = 0, worstAbsolute = 0, worstAt = 0;
        for (double u = -2000; u <= 40; u += u < -50 ? 7.3 : 0.0173)
        {
            float got = ProbitWeights.InverseMillsRatio((float)u);
            double expected = Probit.InverseMillsRatioReference((float)u);
            Assert.That(float.IsFinite(got), Is.True, $"R({u}) = {got}");
            double err = Math.Abs(got - expected);
            if (u <= 4 && err / expected > worstRelative) (worstRelative, worstAt) = (err / expected, u);
            if (u > 4) worstAbsolute = Math.Max(worstAbsolute, err);
        }
        TestContext.Out.WriteLine($"R(u): worst relative {worstRelative:E2} at u = {worstAt}, worst absolute for u > 4 {worstAbsolute:E2}");
        Assert.That(worstRelative, Is.LessThan(2e-6), $"largest relative error of R(u) for u <= 4 (at u = {worstAt})");
        Assert.That(worstAbsolute, Is.LessThan(1e-9), "largest absolute error of R(u) for u > 4");
        foreach (float u in new[] { -1e30f, -1e8f, -3e4f, 60f, 1e4f, float.MaxValue })
            Assert.That(float.IsFinite(ProbitWeights.InverseMillsRatio(u)), Is.True, $"R({u})");
        // R(u) ~ -u - 1/u for u -> -inf; R(0) = 2 phi(0) = sqrt(2/pi).
        Assert.That(ProbitWeights.InverseMillsRatio(-1e4f), Is.EqualTo(1e4).Within(1e-2));
        Assert.That(ProbitWeights.InverseMillsRatio(0f), Is.EqualTo(Math.Sqrt(2 / Math.PI)).Within(1e-6));
        Assert.That(Probit.LogCdfReference(-40), Is.EqualTo(-804.6084420137538).Within(1e-9 * 804.6));
    }

    [Test]
    public void OneBitGradient_StaysFiniteWhenEveryBitDisagrees()
    {
        // Tiny sigma and flipped bits put u_i = y_i (a_i^T x + tau_i) / sigma near -1e3: phi/Phi in a
        // naive form is 0/0 there.
        var dev = TestDevices.Cpu;
        using var op = new OneBitOperator(dev, [2, 5, 3], 50, 0.5f, 9);
        var x = TestData.Random(2 * op.InputLength, 4);
        using var tx = Tensor.FromHost(dev, x, 2, 2, 5, 3);
        using var ty = Tensor.Empty(dev, 2, 50);
        op.Forward(tx, ty);
        var flipped = ty.ToHost().Select(v => -v).ToArray();
        ty.CopyFrom(flipped);
        using var grad = Tensor.Empty(dev, tx.Shape);
        const float sigma = 1e-3f;
        op.LogLikelihoodGradient(tx, ty, sigma, grad);
        var g = grad.ToHost();
        Assert.That(g.All(float.IsFinite), Is.True);
        TestData.AssertClose(g, op.LogLikelihoodGradientReference(x, flipped, sigma), 1e-5, "one-bit gradient, all bits wrong");
        // There the gradient is about A^T (-(A x + tau)) / sigma^2: it pulls every u back towards the right side.
        Assert.That(g.Select(Math.Abs).Max(), Is.GreaterThan(1e3));
    }

    [Test]
    public void OneBitSimulate_MatchesReference()
    {
        var dev = TestDevices.Cpu;
        using var op = new OneBitOperator(dev, [7], 33, 0.2f, 3);
        var x = TestData.Random(3 * 7, 5);
        var draw = new RandomDraw(8, 2, 1);
        using var tx = Tensor.FromHost(dev, x, 3, 7);
        using var ty = Tensor.Empty(dev, 3, 33);
        op.Simulate(tx, 0.5f, draw, ty);
        var got = ty.ToHost();
        Assert.That(got.All(v => v is 1f or -1f), Is.True);
        Assert.That(got, Is.EqualTo(op.SimulateReference(x, 0.5f, draw)));
        op.Forward(tx, ty);
        Assert.That(ty.ToHost(), Is.Not.EqualTo(got), "noise flips some bits at sigma = 0.5");
    }
}

using NUnit.Framework;
using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Reductions;
using PosteriorGpu.Models.Priors;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Samplers.Posterior;

namespace PosteriorGpu.Tests.Posterior;

/// <summary>LGD-MC (Song et al. 2023): DPS when it has one particle at x0^, the exact Gaussian smoothing of the
/// likelihood with many, and a sampler much closer to the exact posterior than the prior.</summary>
public class LgdMcTests
{
    [TestCase(DpsStepRule.ResidualNorm, 0.3)]
    [TestCase(DpsStepRule.Likelihood, 0.03)]
    public void OneParticleAtTweedie_IsDpsBitForBit(DpsStepRule rule, double zeta)
    {
        var dev = TestDevices.Cpu;
        using var problem = new GaussianInverseProblem(dev);
        using var dps = Tensor.Empty(dev, 24, 1, 8, 8);
        using var lgd = Tensor.Empty(dev, 24, 1, 8, 8);
        new DpsSampler(problem.Prior, problem.Schedule, new DpsOptions { Steps = 30, StepSize = zeta, Rule = rule })
            .Sample(dps, problem.Y, problem.Operator, GaussianInverseProblem.SigmaY, seed: 21, firstSample: 5);
        new LgdMcSampler(problem.Prior, problem.Schedule, new LgdMcOptions { Steps = 30, StepSize = zeta, Rule = rule, Particles = 1, RadiusScale = 0 })
            .Sample(lgd, problem.Y, problem.Operator, GaussianInverseProblem.SigmaY, seed: 21, firstSample: 5);
        Assert.That(lgd.ToHost().Select(BitConverter.SingleToInt32Bits), Is.EqualTo(dps.ToHost().Select(BitConverter.SingleToInt32Bits)));
    }

    [Test]
    public void ManyParticles_GiveTheGradientOfTheGaussianSmoothedLikelihood()
    {
        // E over x0 ~ N(x0^, r^2 I) of N(y; A x0, s^2 I) is N(y; A x0^, s^2 I + r^2 A A^T), whose gradient in x0^ is
        // A^T (s^2 I + r^2 A A^T)^{-1} (y - A x0^); the self-normalised particle average converges to it.
        var dev = TestDevices.Cpu;
        const int d = 4, m = 2, particles = 40000;
        const float sigma = 0.5f, radius = 0.4f;
        using var op = new CompressedSensingOperator(dev, [1, 2, 2], m, seed: 11);
        var a = op.Matrix;
        var x0 = TestData.Random(d, 94);
        float[] y = [1.2f, -0.7f];
        using var tx0 = Tensor.FromHost(dev, x0, 1, 1, 2, 2);
        using var ty = Tensor.FromHost(dev, y, 1, m);
        using var pool = new TensorPool(dev);
        using var g = Tensor.Empty(dev, 1, 1, 2, 2);
        using var meanResidual = Tensor.Empty(dev, 1);
        using var health = Tensor.Empty(dev, 1);
        using (var mc = new LgdMcSampler.ParticleGuidance(pool, [1, 1, 2, 2], op, ty, particles))
            mc.Run(tx0, sigma, radius, new RandomDraw(3, RandomStreams.LossGuidanceParticles, 0), g, meanResidual, health);
        Assert.That(health.ToHost(), Is.EqualTo(new[] { 0f }));
        var got = g.ToHost();

        // The closed form, in double.
        var r = new double[m];
        for (int i = 0; i < m; i++) r[i] = y[i] - Enumerable.Range(0, d).Sum(j => (double)a[i * d + j] * x0[j]);
        double[,] c = new double[m, m];
        for (int i = 0; i < m; i++)
            for (int k = 0; k < m; k++)
                c[i, k] = (i == k ? sigma * sigma : 0) + radius * radius * Enumerable.Range(0, d).Sum(j => (double)a[i * d + j] * a[k * d + j]);
        double det = c[0, 0] * c[1, 1] - c[0, 1] * c[1, 0];
        double[] v = [(c[1, 1] * r[0] - c[0, 1] * r[1]) / det, (-c[1, 0] * r[0] + c[0, 0] * r[1]) / det];
        var expected = Enumerable.Range(0, d).Select(j => a[j] * v[0] + a[d + j] * v[1]).ToArray();
        // DPS's point gradient A^T r / s^2, to show the two differ by more than the tolerance.
        var point = Enumerable.Range(0, d).Select(j => (a[j] * r[0] + a[d + j] * r[1]) / (sigma * sigma)).ToArray();
        double Distance(double[] p, double[] q) => Math.Sqrt(p.Zip(q, (u, w) => (u - w) * (u - w)).Sum());
        double scale = Math.Sqrt(expected.Sum(e => e * e));
        double error = Distance(got.Select(f => (double)f).ToArray(), expected) / scale;
        double gap = Distance(point, expected) / scale;
        TestContext.Out.WriteLine($"relative error of the {particles}-particle gradient {error:E2}; DPS's point gradient is {gap:E2} away");
        Assert.That(error, Is.LessThan(0.03));
        Assert.That(gap, Is.GreaterThan(10 * 0.03));
    }

    [Test]
    public void Weigh_IsASoftmaxOfTheLogLikelihoods()
    {
        var w = new float[3];
        var (mean, ok) = LgdMcSampler.Weigh([0f, MathF.Log(2), MathF.Log(5)], [1f, 2f, 3f], w);
        Assert.That(ok, Is.True);
        Assert.That(w, Is.EqualTo(new[] { 0.125f, 0.25f, 0.625f }).Within(1e-6));
        Assert.That(mean, Is.EqualTo(0.125 + 0.5 + 1.875).Within(1e-5));
        // Shifting every log-likelihood by a constant (here large) changes nothing.
        LgdMcSampler.Weigh([-1000f, -1000f + MathF.Log(2), -1000f + MathF.Log(5)], [1f, 2f, 3f], w);
        Assert.That(w, Is.EqualTo(new[] { 0.125f, 0.25f, 0.625f }).Within(1e-5));
        var one = new float[1];
        Assert.That(LgdMcSampler.Weigh([-12345f], [7.5f], one), Is.EqualTo((7.5f, true)));
        Assert.That(one[0], Is.EqualTo(1f));
        Assert.That(LgdMcSampler.Weigh([0f, float.NaN], [1f, 1f], w.AsSpan(0, 2)).Ok, Is.False);
        Assert.That(LgdMcSampler.Weigh([float.NegativeInfinity, float.NegativeInfinity], [1f, 3f], w.AsSpan(0, 2)), Is.EqualTo((2f, true)));
    }

    /// <summary>The device weights (<see cref="ParticleWeights"/>) are <see cref="LgdMcSampler.Weigh"/>'s bit for bit, for the
    /// Gaussian log-likelihood from the residuals and for given ones, with awkward chains: one particle, a NaN, a +infinity,
    /// every particle impossible, and a huge shift.</summary>
    [TestCase(1)]
    [TestCase(3)]
    [TestCase(7)]
    public void ParticleWeightsKernel_IsWeighBitwise(int particles)
    {
        var dev = TestDevices.Cpu;
        const int chains = 9;
        int total = chains * particles;
        var residual = TestData.Random(total, 41).Select(v => 3 * v * v).ToArray();
        var log = TestData.Random(total, 42, 20f);
        log[1 * particles] = float.NaN;
        log[2 * particles + particles - 1] = float.PositiveInfinity;
        for (int k = 0; k < particles; k++) log[3 * particles + k] = float.NegativeInfinity;
        for (int k = 0; k < particles; k++) log[4 * particles + k] -= 1e6f;
        using var tLog = Tensor.FromHost(dev, log, total);
        using var tResidual = Tensor.FromHost(dev, residual, total);
        using var weights = Tensor.Empty(dev, total);
        using var mean = Tensor.Empty(dev, chains);
        using var health = Tensor.Empty(dev, chains);
        const float gaussianScale = -0.5f / (0.3f * 0.3f);
        foreach (bool gaussian in new[] { false, true })
        {
            ParticleWeights.Run(gaussian ? null : tLog, gaussianScale, tResidual, particles, weights, mean, health);
            var (w, m, h) = (weights.ToHost(), mean.ToHost(), health.ToHost());
            for (int c = 0; c < chains; c++)
            {
                var l = gaussian ? residual.Skip(c * particles).Take(particles).Select(r => gaussianScale * r).ToArray() : log.AsSpan(c * particles, particles).ToArray();
                var expected = new float[particles];
                var (em, ok) = LgdMcSampler.Weigh(l, residual.AsSpan(c * particles, particles), expected);
                Assert.That(float.IsNaN(h[c]), Is.EqualTo(!ok), $"chain {c} health (gaussian {gaussian})");
                if (!ok) continue;
                Assert.That(h[c], Is.EqualTo(0f));
                Assert.That(BitConverter.SingleToInt32Bits(m[c]), Is.EqualTo(BitConverter.SingleToInt32Bits(em)), $"chain {c} mean (gaussian {gaussian})");
                Assert.That(w.AsSpan(c * particles, particles).ToArray(), Is.EqualTo(expected), $"chain {c} weights (gaussian {gaussian})");
            }
        }
    }

    [Test]
    public void GuidanceScalesKernel_IsItsReference()
    {
        var dev = TestDevices.Cpu;
        var r = TestData.Random(37, 5).Select(v => v < -0.5f ? 0f : v * v).ToArray();
        r[3] = -1f;
        using var tr = Tensor.FromHost(dev, r, r.Length);
        using var scales = Tensor.Empty(dev, r.Length);
        var expected = new float[r.Length];
        GuidanceScales.Run(tr, 0.7f, scales);
        GuidanceScales.Reference(r, 0.7f, expected);
        Assert.That(scales.ToHost(), Is.EqualTo(expected));
        Assert.That(expected[3], Is.EqualTo(0f));
        GuidanceScales.Run(null, -0.25f, scales);
        GuidanceScales.Reference([], -0.25f, expected);
        Assert.That(scales.ToHost(), Is.EqualTo(expected));
        Assert.That(expected, Is.All.EqualTo(-0.25f));
    }

    [Test]
    public void IsMuchCloserThanThePrior()
    {
        var dev = TestDevices.Cpu;
        using var problem = new GaussianInverseProblem(dev);
        const int chains = 1024;
        using var x = Tensor.Empty(dev, chains, 1, 8, 8);
        new LgdMcSampler(problem.Prior, problem.Schedule, new LgdMcOptions { Steps = 100, StepSize = 0.3, Particles = 8 })
            .Sample(x, problem.Y, problem.Operator, GaussianInverseProblem.SigmaY, seed: 17);
        double w2 = DistributionDistances.GaussianW2(x.ToHost(), problem.Exact);
        double priorW2 = DistributionDistances.GaussianW2(problem.Prior.Distribution, problem.Exact);
        var (floor, _) = problem.Tolerance(chains);
        TestContext.Out.WriteLine($"LGD-MC (zeta 0.3, 8 particles, 100 steps, {chains} chains): W2 = {w2:F4}; prior {priorW2:F4}; exact-sample floor {floor:F4}");
        Assert.That(w2, Is.LessThan(priorW2 / 3));
        Assert.That(w2, Is.GreaterThan(floor));
    }

    [Test]
    public void Options_AreValidated_AndChainsAreIndependentOfBatching()
    {
        var dev = TestDevices.Cpu;
        using var problem = new GaussianInverseProblem(dev);
        var ex = Assert.Throws<InvalidOptionException>(() => new LgdMcSampler(problem.Prior, problem.Schedule, new LgdMcOptions { Particles = 0 }));
        Assert.That(ex!.Message, Does.Contain("Particles"));
        Assert.Throws<InvalidOptionException>(() => new LgdMcSampler(problem.Prior, problem.Schedule, new LgdMcOptions { RadiusScale = -1 }));
        Assert.Throws<ArgumentException>(() => new LgdMcSampler(new DpsTests.NotDifferentiable(dev), problem.Schedule));

        var options = new LgdMcOptions { Steps = 10, StepSize = 0.3, Particles = 4 };
        using var batch = Tensor.Empty(dev, 3, 1, 8, 8);
        using var single = Tensor.Empty(dev, 1, 1, 8, 8);
        var sampler = new LgdMcSampler(problem.Prior, problem.Schedule, options);
        sampler.Sample(batch, problem.Y, problem.Operator, GaussianInverseProblem.SigmaY, seed: 4);
        sampler.Sample(single, problem.Y, problem.Operator, GaussianInverseProblem.SigmaY, seed: 4, firstSample: 2);
        Assert.That(single.ToHost(), Is.EqualTo(batch.ToHost().AsSpan(2 * 64, 64).ToArray()).Within(1e-5));
    }
}

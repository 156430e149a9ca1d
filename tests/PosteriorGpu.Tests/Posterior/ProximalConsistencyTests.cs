using NUnit.Framework;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Samplers.Posterior;

namespace PosteriorGpu.Tests.Posterior;

/// <summary>
/// DPnP's proximal consistency draw x^ ~ q(x^) ∝ N(y; A x^, sigma_y^2 I) N(x^; x, eta^2 I) against its closed form
/// (A = I: per coordinate variance v = 1 / (1 / sigma_y^2 + 1 / eta^2), mean v (y / sigma_y^2 + x / eta^2)), with a
/// step scale where the unadjusted step is visibly biased: the Metropolis-adjusted one must not be.
/// </summary>
public class ProximalConsistencyTests
{
    private const int Chains = 4096, Side = 4, D = Side * Side;
    private const float SigmaY = 0.1f, Eta = 0.2f;

    private static (double VarianceRatio, double WorstZ, double Acceptance) Run(bool metropolis, int steps)
    {
        var dev = TestDevices.Cpu;
        var eye = new float[D * D];
        for (int i = 0; i < D; i++) eye[i * D + i] = 1;
        using var op = new CompressedSensingOperator(dev, [1, Side, Side], D, eye);
        var anchor = Enumerable.Range(0, D).Select(j => (float)Math.Sin(j)).ToArray();
        var y = Enumerable.Range(0, D).Select(j => (float)Math.Cos(j)).ToArray();
        using var x = Tensor.FromHost(dev, Enumerable.Range(0, Chains).SelectMany(_ => anchor).ToArray(), Chains, 1, Side, Side);
        using var yt = Tensor.FromHost(dev, Enumerable.Range(0, Chains).SelectMany(_ => y).ToArray(), Chains, D);
        using var xHat = Tensor.Empty(dev, Chains, 1, Side, Side);
        using var pool = new TensorPool(dev);
        double lipschitz = 1 / (SigmaY * SigmaY);
        // The default step scale 0.6: at eta = 2 sigma_y the unadjusted chain's variance is about 1.5x the target's.
        var pcs = new ProximalConsistencySampler(steps, 0.6, metropolis);
        long accepted = pcs.Sample(xHat, x, yt, op, SigmaY, Eta, lipschitz, seed: 5, firstSample: 0, drawOffset: 0, pool, CancellationToken.None);
        var s = xHat.ToHost();
        double v = 1 / (1 / (SigmaY * SigmaY) + 1 / (Eta * Eta));
        double ratio = 0, worst = 0;
        for (int j = 0; j < D; j++)
        {
            double mean = v * (y[j] / (SigmaY * SigmaY) + anchor[j] / (Eta * Eta));
            double m = Enumerable.Range(0, Chains).Average(k => (double)s[k * D + j]);
            double q = Enumerable.Range(0, Chains).Sum(k => Math.Pow(s[k * D + j] - m, 2)) / (Chains - 1);
            ratio += q / v / D;
            worst = Math.Max(worst, Math.Abs(m - mean) / Math.Sqrt(v / Chains));
        }
        return (ratio, worst, (double)accepted / ((long)steps * Chains));
    }

    [Test]
    public void Metropolis_RemovesTheUnadjustedStepsBias()
    {
        var ula = Run(metropolis: false, steps: 40);
        var mala = Run(metropolis: true, steps: 40);
        TestContext.Out.WriteLine($"unadjusted: variance ratio {ula.VarianceRatio:F3}, worst mean error {ula.WorstZ:F2} SE; " +
                                  $"Metropolis-adjusted: {mala.VarianceRatio:F3}, {mala.WorstZ:F2} SE, acceptance {mala.Acceptance:F3}");
        Assert.That(ula.VarianceRatio, Is.GreaterThan(1.25), "the unadjusted step at this step scale is biased (else the test shows nothing)");
        Assert.That(mala.VarianceRatio, Is.InRange(0.95, 1.05), "per-coordinate variance (sampling error about 0.6 %)");
        Assert.That(mala.WorstZ, Is.LessThan(5), "means");
        Assert.That(mala.Acceptance, Is.InRange(0.05, 0.999), "a Metropolis step that accepts everything or nothing is not one");
        Assert.That(ula.Acceptance, Is.EqualTo(1.0), "without Metropolis every step counts as accepted");
    }

    [Test]
    public void Dpnp_ReportsItsAcceptanceRate_OnlyWithMetropolis()
    {
        var dev = TestDevices.Cpu;
        using var p = new GaussianInverseProblem(dev);
        using var x = Tensor.Empty(dev, 16, 1, GaussianInverseProblem.Side, GaussianInverseProblem.Side);
        var fast = new DpnpOptions { Iterations = 3, PriorSteps = 5, Denoiser = new DenoisingDiffusionOptions { Steps = 2 } };
        var adjusted = new DpnpSampler(p.Prior, p.Schedule, fast).Sample(x, p.Y, p.Operator, GaussianInverseProblem.SigmaY, seed: 2);
        Assert.That(adjusted.AcceptanceRate, Is.Not.Null.And.InRange(0.0, 1.0));
        Assert.That(adjusted.NetworkEvaluations, Is.EqualTo(5 + 3 * 3));
        var unadjusted = new DpnpSampler(p.Prior, p.Schedule, fast with { Metropolis = false }).Sample(x, p.Y, p.Operator, GaussianInverseProblem.SigmaY, seed: 2);
        Assert.That(unadjusted.AcceptanceRate, Is.Null);
    }
}

using NUnit.Framework;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Samplers.Posterior;

namespace PosteriorGpu.Tests.Posterior;

/// <summary>
/// Every exact-in-the-limit method with its DEFAULT options against the closed-form posterior (issue 18): prior N(0, I)
/// with A = I at d = 1 and d = 64, and a correlated d = 32 prior with a random 8 x 32 A; sigma_y = 0.1, 4096 chains.
/// Criteria (<see cref="ExactGaussianCase.Verdict"/>): total-variance ratio in [0.8, 1.25], every mean within 5
/// standard errors, W2 below twice the exact-sample floor + 0.1. Budgets: annealed Langevin 50 + 20 x 50 network
/// evaluations a sample, DPnP 50 + 50 x 8. DPS is the biased baseline and is not held to these checks.
/// </summary>
public class DefaultOptionsExactTests
{
    private const int Chains = 4096;

    private static IEnumerable<TestCaseData> Cases() =>
        from method in new[] { "annealed-langevin", "dpnp" }
        from name in ExactGaussianCase.Names
        select new TestCaseData(method, name).SetName($"DefaultOptions_MatchTheExactPosterior({method}, {name})");

    [TestCaseSource(nameof(Cases))]
    public void DefaultOptions_MatchTheExactPosterior(string method, string name)
    {
        var dev = TestDevices.Cpu;
        using var c = ExactGaussianCase.Create(dev, name);
        using var x = Tensor.Empty(dev, Chains, c.Shape[0], c.Shape[1], c.Shape[2]);
        PosteriorMethodOptions options = method == "dpnp" ? new DpnpOptions() : new AnnealedLangevinOptions();
        var run = options.CreateSampler(c.Prior, c.Schedule).Sample(x, c.Y, c.Operator, ExactGaussianCase.SigmaY, seed: 3);
        var verdict = c.Judge(x.ToHost(), Chains);
        TestContext.Out.WriteLine($"{method} {verdict}; acceptance {run.AcceptanceRate?.ToString("F3") ?? "-"}");
        Assert.That(verdict.VarianceRatio, Is.InRange(0.8, 1.25), verdict.ToString());
        Assert.That(verdict.WorstMeanZ, Is.LessThan(5), verdict.ToString());
        Assert.That(verdict.W2, Is.LessThan(verdict.W2Tolerance), verdict.ToString());
    }

    [Test]
    public void TheChecks_RejectPriorSamplesAndAnOverdispersedSampler()
    {
        // The criteria must be able to fail: the prior itself, and the exact posterior with its spread scaled by 1.2.
        var dev = TestDevices.Cpu;
        foreach (string name in ExactGaussianCase.Names)
        {
            using var c = ExactGaussianCase.Create(dev, name);
            Assert.That(c.Judge(c.Prior.Distribution.Sample(Chains, 5), Chains).Passes, Is.False, $"{name}: prior samples");
            var exact = c.Exact.Sample(Chains, 6);
            Assert.That(c.Judge(exact, Chains).Passes, Is.True, $"{name}: exact samples");
            int d = c.Dimension;
            var wide = exact.Select((v, i) => (float)(c.Exact.Mean[i % d] + 1.2 * (v - c.Exact.Mean[i % d]))).ToArray();
            Assert.That(c.Judge(wide, Chains).VarianceRatio, Is.GreaterThan(1.25), $"{name}: 1.44x the variance");
        }
    }
}

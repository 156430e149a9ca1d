using NUnit.Framework;
using PosteriorGpu.Cli.Studies;

namespace PosteriorGpu.Tests.Samplers;

/// <summary>
/// The deterministic samplers' observed order of convergence with an exact score (Gaussian prior,
/// d = 64, the Li et al. schedule), from <see cref="ConvergenceStudy"/> — the same numbers
/// `posteriorgpu convergence` prints into docs/convergence.md.
/// </summary>
public class ConvergenceOrderTests
{
    private static readonly Lazy<IReadOnlyList<ConvergenceStudy.Row>> Rows =
        new(() => ConvergenceStudy.Run(TestDevices.Cpu, [10, 20, 40, 80]));

    // Orders are read per halving of the step size c1 log T / T, on the last pair (40 -> 80 steps),
    // where the asymptotic regime has set in; the small-T pairs are pre-asymptotic (see the doc).
    [TestCase("pf-ode", 0.8, 1.35)]
    [TestCase("ddim", 0.8, 1.35)]
    [TestCase("li-accelerated", 1.7, 2.6)]
    [TestCase("dpmsolver++2m", 1.7, 2.6)]
    public void ObservedOrder(string sampler, double low, double high)
    {
        var row = Rows.Value.Single(r => r.Sampler == sampler);
        TestContext.Out.WriteLine($"{sampler}: W2 {string.Join(", ", row.W2.Select(e => e.ToString("E3")))}; " +
                                  $"orders in step size {string.Join(", ", row.StepSizeOrders.Select(o => o.ToString("F2")))}");
        Assert.That(row.StepSizeOrders[^1], Is.InRange(low, high));
        Assert.That(row.W2, Is.Ordered.Descending, "more steps, smaller error");
    }

    [Test]
    public void SecondOrderSamplers_BeatFirstOrderAt80Steps()
    {
        double W2(string s) => Rows.Value.Single(r => r.Sampler == s).W2[^1];
        Assert.That(W2("li-accelerated"), Is.LessThan(W2("pf-ode")));
        Assert.That(W2("dpmsolver++2m"), Is.LessThan(W2("ddim")));
    }
}

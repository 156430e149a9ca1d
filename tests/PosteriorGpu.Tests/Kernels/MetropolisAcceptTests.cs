using NUnit.Framework;
using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Tests.Kernels;

/// <summary>The device accept/reject of the Metropolis-adjusted consistency step against a host loop written out here,
/// bit for bit: flags, counts and the kept state, with NaN and infinite terms, for both likelihood kinds; and its float
/// arithmetic against double where the log targets are large and nearly equal (no cancellation).</summary>
public class MetropolisAcceptTests
{
    [TestCase(0, 1)]
    [TestCase(1, 7)]
    [TestCase(1, 37)]
    public void Kernel_IsTheHostLoop(int gaussian, int n)
    {
        var dev = TestDevices.Cpu;
        var term = TestData.Random(n, 1, 4f).Select(v => gaussian != 0 ? v * v : v).ToArray();
        var distance = TestData.Random(n, 2).Select(v => v * v).ToArray();
        var proposalTerm = TestData.Random(n, 3, 4f).Select(v => gaussian != 0 ? v * v : v).ToArray();
        var proposalDistance = TestData.Random(n, 4).Select(v => v * v).ToArray();
        var forward = TestData.Random(n, 5).Select(v => v * v).ToArray();
        var reverse = TestData.Random(n, 6).Select(v => v * v).ToArray();
        if (n > 1)
        {
            proposalTerm[1] = float.NaN;
            reverse[n - 1] = float.PositiveInfinity;
        }
        var count = Enumerable.Range(0, n).Select(i => (float)(i % 3)).ToArray();
        const float sigmaY = 0.3f, eta = 0.2f, c3 = 0.05f;
        var c = new MetropolisAccept.Constants(gaussian, 2f * sigmaY * sigmaY, 2f * eta * eta, 2f * c3 * c3, 17, RandomStreams.ProximalConsistency,
            (1UL << 63) | 5, 3);

        // The decision written out on the host, in float on differences.
        var expectedTerm = (float[])term.Clone();
        var expectedDistance = (float[])distance.Clone();
        var expectedCount = (float[])count.Clone();
        var expectedFlags = new float[n];
        for (int i = 0; i < n; i++)
        {
            float likelihood = gaussian != 0 ? (term[i] - proposalTerm[i]) / c.TwoSigma2 : proposalTerm[i] - term[i];
            float logAlpha = likelihood - (proposalDistance[i] - distance[i]) / c.TwoEta2 + (forward[i] - reverse[i]) / c.TwoC3Squared;
            float u = Philox.Uniform(c.Seed, c.Stream, c.Step, c.FirstChain + i);
            bool ok = float.IsFinite(logAlpha) && (logAlpha >= 0 || MathF.Log(u) < logAlpha);
            expectedFlags[i] = ok ? 1f : 0f;
            if (!ok) continue;
            expectedCount[i]++;
            expectedTerm[i] = proposalTerm[i];
            expectedDistance[i] = proposalDistance[i];
        }

        using var tTerm = Tensor.FromHost(dev, term, n);
        using var tDistance = Tensor.FromHost(dev, distance, n);
        using var tProposalTerm = Tensor.FromHost(dev, proposalTerm, n);
        using var tProposalDistance = Tensor.FromHost(dev, proposalDistance, n);
        using var tForward = Tensor.FromHost(dev, forward, n);
        using var tReverse = Tensor.FromHost(dev, reverse, n);
        using var flags = Tensor.Empty(dev, n);
        using var tCount = Tensor.FromHost(dev, count, n);
        MetropolisAccept.Run(c, tTerm, tDistance, tProposalTerm, tProposalDistance, tForward, tReverse, flags, tCount);
        Assert.That(flags.ToHost(), Is.EqualTo(expectedFlags));
        Assert.That(tCount.ToHost(), Is.EqualTo(expectedCount));
        Assert.That(tTerm.ToHost(), Is.EqualTo(expectedTerm));
        Assert.That(tDistance.ToHost(), Is.EqualTo(expectedDistance));
        if (n > 1) Assert.That(expectedFlags[1], Is.Zero, "a NaN proposal is rejected");
        TestContext.Out.WriteLine($"accepted {expectedFlags.Sum()} of {n}");
    }

    [Test]
    public void LargeNearlyEqualTargets_DecideAsInDouble()
    {
        // Squared residuals near 1e5 whose differences are of order one: log q itself is about -1e5 / (2 sigma^2), far past
        // float's resolution, but log alpha is formed from the differences, so the float decision is the double one
        // wherever log alpha is not within rounding of log u.
        const int n = 4096;
        const float twoSigma2 = 2f * 0.5f * 0.5f, twoEta2 = 2f * 0.3f * 0.3f, twoC3 = 2f * 0.1f * 0.1f;
        var draw = new RandomDraw(5, 0, 0);
        var term = Enumerable.Range(0, n).Select(i => 1e5f + draw.Normal(i)).ToArray();
        var proposalTerm = term.Select((v, i) => v + 0.3f * draw.Normal(n + i)).ToArray();
        var distance = Enumerable.Range(0, n).Select(i => 5e4f + draw.Normal(2 * n + i)).ToArray();
        var proposalDistance = distance.Select((v, i) => v + 0.2f * draw.Normal(3 * n + i)).ToArray();
        var forward = Enumerable.Range(0, n).Select(i => 0.01f * MathF.Abs(draw.Normal(4 * n + i))).ToArray();
        var reverse = Enumerable.Range(0, n).Select(i => 0.01f * MathF.Abs(draw.Normal(5 * n + i))).ToArray();
        var c = new MetropolisAccept.Constants(1, twoSigma2, twoEta2, twoC3, 3, RandomStreams.ProximalConsistency, 1UL << 63, 0);
        int decided = 0, agree = 0;
        for (int i = 0; i < n; i++)
        {
            double exact = (-(double)proposalTerm[i] / twoSigma2 - (double)proposalDistance[i] / twoEta2)
                           - (-(double)term[i] / twoSigma2 - (double)distance[i] / twoEta2) + ((double)forward[i] - reverse[i]) / twoC3;
            float u = Philox.Uniform(c.Seed, c.Stream, c.Step, i);
            if (Math.Abs(exact - Math.Log(u)) < 1e-2 && exact < 0) continue;   // within rounding of the threshold
            decided++;
            bool expected = exact >= 0 || Math.Log(u) < exact;
            float logAlpha = MetropolisAccept.LogAlpha(term[i], distance[i], proposalTerm[i], proposalDistance[i], forward[i], reverse[i],
                1, twoSigma2, twoEta2, twoC3);
            if (MetropolisAccept.Accepts(logAlpha, u) == expected) agree++;
        }
        TestContext.Out.WriteLine($"{agree} of {decided} clear decisions agree with double");
        Assert.That(decided, Is.GreaterThan(n * 9 / 10));
        Assert.That(agree, Is.EqualTo(decided));
    }
}

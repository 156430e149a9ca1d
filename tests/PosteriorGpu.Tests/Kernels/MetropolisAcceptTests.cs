using NUnit.Framework;
using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Tests.Kernels;

/// <summary>The device accept/reject of the Metropolis-adjusted consistency step against the host loop it replaced
/// (written out here in double, as it was), bit for bit: flags, counts and the kept state, with NaN and infinite
/// terms, for both likelihood kinds.</summary>
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
        var c = new MetropolisAccept.Constants(gaussian, 2.0 * sigmaY * sigmaY, 2.0 * eta * eta, 2.0 * c3 * c3, 17, RandomStreams.ProximalConsistency,
            (1UL << 63) | 5, 3);

        // The host loop as ProximalConsistencySampler had it.
        var expectedTerm = (float[])term.Clone();
        var expectedDistance = (float[])distance.Clone();
        var expectedCount = (float[])count.Clone();
        var expectedFlags = new float[n];
        for (int i = 0; i < n; i++)
        {
            double logTarget = (gaussian != 0 ? -term[i] / c.TwoSigma2 : term[i]) - distance[i] / c.TwoEta2;
            double proposalLogTarget = (gaussian != 0 ? -proposalTerm[i] / c.TwoSigma2 : proposalTerm[i]) - proposalDistance[i] / c.TwoEta2;
            double f = forward[i], r = reverse[i];
            double logAlpha = proposalLogTarget - logTarget + (f - r) / c.TwoC3Squared;
            double u = Philox.Uniform(c.Seed, c.Stream, c.Step, c.FirstChain + i);
            bool ok = double.IsFinite(logAlpha) && (logAlpha >= 0 || Math.Log(u) < logAlpha);
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
}

using NUnit.Framework;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Samplers.Operators;

namespace PosteriorGpu.Tests.Operators;

/// <summary>A user's operator through <see cref="HostLinearOperator"/>, and the public adjoint check on it and on
/// every library operator.</summary>
public class HostLinearOperatorTests
{
    /// <summary>First differences along a row of length n (n - 1 outputs) and, deliberately wrong, an adjoint that
    /// forgets the sign of one term when <paramref name="wrongAdjoint"/>.</summary>
    private sealed class Differences(GpuDevice device, int n, bool wrongAdjoint = false)
        : HostLinearOperator(device, "differences", [1, 1, n], [n - 1])
    {
        protected override void ForwardItem(ReadOnlySpan<float> x, Span<float> y)
        {
            for (int i = 0; i < y.Length; i++) y[i] = x[i + 1] - x[i];
        }

        protected override void AdjointItem(ReadOnlySpan<float> y, Span<float> x)
        {
            x.Clear();
            for (int i = 0; i < y.Length; i++)
            {
                x[i + 1] += y[i];
                x[i] += wrongAdjoint ? y[i] : -y[i];
            }
        }
    }

    [Test]
    public void DeviceCalls_MatchTheItemLoops_ForBatches()
    {
        var dev = TestDevices.Cpu;
        using var op = new Differences(dev, 7);
        foreach (int n in new[] { 1, 3 })
        {
            var x = TestData.Random(n * 7, 10 + n);
            var y = TestData.Random(n * 6, 20 + n);
            using var tx = Tensor.FromHost(dev, x, n, 1, 1, 7);
            using var ty = Tensor.FromHost(dev, y, n, 6);
            using var ax = Tensor.Empty(dev, n, 6);
            using var aty = Tensor.Empty(dev, n, 1, 1, 7);
            using var grad = Tensor.Empty(dev, n, 1, 1, 7);
            op.Forward(tx, ax);
            op.Adjoint(ty, aty);
            op.LogLikelihoodGradient(tx, ty, 0.5f, grad);
            Assert.That(ax.ToHost(), Is.EqualTo(op.ForwardReference(x)));
            Assert.That(ax.ToHost()[0], Is.EqualTo(x[1] - x[0]));
            Assert.That(aty.ToHost(), Is.EqualTo(op.AdjointReference(y)));
            TestData.AssertClose(grad.ToHost(), op.LogLikelihoodGradientReference(x, y, 0.5f), 1e-6, "likelihood gradient");
        }
        using var bad = Tensor.Empty(dev, 2, 1, 1, 6);
        using var out2 = Tensor.Empty(dev, 2, 6);
        Assert.That(() => op.Forward(bad, out2), Throws.ArgumentException.With.Message.Contains("[N, 1, 1, 7]"));
    }

    [Test]
    public void AdjointCheck_PassesTheRightAdjoint_AndCatchesAWrongOne()
    {
        var dev = TestDevices.Cpu;
        using var right = new Differences(dev, 50);
        using var wrong = new Differences(dev, 50, wrongAdjoint: true);
        double good = OperatorChecks.AdjointGap(right, dev), bad = OperatorChecks.AdjointGap(wrong, dev);
        TestContext.Out.WriteLine($"adjoint gap: right {good:E2}, wrong {bad:E2}");
        Assert.That(good, Is.LessThan(1e-6));
        Assert.That(bad, Is.GreaterThan(1e-2));
        Assert.DoesNotThrow(() => OperatorChecks.CheckAdjoint(right, dev));
        Assert.That(() => OperatorChecks.CheckAdjoint(wrong, dev), Throws.InvalidOperationException.With.Message.Contains("differences"));
    }

    private static IEnumerable<TestCaseData> LinearCases() =>
        OperatorCases.Linear().Select(c => new TestCaseData(c).SetArgDisplayNames(c.Name));

    [TestCaseSource(nameof(LinearCases))]
    public void AdjointCheck_PassesEveryLibraryOperator(OperatorCase c)
    {
        var dev = TestDevices.Cpu;
        using var op = c.Create(dev);
        Assert.That(OperatorChecks.AdjointGap((ILinearOperator)op, dev, batch: 2, seed: 3), Is.LessThan(1e-5));
    }
}

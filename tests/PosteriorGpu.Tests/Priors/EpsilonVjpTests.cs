using NUnit.Framework;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;
using PosteriorGpu.Models.Priors;

namespace PosteriorGpu.Tests.Priors;

/// <summary>The exact priors' vector-Jacobian products against central finite differences of their double references.</summary>
public class EpsilonVjpTests
{
    [TestCase("full", 3, 2, 3)]
    [TestCase("diagonal", 1, 4, 5)]
    [TestCase("lowrank", 2, 3, 3)]
    public void GaussianPrior_VjpMatchesFiniteDifferences(string kind, int c, int h, int w)
    {
        var dev = TestDevices.Cpu;
        int d = c * h * w;
        var dist = kind switch
        {
            "full" => PriorTestData.Full(d, 3),
            "diagonal" => PriorTestData.Diagonal(d, 4),
            _ => PriorTestData.LowRank(d, 2, 5),
        };
        using var prior = new GaussianPrior(dev, c, h, w, dist, PriorTestData.Linear);
        Check(prior, (x, t) => prior.EpsilonReference(x, t), c, h, w);
    }

    [TestCase(5, 1, 2, 3)]
    [TestCase(7, 2, 2, 2)]
    public void GaussianMixturePrior_VjpMatchesFiniteDifferences(int components, int c, int h, int w)
    {
        // Components close enough together (spread 0.7) that the responsibilities vary over the test points,
        // so the softmax term of the Jacobian matters.
        var dev = TestDevices.Cpu;
        var mixture = PriorTestData.Mixture(components, c * h * w, 8, spread: 0.7);
        using var prior = new GaussianMixturePrior(dev, c, h, w, mixture, PriorTestData.Linear);
        Check(prior, (x, t) => prior.EpsilonReference(x, t), c, h, w, step: 2e-3f);
    }

    /// <summary>For random x, v, u per item: &lt;v, (eps(x + h u) - eps(x - h u)) / 2h&gt; = &lt;u, J^T v&gt;, and eps equals PredictEpsilon's.</summary>
    internal static void Check(IDifferentiableScoreModel model, Func<float[], float[], double[]> reference, int c, int h, int w, float step = 1e-2f)
    {
        var dev = model.Device;
        int d = c * h * w, n = PriorTestData.MixedTimesteps.Length - 2;   // a strictly inside (0, 1)
        var t = PriorTestData.MixedTimesteps.Where(v => v > 0 && v < 1000).ToArray();
        var x = TestData.Random(n * d, 1, 1.5f);
        var v = TestData.Random(n * d, 2);
        var u = TestData.Random(n * d, 3);
        using var tx = Tensor.FromHost(dev, x, n, c, h, w);
        using var tv = Tensor.FromHost(dev, v, n, c, h, w);
        using var eps = Tensor.Empty(dev, n, c, h, w);
        using var grad = Tensor.Empty(dev, n, c, h, w);
        using var plain = Tensor.Empty(dev, n, c, h, w);
        model.EpsilonVjp(tx, t, tv, eps, grad);
        model.PredictEpsilon(tx, t, plain);
        TestData.AssertClose(eps.ToHost(), plain.ToHost(), 1e-6, "EpsilonVjp's epsilon is PredictEpsilon's");
        var jtv = grad.ToHost();
        var plus = reference(x.Select((xi, i) => xi + step * u[i]).ToArray(), t);
        var minus = reference(x.Select((xi, i) => xi - step * u[i]).ToArray(), t);
        for (int item = 0; item < n; item++)
        {
            double fd = 0, vjp = 0, scale = 0;
            for (int j = item * d; j < (item + 1) * d; j++)
            {
                fd += v[j] * (plus[j] - minus[j]) / (2 * step);
                vjp += u[j] * jtv[j];
                scale += Math.Abs(u[j] * jtv[j]);
            }
            Assert.That(vjp, Is.EqualTo(fd).Within(1e-3 * scale + 1e-5), $"item {item} at t = {t[item]}");
        }
    }

    [Test]
    public void GaussianPrior_VjpRejectsMismatchedCotangent()
    {
        var dev = TestDevices.Cpu;
        using var prior = new GaussianPrior(dev, 1, 2, 2, PriorTestData.Full(4, 1), PriorTestData.Linear);
        using var x = Tensor.Zeros(dev, 2, 1, 2, 2);
        using var v = Tensor.Zeros(dev, 3, 1, 2, 2);
        using var e = Tensor.Zeros(dev, 2, 1, 2, 2);
        var ex = Assert.Throws<ArgumentException>(() => prior.EpsilonVjp(x, [1f], v, e, e));
        Assert.That(ex!.Message, Does.Contain("cotangent"));
    }
}

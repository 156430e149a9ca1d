using NUnit.Framework;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;
using PosteriorGpu.Models.Priors;
using PosteriorGpu.Models.Schedules;
using PosteriorGpu.Cli.Studies;
using PosteriorGpu.Tests.Api;
using PosteriorGpu.Tests.Posterior;
using PosteriorGpu.Tests.Priors;
using PosteriorGpu.Tests.Reliability;
using PosteriorGpu.Tests.Samplers;

namespace PosteriorGpu.Tests.Models;

/// <summary>IScoreModel's timestep contract: N timesteps (one per item) or one (the same for all, as N copies); any
/// other count is an ArgumentException naming both counts. Checked for the priors and every test double.</summary>
public class ScoreModelTimestepsTests
{
    private static readonly NoiseSchedule Schedule = NoiseSchedule.Linear(1000, 1e-4, 0.02);
    private const int N = 3;

    private static readonly string[] Models =
        ["gaussian", "gaussian-diagonal", "mixture", "radial-error", "faulty", "nan-at-step", "without-gradients", "nan-at-call", "not-differentiable", "unet"];

    private static IScoreModel Create(string name, List<IDisposable> owned)
    {
        var dev = TestDevices.Cpu;
        T Own<T>(T m) where T : IDisposable { owned.Add(m); return m; }
        GaussianPrior Gaussian() => Own(new GaussianPrior(dev, 2, 2, 3, PriorTestData.Full(12, 3), Schedule));
        return name switch
        {
            "gaussian" => Gaussian(),
            "gaussian-diagonal" => Own(new GaussianPrior(dev, 2, 2, 3, PriorTestData.Diagonal(12, 4), Schedule)),
            "mixture" => Own(new GaussianMixturePrior(dev, 2, 2, 3, PriorTestData.Mixture(3, 12, 5), Schedule)),
            "radial-error" => Own(new RadialScoreError(Gaussian(), Schedule, 0.5, 0, 10)),
            "faulty" => new FaultyModel(Gaussian(), int.MaxValue, Fault.NaN),
            "nan-at-step" => new SamplerBehaviourTests.NaNAtStep(Gaussian(), -1),
            "without-gradients" => new PosteriorSamplerTests.WithoutGradients(Gaussian()),
            "nan-at-call" => new PosteriorSamplerBehaviourTests.NaNAtCall(Gaussian(), -1),
            "not-differentiable" => new DpsTests.NotDifferentiable(dev),
            "unet" => Own(PosteriorGpu.Models.UNet.UNet2DModel.Load(dev, Fixtures.Path("diffusers-unet-tiny"))),
            _ => throw new ArgumentException(name),
        };
    }

    private static float[] Predict(IScoreModel m, float[] x, float[] timesteps)
    {
        int n = x.Length / (m.Channels * m.Height * m.Width);
        using var tx = Tensor.FromHost(m.Device, x, n, m.Channels, m.Height, m.Width);
        using var eps = Tensor.Zeros(m.Device, n, m.Channels, m.Height, m.Width);
        m.PredictEpsilon(tx, timesteps, eps);
        return eps.ToHost();
    }

    [TestCaseSource(nameof(Models))]
    public void OneTimestep_IsNCopies_AndPerItemTimestepsArePerItem(string name)
    {
        var owned = new List<IDisposable>();
        try
        {
            var m = Create(name, owned);
            int d = m.Channels * m.Height * m.Width;
            var x = TestData.Random(N * d, 7, 1.5f);
            Assert.That(Predict(m, x, [250f]), Is.EqualTo(Predict(m, x, [250f, 250f, 250f])));
            float[] t = [10f, 500f, 900.5f];
            var batch = Predict(m, x, t);
            for (int n = 0; n < N; n++)
                Assert.That(batch[(n * d)..((n + 1) * d)], Is.EqualTo(Predict(m, x[(n * d)..((n + 1) * d)], [t[n]])), $"item {n}");
        }
        finally
        {
            foreach (var o in Enumerable.Reverse(owned)) o.Dispose();
        }
    }

    [TestCaseSource(nameof(Models))]
    public void OtherCounts_AreAnArgumentExceptionNamingBoth(string name)
    {
        var owned = new List<IDisposable>();
        try
        {
            var m = Create(name, owned);
            var x = TestData.Random(N * m.Channels * m.Height * m.Width, 8);
            foreach (var t in new[] { Array.Empty<float>(), [1f, 2f], [1f, 2f, 3f, 4f] })
            {
                var e = Assert.Throws<ArgumentException>(() => Predict(m, x, t))!;
                Assert.That(e.Message, Does.Contain($"{t.Length} timesteps for a batch of {N}"));
            }
        }
        finally
        {
            foreach (var o in Enumerable.Reverse(owned)) o.Dispose();
        }
    }

    [Test]
    public void Priors_VjpFollowsTheSameContract()
    {
        var dev = TestDevices.Cpu;
        using var g = new GaussianPrior(dev, 1, 2, 3, PriorTestData.Full(6, 2), Schedule);
        using var mix = new GaussianMixturePrior(dev, 1, 2, 3, PriorTestData.Mixture(2, 6, 3), Schedule);
        foreach (IDifferentiableScoreModel m in new IDifferentiableScoreModel[] { g, mix })
        {
            using var x = Tensor.FromHost(dev, TestData.Random(N * 6, 1), N, 1, 2, 3);
            using var v = Tensor.FromHost(dev, TestData.Random(N * 6, 2), N, 1, 2, 3);
            using var e1 = Tensor.Zeros(dev, N, 1, 2, 3);
            using var g1 = Tensor.Zeros(dev, N, 1, 2, 3);
            using var e3 = Tensor.Zeros(dev, N, 1, 2, 3);
            using var g3 = Tensor.Zeros(dev, N, 1, 2, 3);
            m.EpsilonVjp(x, [400f], v, e1, g1);
            m.EpsilonVjp(x, [400f, 400f, 400f], v, e3, g3);
            Assert.That((e1.ToHost(), g1.ToHost()), Is.EqualTo((e3.ToHost(), g3.ToHost())));
            Assert.Throws<ArgumentException>(() => m.EpsilonVjp(x, [1f, 2f], v, e1, g1));
        }
    }

    [Test]
    public void Require_AcceptsNOrOne()
    {
        Assert.DoesNotThrow(() => ScoreModelTimesteps.Require([1f, 2f, 3f], 3));
        Assert.DoesNotThrow(() => ScoreModelTimesteps.Require([1f], 3));
        Assert.DoesNotThrow(() => ScoreModelTimesteps.Require([], 0));
        var e = Assert.Throws<ArgumentException>(() => ScoreModelTimesteps.Require([1f, 2f], 3, "my model"))!;
        Assert.That(e.Message, Does.StartWith("my model: 2 timesteps for a batch of 3"));
        Assert.That(ScoreModelTimesteps.Of([5f], 2), Is.EqualTo(5f));
        Assert.That(ScoreModelTimesteps.Of([5f, 6f, 7f], 2), Is.EqualTo(7f));
    }
}

using NUnit.Framework;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;
using PosteriorGpu.Models.Priors;
using PosteriorGpu.Models.Schedules;

namespace PosteriorGpu.Tests.Priors;

public class GaussianPriorTests
{
    private static IEnumerable<TestCaseData> Priors()
    {
        yield return new TestCaseData("full", new[] { 2, 3, 5 }).SetArgDisplayNames("full [2,3,5]");
        yield return new TestCaseData("diagonal", new[] { 1, 1, 7 }).SetArgDisplayNames("diagonal [1,1,7]");
        yield return new TestCaseData("lowrank", new[] { 3, 4, 4 }).SetArgDisplayNames("low-rank+diag [3,4,4]");
        yield return new TestCaseData("full", new[] { 1, 1, 1 }).SetArgDisplayNames("full [1,1,1]");
    }

    private static GaussianDistribution Make(string kind, int d, int seed) => kind switch
    {
        "full" => PriorTestData.Full(d, seed),
        "diagonal" => PriorTestData.Diagonal(d, seed),
        _ => PriorTestData.LowRank(d, 3, seed),
    };

    /// <summary>Runs the prior on x ([N, C, H, W] floats) and returns eps.</summary>
    internal static float[] DeviceEpsilon(IScoreModel model, float[] x, float[] timesteps)
    {
        var dev = TestDevices.Cpu;
        int d = model.Channels * model.Height * model.Width;
        using var tx = Tensor.FromHost(dev, x, x.Length / d, model.Channels, model.Height, model.Width);
        using var te = Tensor.Empty(dev, tx.Shape);
        model.PredictEpsilon(tx, timesteps, te);
        return te.ToHost();
    }

    [TestCaseSource(nameof(Priors))]
    public void Epsilon_MatchesDoubleReference_PerItemLevels(string kind, int[] chw)
    {
        int d = chw[0] * chw[1] * chw[2];
        var dist = Make(kind, d, 11);
        using var prior = new GaussianPrior(TestDevices.Cpu, chw[0], chw[1], chw[2], dist, PriorTestData.Linear);
        var t = PriorTestData.MixedTimesteps;
        var x = PriorTestData.Noised(dist.Sample(t.Length, 3), d, t, PriorTestData.Linear, 4);
        var eps = DeviceEpsilon(prior, x, t);
        var reference = prior.EpsilonReference(x, t);
        TestData.AssertClose(eps, PriorTestData.ToFloat(reference), 1e-4, $"{kind} eps");
        for (int n = 0; n < t.Length; n++)
        {
            // Item t = 0 (a = 1) has eps exactly 0; check the others one by one.
            if (t[n] == 0) { Assert.That(eps.AsSpan(n * d, d).ToArray(), Is.All.EqualTo(0f)); continue; }
            TestData.AssertClose(eps.AsSpan(n * d, d), PriorTestData.ToFloat(reference[(n * d)..((n + 1) * d)]), 1e-4, $"{kind} eps item {n} (t = {t[n]})");
        }
    }

    [Test]
    public void Epsilon_OneTimestepForAll_BatchOne()
    {
        var dist = PriorTestData.Full(12, 5);
        using var prior = new GaussianPrior(TestDevices.Cpu, 3, 2, 2, dist, PriorTestData.Linear);
        float[] t = [400f];
        var x = PriorTestData.Noised(dist.Sample(1, 6), 12, t, PriorTestData.Linear, 7);
        TestData.AssertClose(DeviceEpsilon(prior, x, t), PriorTestData.ToFloat(prior.EpsilonReference(x, t)), 1e-4, "batch 1");
        var x3 = PriorTestData.Noised(dist.Sample(3, 8), 12, t, PriorTestData.Linear, 9);
        TestData.AssertClose(DeviceEpsilon(prior, x3, t), PriorTestData.ToFloat(prior.EpsilonReference(x3, t)), 1e-4, "one timestep for 3 items");
    }

    [Test]
    public void DiagonalFastPath_EqualsFullPath()
    {
        var diag = PriorTestData.Diagonal(9, 21);
        var full = GaussianDistribution.Full(diag.Mean.ToArray(), diag.Covariance.Clone());
        using var a = new GaussianPrior(TestDevices.Cpu, 1, 3, 3, diag, PriorTestData.Linear);
        using var b = new GaussianPrior(TestDevices.Cpu, 1, 3, 3, full, PriorTestData.Linear);
        var t = PriorTestData.MixedTimesteps;
        var x = PriorTestData.Noised(diag.Sample(t.Length, 1), 9, t, PriorTestData.Linear, 2);
        TestData.AssertClose(DeviceEpsilon(a, x, t), DeviceEpsilon(b, x, t), 1e-5, "diagonal vs full");
    }

    [TestCase(0.1f)]
    [TestCase(500f)]
    [TestCase(900f)]
    public void Score_MatchesFiniteDifferencesOfLogDensity(float t)
    {
        var dist = PriorTestData.Full(10, 31);
        using var prior = new GaussianPrior(TestDevices.Cpu, 1, 2, 5, dist, PriorTestData.Linear);
        double a = PriorTestData.LinearAlphaBar(t);
        var x = PriorTestData.Noised(dist.Sample(2, 1), 10, [t], PriorTestData.Linear, 2);
        var eps = DeviceEpsilon(prior, x, [t]);
        var marginal = dist.AtNoiseLevel(a);
        float factor = ScoreConversion.EpsilonToScoreFactor(a);
        for (int n = 0; n < 2; n++)
        {
            var xi = PriorTestData.Row(x, n, 10);
            var fd = FiniteDifferenceGradient(v => marginal.LogDensity(v), xi, 1e-5);
            var score = eps.AsSpan(n * 10, 10).ToArray().Select(e => e * factor).ToArray();
            TestData.AssertClose(score, PriorTestData.ToFloat(fd), 1e-4, $"score vs finite differences, a = {a}, item {n}");
        }
    }

    [Test]
    public void Score_AtLevelNearOne_ApproachesCleanScore()
    {
        var dist = PriorTestData.Full(10, 41);
        using var prior = new GaussianPrior(TestDevices.Cpu, 1, 1, 10, dist, PriorTestData.Linear);
        float t = 0.001f; // a = 1 - 1e-6
        double a = PriorTestData.LinearAlphaBar(t);
        var x = PriorTestData.ToFloat(dist.Sample(1, 3).Select(v => (double)v).ToArray());
        var eps = DeviceEpsilon(prior, x, [t]);
        var score = eps.Select(e => e * ScoreConversion.EpsilonToScoreFactor(a)).ToArray();
        var clean = dist.Score(PriorTestData.Row(x, 0, 10));
        TestData.AssertClose(score, PriorTestData.ToFloat(clean), 1e-4, "score at a = 1 - 1e-6 vs clean score");
    }

    [Test]
    public void InterpolatedSchedule_FractionalTimesteps()
    {
        var schedule = NoiseSchedule.Linear(1000, 1e-4, 0.02);
        var alphaBar = AlphaBar.Interpolated(schedule.AlphasCumprodDouble);
        Assert.That(alphaBar(10), Is.EqualTo(schedule.AlphasCumprodDouble[10]));
        Assert.That(alphaBar(10.25), Is.EqualTo(0.75 * schedule.AlphasCumprodDouble[10] + 0.25 * schedule.AlphasCumprodDouble[11]).Within(1e-15));
        Assert.That(alphaBar(999), Is.EqualTo(schedule.AlphasCumprodDouble[999]));
        Assert.Throws<ArgumentOutOfRangeException>(() => alphaBar(999.5));
        Assert.Throws<ArgumentOutOfRangeException>(() => alphaBar(-0.1));
        var dist = PriorTestData.LowRank(16, 2, 51);
        using var prior = new GaussianPrior(TestDevices.Cpu, 1, 4, 4, dist, schedule);
        float[] t = [0f, 10.25f, 499.5f, 998.75f];
        var x = PriorTestData.Noised(dist.Sample(t.Length, 1), 16, t, schedule, 2);
        TestData.AssertClose(DeviceEpsilon(prior, x, t), PriorTestData.ToFloat(prior.EpsilonReference(x, t)), 1e-4, "interpolated schedule");
    }

    [Test]
    public void Rejects_BadInputs()
    {
        var dev = TestDevices.Cpu;
        var dist = PriorTestData.Full(12, 61);
        var ex = Assert.Throws<ArgumentException>(() => new GaussianPrior(dev, 1, 3, 5, dist, PriorTestData.Linear));
        Assert.That(ex!.Message, Does.Contain("[1, 3, 5]").And.Contain("12"));
        using var prior = new GaussianPrior(dev, 1, 3, 4, dist, PriorTestData.Linear);
        using var x = Tensor.Zeros(dev, 2, 1, 4, 3);
        using var e = Tensor.Zeros(dev, 2, 1, 4, 3);
        ex = Assert.Throws<ArgumentException>(() => prior.PredictEpsilon(x, [1f, 2f], e));
        Assert.That(ex!.Message, Does.Contain("[1, 3, 4]").And.Contain("[2, 1, 4, 3]"));
        using var x2 = Tensor.Zeros(dev, 2, 1, 3, 4);
        using var e2 = Tensor.Zeros(dev, 3, 1, 3, 4);
        ex = Assert.Throws<ArgumentException>(() => prior.PredictEpsilon(x2, [1f, 2f], e2));
        Assert.That(ex!.Message, Does.Contain("[2, 1, 3, 4]").And.Contain("[3, 1, 3, 4]"));
        using var e3 = Tensor.Zeros(dev, 2, 1, 3, 4);
        ex = Assert.Throws<ArgumentException>(() => prior.PredictEpsilon(x2, [1f, 2f, 3f], e3));
        Assert.That(ex!.Message, Does.Contain("3 timesteps").And.Contain("batch of 2"));
        var range = Assert.Throws<ArgumentOutOfRangeException>(() => prior.PredictEpsilon(x2, [1f, 2000f], e3));
        Assert.That(range!.Message, Does.Contain("item 1").And.Contain("2000").And.Contain("[0, 1000]"));
    }

    internal static double[] FiniteDifferenceGradient(Func<double[], double> f, double[] x, double h)
    {
        var g = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            var p = (double[])x.Clone();
            var m = (double[])x.Clone();
            p[i] += h;
            m[i] -= h;
            g[i] = (f(p) - f(m)) / (2 * h);
        }
        return g;
    }
}

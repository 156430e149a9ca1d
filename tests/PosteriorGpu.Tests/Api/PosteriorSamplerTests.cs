using NUnit.Framework;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;
using PosteriorGpu.Models.Priors;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Samplers.Posterior;
using PosteriorGpu.Samplers.Unconditional;
using PosteriorGpu.Tests.Posterior;

namespace PosteriorGpu.Tests.Api;

/// <summary>The embedding API end to end on the exact Gaussian problem (d = 64, 16 x 64 A, sigma_y 0.1): the answer,
/// the two ways to call it, progress, cancellation, threads and the errors a caller can make.</summary>
public class PosteriorSamplerTests
{
    private const int Side = GaussianInverseProblem.Side, D = GaussianInverseProblem.D;

    // The analytic prior is exact at every timestep: prior score at t = 0, a schedule like the Gaussian tests'.
    private static readonly AnnealedLangevinOptions Exactish = new() { Levels = 12, StepsPerLevel = 25, PriorSteps = 25, StepScale = 0.3, PriorTimestep = 0 };

    private static float[] Host(Tensor t) => t.ToHost();

    [Test]
    public void AnnealedLangevin_MatchesTheExactPosterior()
    {
        var dev = TestDevices.Cpu;
        using var problem = new GaussianInverseProblem(dev);
        using var model = new DiffusionModel(problem.Prior, problem.Schedule);
        var sampler = new PosteriorSampler(model, problem.Operator, GaussianInverseProblem.SigmaY, Exactish);
        const int chains = 4096;
        using var x = Tensor.Empty(dev, chains, 1, Side, Side);
        sampler.Sample(problem.Y, x, seed: 3);
        double w2 = DistributionDistances.GaussianW2(Host(x), problem.Exact);
        var (floor, tolerance) = problem.Tolerance(chains);
        double priorW2 = DistributionDistances.GaussianW2(problem.Prior.Distribution, problem.Exact);
        TestContext.Out.WriteLine($"W2(PosteriorSampler, exact) = {w2:F4}; floor {floor:F4}; tolerance {tolerance:F4}; prior {priorW2:F4}");
        Assert.That(priorW2, Is.GreaterThan(tolerance), "the tolerance must reject prior samples");
        Assert.That(w2, Is.LessThan(tolerance));
    }

    [TestCase("dpnp")]
    [TestCase("dps")]
    public void OtherMethods_MoveFromThePriorToThePosterior(string method)
    {
        var dev = TestDevices.Cpu;
        using var problem = new GaussianInverseProblem(dev);
        using var model = new DiffusionModel(problem.Prior, problem.Schedule);
        PosteriorMethodOptions options = method == "dpnp"
            ? new DpnpOptions { Iterations = 20, Denoiser = new DenoisingDiffusionOptions { Steps = 3 }, PriorSteps = 10 }
            : new DpsOptions { Steps = 100, StepSize = 0.3 };
        var sampler = new PosteriorSampler(model, problem.Operator, GaussianInverseProblem.SigmaY, options);
        using var x = Tensor.Empty(dev, 1024, 1, Side, Side);
        sampler.Sample(problem.Y, x, seed: 4);
        double w2 = DistributionDistances.GaussianW2(Host(x), problem.Exact);
        double priorW2 = DistributionDistances.GaussianW2(problem.Prior.Distribution, problem.Exact);
        TestContext.Out.WriteLine($"{method}: W2 to the exact posterior {w2:F3}, prior {priorW2:F3}");
        Assert.That(w2, Is.LessThan(priorW2 / 3));
    }

    [Test]
    public void HostAndTensorCalls_AgreeBitwise_AndBatchesSplitExactly()
    {
        var dev = TestDevices.Cpu;
        using var problem = new GaussianInverseProblem(dev);
        using var model = new DiffusionModel(problem.Prior, problem.Schedule);
        var sampler = new PosteriorSampler(model, problem.Operator, GaussianInverseProblem.SigmaY);
        var y = Host(problem.Y);
        float[][] host = sampler.Sample(y, count: 5, seed: 7);
        Assert.That(host, Has.Length.EqualTo(5));
        Assert.That(host.All(s => s.Length == D));

        using var x = Tensor.Empty(dev, 5, 1, Side, Side);
        sampler.Sample(problem.Y, x, seed: 7);
        Assert.That(Host(x), Is.EqualTo(host.SelectMany(s => s).ToArray()), "host arrays and device tensors");

        using var tail = Tensor.Empty(dev, 2, 1, Side, Side);
        sampler.Sample(problem.Y, tail, seed: 7, firstSample: 3);
        Assert.That(Host(tail), Is.EqualTo(host[3].Concat(host[4]).ToArray()), "chains 3 and 4 alone equal chains 3 and 4 of the batch");
        Assert.That(sampler.Sample(y, count: 5, seed: 8)[0], Is.Not.EqualTo(host[0]), "another seed, another sample");
    }

    [Test]
    public void Progress_CountsNetworkEvaluationsInOrder()
    {
        var dev = TestDevices.Cpu;
        using var problem = new GaussianInverseProblem(dev);
        using var model = new DiffusionModel(problem.Prior, problem.Schedule);
        foreach (PosteriorMethodOptions method in new PosteriorMethodOptions[] { new AnnealedLangevinOptions(), new DpnpOptions(), new DpsOptions() })
        {
            var sampler = new PosteriorSampler(model, problem.Operator, GaussianInverseProblem.SigmaY, method);
            var seen = new List<SamplerProgress>();
            sampler.Sample(Host(problem.Y), count: 2, seed: 1, progress: new Recorder(seen));
            Assert.That(seen, Is.Not.Empty, method.ToString());
            Assert.That(seen.Select(p => p.Step), Is.Ordered.Ascending, method.ToString());
            Assert.That(seen.All(p => p.Steps == sampler.EvaluationsPerSample), method.ToString());
            Assert.That(seen[^1].Step, Is.EqualTo(sampler.EvaluationsPerSample), method.ToString());
        }
    }

    [Test]
    public void ConcurrentCalls_EqualSequentialCalls()
    {
        var dev = TestDevices.Cpu;
        using var problem = new GaussianInverseProblem(dev);
        using var model = new DiffusionModel(problem.Prior, problem.Schedule);
        var sampler = new PosteriorSampler(model, problem.Operator, GaussianInverseProblem.SigmaY);
        var y = Host(problem.Y);
        var sequential = Enumerable.Range(0, 4).Select(seed => sampler.Sample(y, count: 3, seed: (ulong)seed)).ToArray();
        var concurrent = new float[4][][];
        Parallel.For(0, 4, new ParallelOptions { MaxDegreeOfParallelism = 4 }, seed => concurrent[seed] = sampler.Sample(y, count: 3, seed: (ulong)seed));
        for (int s = 0; s < 4; s++)
            Assert.That(concurrent[s], Is.EqualTo(sequential[s]), $"seed {s}");
    }

    [Test]
    public void Cancellation_StopsAndReturnsEveryBuffer()
    {
        var dev = TestDevices.Cpu;
        using var problem = new GaussianInverseProblem(dev);
        using var model = new DiffusionModel(problem.Prior, problem.Schedule);
        var sampler = new PosteriorSampler(model, problem.Operator, GaussianInverseProblem.SigmaY, Exactish);
        sampler.Sample(Host(problem.Y), 4, seed: 1);   // the model's own pool and the device scratch reach their size
        long live = dev.LiveBuffers;
        using var cts = new CancellationTokenSource();
        Assert.That(() => sampler.Sample(Host(problem.Y), 4, seed: 1, new Recorder([], () => cts.Cancel()), cts.Token),
            Throws.InstanceOf<OperationCanceledException>());
        Assert.That(dev.LiveBuffers, Is.EqualTo(live));
    }

    [Test]
    public void CallerMistakes_AreNamed()
    {
        var dev = TestDevices.Cpu;
        using var problem = new GaussianInverseProblem(dev);
        using var model = new DiffusionModel(problem.Prior, problem.Schedule);
        var op = problem.Operator;
        float sigma = GaussianInverseProblem.SigmaY;

        Assert.That(() => new PosteriorSampler(model, op, 0f), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("sigma_y"));
        var e = Assert.Throws<InvalidOptionException>(() => new PosteriorSampler(model, op, sigma, new AnnealedLangevinOptions { StepsPerLevel = 0 }))!;
        Assert.That(e.Option, Is.EqualTo("StepsPerLevel"));
        Assert.That(e.Record, Is.EqualTo("AnnealedLangevinOptions"));
        Assert.That(e.Message, Does.Contain("AnnealedLangevinOptions.StepsPerLevel = 0").And.Contain("at least 1"));
        Assert.That(Assert.Throws<InvalidOptionException>(() => new PosteriorSampler(model, op, sigma, new AnnealedLangevinOptions { PriorTimestep = 1000 }))!.Message,
            Does.Contain("0..999"));
        Assert.That(Assert.Throws<InvalidOptionException>(() => new PosteriorSampler(model, op, sigma, new DpnpOptions { Denoiser = new() { Steps = 0 } }))!.Option,
            Is.EqualTo("Denoiser.Steps"));
        Assert.That(Assert.Throws<InvalidOptionException>(() => new PosteriorSampler(model, op, sigma, new DpnpOptions { PriorSampler = "euler" }))!.Message,
            Does.Contain("ddpm, ddim"));
        Assert.That(Assert.Throws<InvalidOptionException>(() => new PosteriorSampler(model, op, sigma, new DpsOptions { StepSize = double.NaN }))!.Option,
            Is.EqualTo("StepSize"));

        using var wrongShape = new CompressedSensingOperator(dev, [1, 4, 4], 3, seed: 1);
        Assert.That(() => new PosteriorSampler(model, wrongShape, sigma), Throws.ArgumentException.With.Message.Contains("[1, 4, 4]").And.Message.Contains("[1, 8, 8]"));
        using var phase = new OneBitOperator(dev, [1, Side, Side], 8, 0.5f, seed: 1);
        Assert.That(() => new PosteriorSampler(model, phase, sigma), Throws.ArgumentException.With.Message.Contains("nonlinear"));
        using var noGradients = new DiffusionModel(new WithoutGradients(problem.Prior), problem.Schedule);
        Assert.That(() => new PosteriorSampler(noGradients, op, sigma, new DpsOptions()),
            Throws.ArgumentException.With.Message.Contains("withGradients"));

        var sampler = new PosteriorSampler(model, op, sigma);
        Assert.That(() => sampler.Sample(new float[GaussianInverseProblem.M + 1], 2), Throws.ArgumentException.With.Message.Contains("16"));
        var nan = Host(problem.Y);
        nan[3] = float.NaN;
        Assert.That(() => sampler.Sample(nan, 2), Throws.ArgumentException.With.Message.Contains("NaN"));
        using var x = Tensor.Empty(dev, 2, 1, 4, 4);
        Assert.That(() => sampler.Sample(problem.Y, x), Throws.ArgumentException.With.Message.Contains("[N, 1, 8, 8]"));
        Assert.That(() => sampler.Measure(new float[3]), Throws.ArgumentException.With.Message.Contains("64"));
    }

    [Test]
    public void Measure_IsTheOperatorPlusSeededNoise()
    {
        var dev = TestDevices.Cpu;
        using var problem = new GaussianInverseProblem(dev);
        using var model = new DiffusionModel(problem.Prior, problem.Schedule);
        var sampler = new PosteriorSampler(model, problem.Operator, GaussianInverseProblem.SigmaY);
        var y = sampler.Measure(problem.Truth, seed: 5);
        var clean = problem.Operator.ForwardReference(problem.Truth);
        var noise = y.Select((v, i) => (double)(v - clean[i])).ToArray();
        Assert.That(sampler.Measure(problem.Truth, seed: 5), Is.EqualTo(y), "a seed gives the same measurement");
        double rms = Math.Sqrt(noise.Average(v => v * v));
        Assert.That(rms, Is.InRange(0.4 * GaussianInverseProblem.SigmaY, 1.8 * GaussianInverseProblem.SigmaY), "noise of size sigma_y");
    }

    private sealed class Recorder(List<SamplerProgress> seen, Action? onReport = null) : IProgress<SamplerProgress>
    {
        public void Report(SamplerProgress value)
        {
            seen.Add(value);
            onReport?.Invoke();
        }
    }

    /// <summary>The prior's epsilon without its vector-Jacobian product: a model DPS cannot use.</summary>
    internal sealed class WithoutGradients(IScoreModel inner) : IScoreModel
    {
        public PosteriorGpu.Kernels.Device.GpuDevice Device => inner.Device;
        public int Channels => inner.Channels;
        public int Height => inner.Height;
        public int Width => inner.Width;
        public void PredictEpsilon(Tensor x, ReadOnlySpan<float> timesteps, Tensor epsilon)
        {
            ScoreModelTimesteps.Require(timesteps, x.N, "without gradients");
            inner.PredictEpsilon(x, timesteps, epsilon);
        }
    }
}

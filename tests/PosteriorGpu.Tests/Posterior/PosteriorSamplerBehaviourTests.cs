using NUnit.Framework;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;
using PosteriorGpu.Samplers.Posterior;
using PosteriorGpu.Samplers.Unconditional;
using PosteriorGpu.Tests.Samplers;

namespace PosteriorGpu.Tests.Posterior;

/// <summary>Determinism, batch invariance, NaN detection and cancellation of the posterior samplers.</summary>
public class PosteriorSamplerBehaviourTests
{
    private static readonly string[] Samplers = ["dpnp-ddim", "dpnp-ddpm", "dps"];

    /// <summary>A short run of a sampler on the exact test problem.</summary>
    private static void Run(string sampler, GaussianInverseProblem p, IScoreModel model, Tensor x, ulong seed, long firstSample = 0,
        IProgress<SamplerProgress>? progress = null, CancellationToken ct = default)
    {
        switch (sampler)
        {
            case "dpnp-ddim":
            case "dpnp-ddpm":
                var kind = sampler == "dpnp-ddim" ? DenoisingSamplerKind.Ddim : DenoisingSamplerKind.Ddpm;
                new DpnpSampler(model, p.Schedule, new DpnpOptions
                {
                    Iterations = 4, ConsistencySteps = 2, PriorSteps = 5,
                    Denoiser = new DenoisingDiffusionOptions { Kind = kind, Steps = 3 },
                }).Sample(x, p.Y, p.Operator, GaussianInverseProblem.SigmaY, seed, firstSample, progress, ct);
                break;
            case "dps":
                new DpsSampler(model, p.Schedule, new DpsOptions { Steps = 4, StepSize = 0.3 })
                    .Sample(x, p.Y, p.Operator, GaussianInverseProblem.SigmaY, seed, firstSample, progress, ct);
                break;
            default:
                throw new ArgumentException(sampler);
        }
    }

    private static float[] Run(string sampler, int chains, ulong seed, long firstSample = 0)
    {
        var dev = TestDevices.Cpu;
        using var p = new GaussianInverseProblem(dev);
        using var x = Tensor.Empty(dev, chains, 1, 8, 8);
        Run(sampler, p, p.Prior, x, seed, firstSample);
        return x.ToHost();
    }

    [TestCaseSource(nameof(Samplers))]
    public void SameSeed_GivesBitwiseIdenticalSamples(string sampler)
    {
        var a = Run(sampler, 5, seed: 11);
        var b = Run(sampler, 5, seed: 11);
        var c = Run(sampler, 5, seed: 12);
        Assert.That(a.All(float.IsFinite));
        Assert.That(b, Is.EqualTo(a));
        Assert.That(c, Is.Not.EqualTo(a));
    }

    [TestCaseSource(nameof(Samplers))]
    public void SampleI_IsTheSameAloneOrInABatch(string sampler)
    {
        var batch = Run(sampler, 4, seed: 7);
        var alone = Run(sampler, 1, seed: 7, firstSample: 2);
        Assert.That(alone, Is.EqualTo(batch.Skip(2 * 64).Take(64).ToArray()));
    }

    internal sealed class NaNAtCall(IDifferentiableScoreModel inner, int badCall) : IDifferentiableScoreModel
    {
        private int calls;
        public GpuDevice Device => inner.Device;
        public int Channels => inner.Channels;
        public int Height => inner.Height;
        public int Width => inner.Width;

        public void PredictEpsilon(Tensor x, ReadOnlySpan<float> timesteps, Tensor epsilon)
        {
            ScoreModelTimesteps.Require(timesteps, x.N, "nan at call");
            inner.PredictEpsilon(x, timesteps, epsilon);
            if (++calls == badCall) epsilon.CopyFrom(Enumerable.Repeat(float.NaN, epsilon.Length).ToArray());
        }

        public void EpsilonVjp(Tensor x, ReadOnlySpan<float> timesteps, Tensor cotangent, Tensor epsilon, Tensor gradient) =>
            inner.EpsilonVjp(x, timesteps, cotangent, epsilon, gradient);
    }

    [TestCaseSource(nameof(Samplers))]
    public void NaNFromTheModel_StopsWithTheSweep(string sampler)
    {
        var dev = TestDevices.Cpu;
        using var p = new GaussianInverseProblem(dev);
        using var x = Tensor.Empty(dev, 3, 1, 8, 8);
        // The prior draw takes 5 calls and each sweep 4: call 5 + 4 + 2 is in sweep 2.
        // DPS makes one PredictEpsilon call per step (its VJP is another method): call 2 is in step 2.
        var ex = Assert.Throws<SamplerDivergedException>(() => Run(sampler, p, new NaNAtCall(p.Prior, sampler == "dps" ? 2 : 11), x, 1));
        Assert.That(ex!.Step, Is.EqualTo(2));
        Assert.That(ex.Message, Does.Contain("step 2 of 4").And.Contain(sampler == "dps" ? "dps" : "dpnp"));
    }

    [TestCaseSource(nameof(Samplers))]
    public void Cancellation_StopsAndReturnsEveryBuffer(string sampler)
    {
        var dev = TestDevices.Cpu;
        using var p = new GaussianInverseProblem(dev);
        using var x = Tensor.Empty(dev, 3, 1, 8, 8);
        Run(sampler, p, p.Prior, x, 1);   // fills the caches that outlive runs
        long live = dev.LiveBuffers;
        using var cts = new CancellationTokenSource();
        int last = 0;
        var progress = SyncProgress.Of(q =>
        {
            last = q.Step;
            if (q.Step == 2) cts.Cancel();
        });
        Assert.Throws<OperationCanceledException>(() => Run(sampler, p, p.Prior, x, 1, 0, progress, cts.Token));
        Assert.That(last, Is.EqualTo(2));
        Assert.That(dev.LiveBuffers, Is.EqualTo(live), "the run's pool freed everything");
    }
}

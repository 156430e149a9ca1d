using NUnit.Framework;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;
using PosteriorGpu.Models.Priors;
using PosteriorGpu.Models.Schedules;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Tests.Samplers;

/// <summary>Determinism, batch invariance, NaN detection and cancellation, for every sampler.</summary>
public class SamplerBehaviourTests
{
    private static readonly string[] AllSamplers = [.. SamplerFactory.Names, "ddpm-large"];
    private static readonly NoiseSchedule Schedule = NoiseSchedule.Linear(1000, 1e-4, 0.02);

    private static GaussianPrior Prior(GpuDevice dev)
    {
        var mean = TestData.Random(3 * 4 * 5, 1).Select(v => (double)v).ToArray();
        var variance = TestData.Random(3 * 4 * 5, 2).Select(v => 0.3 + Math.Abs(v)).ToArray();
        return GaussianPrior.Diagonal(dev, 3, 4, 5, mean, variance, Schedule);
    }

    private static float[] Run(GpuDevice dev, string sampler, float[] xT, int batch, ulong seed, long firstSample = 0, double eta = 1)
    {
        using var prior = Prior(dev);
        using var x = Tensor.FromHost(dev, xT, batch, 3, 4, 5);
        SamplerFactory.Create(sampler, prior, Schedule, eta: eta).Sample(x, 12, seed, firstSample);
        return x.ToHost();
    }

    [TestCaseSource(nameof(AllSamplers))]
    public void SameSeed_GivesBitwiseIdenticalSamples(string sampler)
    {
        var xT = TestData.Random(4 * 60, 3, 2f);
        var a = Run(TestDevices.Cpu, sampler, xT, 4, seed: 11);
        var b = Run(TestDevices.Cpu, sampler, xT, 4, seed: 11);
        Assert.That(b, Is.EqualTo(a));
        Assert.That(a.All(float.IsFinite));
        if (sampler is "ddpm" or "ddpm-large" or "ddim")
            Assert.That(Run(TestDevices.Cpu, sampler, xT, 4, seed: 12), Is.Not.EqualTo(a), "a stochastic sampler's noise depends on the seed");
    }

    [TestCase("ddpm")]
    [TestCase("ddim")]
    [TestCase("dpmsolver++2m")]
    public void SampleI_IsTheSameAloneOrInABatch(string sampler)
    {
        var xT = TestData.Random(4 * 60, 4, 2f);
        var batch = Run(TestDevices.Cpu, sampler, xT, 4, seed: 5);
        // Sample 2 of the run drawn on its own: it must get the noise of global sample index 2.
        var alone = Run(TestDevices.Cpu, sampler, xT[120..180], 1, seed: 5, firstSample: 2);
        Assert.That(alone, Is.EqualTo(batch[120..180]));
    }

    [Test]
    public void UNetSample_IsTheSameAloneOrInABatch()
    {
        var dev = TestDevices.Cpu;
        using var model = PosteriorGpu.Models.UNet.UNet2DModel.Load(dev, Fixtures.Path("diffusers-unet-tiny"));
        var xT = TestData.Random(3 * 256, 6);
        float[] Sample(float[] start, int n, long first)
        {
            using var x = Tensor.FromHost(dev, start, n, 1, 16, 16);
            new DdpmSampler(model, Schedule).Sample(x, 3, seed: 9, firstSample: first);
            return x.ToHost();
        }
        var batch = Sample(xT, 3, 0);
        var alone = Sample(xT[256..512], 1, 1);
        // The network computes each item independently, so the match is exact up to float rounding.
        TestData.AssertClose(alone, batch[256..512], 1e-6, "sample 1 alone vs in a batch of 3");
    }

    [Test, Category("Gpu")]
    public void SameSeed_OnCpuAndGpu_AgreesToFloatRounding()
    {
        var xT = TestData.Random(4 * 60, 10, 2f);
        foreach (var sampler in AllSamplers)
        {
            var cpu = Run(TestDevices.Cpu, sampler, xT, 4, seed: 21);
            var gpu = Run(TestDevices.Gpu, sampler, xT, 4, seed: 21);
            TestData.AssertClose(gpu, cpu, 1e-5, $"{sampler}: cuda vs cpu, same seed");
        }
        using var cpuModel = PosteriorGpu.Models.UNet.UNet2DModel.Load(TestDevices.Cpu, Fixtures.Path("diffusers-unet-tiny"));
        using var gpuModel = PosteriorGpu.Models.UNet.UNet2DModel.Load(TestDevices.Gpu, Fixtures.Path("diffusers-unet-tiny"));
        var start = TestData.Random(2 * 256, 11);
        float[] Ddpm(PosteriorGpu.Models.UNet.UNet2DModel m)
        {
            using var x = Tensor.FromHost(m.Device, start, 2, 1, 16, 16);
            new DdpmSampler(m, Schedule).Sample(x, 20, seed: 4);
            return x.ToHost();
        }
        TestData.AssertClose(Ddpm(gpuModel), Ddpm(cpuModel), 1e-4, "ddpm with the fixture U-Net: cuda vs cpu, same seed");
    }

    internal sealed class NaNAtStep(IScoreModel inner, int badCall) : IScoreModel
    {
        private int calls;
        public GpuDevice Device => inner.Device;
        public int Channels => inner.Channels;
        public int Height => inner.Height;
        public int Width => inner.Width;

        public void PredictEpsilon(Tensor x, ReadOnlySpan<float> timesteps, Tensor epsilon)
        {
            ScoreModelTimesteps.Require(timesteps, x.N, "nan at step");
            inner.PredictEpsilon(x, timesteps, epsilon);
            if (++calls == badCall) epsilon.CopyFrom(Enumerable.Repeat(float.NaN, epsilon.Length).ToArray());
        }
    }

    [TestCaseSource(nameof(AllSamplers))]
    public void NaNFromTheModel_StopsWithTheStep(string sampler)
    {
        var dev = TestDevices.Cpu;
        using var prior = Prior(dev);
        using var x = Tensor.FromHost(dev, TestData.Random(60, 7), 1, 3, 4, 5);
        var s = SamplerFactory.Create(sampler, new NaNAtStep(prior, 3), Schedule);
        var ex = Assert.Throws<SamplerDivergedException>(() => s.Sample(x, 10, 1));
        Assert.That(ex!.Step, Is.EqualTo(3));
        Assert.That(ex.Message, Does.Contain("step 3 of 10").And.Contain(s.Name));
    }

    [Test]
    public void Cancellation_StopsBetweenStepsAndReturnsEveryBuffer()
    {
        var dev = TestDevices.Cpu;
        using var prior = Prior(dev);
        using var x = Tensor.FromHost(dev, TestData.Random(60, 8), 1, 3, 4, 5);
        // A first run fills the caches that outlive runs (the prior's pool, the device's scratch area).
        new LiAcceleratedSampler(prior, Schedule).Sample(x, 3, 1);
        long live = dev.LiveBuffers;
        using var cts = new CancellationTokenSource();
        int last = 0;
        var progress = SyncProgress.Of(p =>
        {
            last = p.Step;
            if (p.Step == 2) cts.Cancel();
        });
        Assert.Throws<OperationCanceledException>(() => new LiAcceleratedSampler(prior, Schedule).Sample(x, 10, 1, 0, progress, cts.Token));
        Assert.That(last, Is.EqualTo(2));
        Assert.That(dev.LiveBuffers, Is.EqualTo(live), "the run's pool freed everything");
    }

    [TestCase("ddim")]
    [TestCase("ddpm")]
    [TestCase("li-accelerated")]
    public void SampleFrom_TheFullTimestepList_EqualsSample(string sampler)
    {
        // With leading spacing each step of Sample lands on the next timestep, as SampleFrom's do.
        var xT = TestData.Random(2 * 60, 12, 2f);
        var whole = Run(TestDevices.Cpu, sampler, xT, 2, seed: 8);
        using var prior = Prior(TestDevices.Cpu);
        using var x = Tensor.FromHost(TestDevices.Cpu, xT, 2, 3, 4, 5);
        var s = SamplerFactory.Create(sampler, prior, Schedule, eta: 1);
        s.SampleFrom(x, Schedule.Timesteps(12), seed: 8);
        Assert.That(x.ToHost(), Is.EqualTo(whole));
        Assert.That(Assert.Throws<ArgumentException>(() => s.SampleFrom(x, [10, 20], 1))!.Message, Does.Contain("decrease"));
    }

    [TestCase(100, 50)]
    [TestCase(300, 100)]
    public void DdpmSampleFrom_DrawsTheExactDenoisingPosterior(int start, int steps)
    {
        // From x_t at timestep t, ancestral sampling with the exact score draws p(x_0 | x_t), which for a
        // Gaussian prior is Gaussian per coordinate: precision 1/var + a/(1 - a), mean
        // (mu/var + sqrt(a) x_t / (1 - a)) / precision. (Plug-and-play samplers rely on this step.) The
        // means are exact; the variances carry DDPM's O(beta) discretisation bias (fixed_small is the
        // reverse variance of a point mass, not of a Gaussian), so they get a relative bound.
        var dev = TestDevices.Cpu;
        using var prior = Prior(dev);
        const int n = 2000, d = 60;
        double a = Schedule.AlphaCumprod(start);
        var xt = TestData.Random(d, 13, 1.5f);
        var start0 = Enumerable.Range(0, n).SelectMany(_ => xt).ToArray();
        using var x = Tensor.FromHost(dev, start0, n, 3, 4, 5);
        var timesteps = Enumerable.Range(0, steps).Select(i => (int)Math.Round(start * (1 - (double)i / steps))).Distinct().ToArray();
        new DdpmSampler(prior, Schedule).SampleFrom(x, timesteps, seed: 5);
        var s = x.ToHost();
        double meanChi = 0, varRel = 0;
        for (int j = 0; j < d; j++)
        {
            double mu = prior.Distribution.Mean[j], v = prior.Distribution.Covariance[j, j];
            double precision = 1 / v + a / (1 - a);
            double postVar = 1 / precision, postMean = (mu / v + Math.Sqrt(a) * xt[j] / (1 - a)) / precision;
            double m = 0, q = 0;
            for (int k = 0; k < n; k++) m += s[k * d + j];
            m /= n;
            for (int k = 0; k < n; k++) q += Math.Pow(s[k * d + j] - m, 2);
            q /= n - 1;
            meanChi += Math.Pow((m - postMean) / Math.Sqrt(postVar / n), 2);
            varRel += Math.Abs(q / postVar - 1) / d;
        }
        TestContext.Out.WriteLine($"from t = {start} in {timesteps.Length} steps: chi-square of means {meanChi:F1} (60 dof), " +
                                  $"mean relative variance error {varRel:P2} (sampling error alone about 2.5%)");
        // 60 degrees of freedom: the 99.9% quantile is about 100.
        Assert.That(meanChi, Is.LessThan(100), "means");
        // Measured: 7.4% from t = 100 in 50 steps, 4.6% from t = 300 in 100 (a wrong variance formula is off by far more).
        Assert.That(varRel, Is.LessThan(0.10), "variances");
    }

    [Test]
    public void UnknownSamplerAndWrongShapes_AreClearErrors()
    {
        var dev = TestDevices.Cpu;
        using var prior = Prior(dev);
        Assert.That(Assert.Throws<ArgumentException>(() => SamplerFactory.Create("euler-maruyama", prior, Schedule))!.Message,
            Does.Contain("euler-maruyama").And.Contain("ddim"));
        using var x = Tensor.Zeros(dev, 1, 1, 4, 5);
        Assert.That(Assert.Throws<ArgumentException>(() => new DdimSampler(prior, Schedule).Sample(x, 5, 1))!.Message,
            Does.Contain("[1, 1, 4, 5]"));
        using var ok = Tensor.Zeros(dev, 1, 3, 4, 5);
        Assert.Throws<ArgumentOutOfRangeException>(() => new DdimSampler(prior, Schedule).Sample(ok, 0, 1));
    }

    [Test]
    public void Ddpm_ManySteps_ReachesThePrior()
    {
        // Ancestral sampling with the exact score: sample moments approach N(mu, var) (statistical tolerance).
        var dev = TestDevices.Cpu;
        using var prior = Prior(dev);
        const int n = 400;
        var xT = new float[n * 60];
        var draw = new PosteriorGpu.Kernels.Random.RandomDraw(77, 0, 0);
        for (int i = 0; i < xT.Length; i++) xT[i] = draw.Normal(i);
        using var x = Tensor.FromHost(dev, xT, n, 3, 4, 5);
        new DdpmSampler(prior, Schedule).Sample(x, 200, seed: 3);
        var s = x.ToHost();
        double meanErr = 0, varErr = 0;
        for (int j = 0; j < 60; j++)
        {
            double m = 0, v = 0;
            for (int k = 0; k < n; k++) m += s[k * 60 + j];
            m /= n;
            for (int k = 0; k < n; k++) v += Math.Pow(s[k * 60 + j] - m, 2);
            v /= n - 1;
            double mu = prior.Distribution.Mean[j], sigma2 = prior.Distribution.Covariance[j, j];
            meanErr += Math.Pow((m - mu) / Math.Sqrt(sigma2 / n), 2);
            varErr += Math.Pow((v - sigma2) / (sigma2 * Math.Sqrt(2.0 / n)), 2);
        }
        // Sums of 60 squared z-scores: chi-square with 60 degrees of freedom, 99.9% quantile about 100.
        Assert.That(meanErr, Is.LessThan(100), "means");
        Assert.That(varErr, Is.LessThan(100), "variances");
    }
}

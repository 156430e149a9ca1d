using NUnit.Framework;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Samplers.Posterior;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Tests.Reliability;

/// <summary>
/// Same seed, same device, same options: bitwise the same output, for every sampler, whatever ran on the
/// device in between (the scratch area and the pools then hold other data). A new sampler is one more
/// entry in <see cref="Cases"/>: a run from a seed to host floats, and whether the seed changes it.
/// </summary>
public class DeterminismTests
{
    /// <summary>One sampler run: everything it needs is made inside from the device and the seed.</summary>
    public sealed record DeterminismCase(string Name, bool Stochastic, Func<GpuDevice, ulong, float[]> Run)
    {
        /// <inheritdoc/>
        public override string ToString() => Name;
    }

    private const int Side = 4, D = Side * Side;

    private static float[] Unconditional(GpuDevice dev, string name, ulong seed)
    {
        using var prior = CheapPriors.Gaussian(dev, 2, Side, Side);
        using var x = Tensor.FromHost(dev, TestData.Random(3 * 2 * D, 4, 2f), 3, 2, Side, Side);
        SamplerFactory.Create(name, prior, CheapPriors.Schedule, eta: 1).Sample(x, 8, seed);
        return x.ToHost();
    }

    private static float[] Langevin(GpuDevice dev, ulong seed, bool local, bool yPerChain)
    {
        using var prior = CheapPriors.Gaussian(dev);
        using var op = new CompressedSensingOperator(dev, [1, Side, Side], 6, seed: 2);
        int n = 3;
        using var y = Tensor.FromHost(dev, TestData.Random(yPerChain ? n * 6 : 6, 5), yPerChain ? n : 1, 6);
        using var x = Tensor.Empty(dev, n, 1, Side, Side);
        var sampler = new AnnealedLangevinSampler(prior, CheapPriors.Schedule,
            new AnnealedLangevinOptions { Levels = 3, StepsPerLevel = 5, PriorSteps = 5, StepScale = 0.3 });
        if (!local) sampler.Sample(x, y, op, 0.1f, seed);
        else
        {
            using var tilde = Tensor.FromHost(dev, TestData.Random(D, 6), 1, 1, Side, Side);
            sampler.SampleLocal(x, y, op, 0.1f, tilde, 0.3f, seed);
        }
        return x.ToHost();
    }

    /// <summary>Every sampler. Add new ones here (DPnP, DPS, ...).</summary>
    public static IEnumerable<DeterminismCase> Cases()
    {
        foreach (var name in SamplerFactory.Names.Append("ddpm-large"))
            yield return new DeterminismCase(name, name is "ddpm" or "ddpm-large" or "ddim", (dev, seed) => Unconditional(dev, name, seed));
        yield return new DeterminismCase("ddpm-sample-from", true, (dev, seed) =>
        {
            using var prior = CheapPriors.Gaussian(dev);
            using var x = Tensor.FromHost(dev, TestData.Random(2 * D, 7), 2, 1, Side, Side);
            new DdpmSampler(prior, CheapPriors.Schedule).SampleFrom(x, [400, 250, 90, 10], seed, firstSample: 5, drawOffset: 3);
            return x.ToHost();
        });
        yield return new DeterminismCase("annealed-langevin", true, (dev, seed) => Langevin(dev, seed, local: false, yPerChain: false));
        yield return new DeterminismCase("annealed-langevin-y-per-chain", true, (dev, seed) => Langevin(dev, seed, local: false, yPerChain: true));
        yield return new DeterminismCase("annealed-langevin-local", true, (dev, seed) => Langevin(dev, seed, local: true, yPerChain: false));
        yield return new DeterminismCase("ddpm-unet-fixture", true, (dev, seed) =>
        {
            using var model = PosteriorGpu.Models.UNet.UNet2DModel.Load(dev, Fixtures.Path("diffusers-unet-tiny"));
            using var x = Tensor.FromHost(dev, TestData.Random(2 * 256, 8), 2, 1, 16, 16);
            new DdpmSampler(model, CheapPriors.Schedule).Sample(x, 2, seed);
            return x.ToHost();
        });
    }

    [TestCaseSource(nameof(Cases))]
    public void SameSeed_SameDevice_SameOptions_GiveBitwiseTheSameOutput(DeterminismCase c) => Check(c, TestDevices.Cpu);

    [TestCaseSource(nameof(Cases)), Category("Gpu")]
    public void SameSeed_SameDevice_SameOptions_GiveBitwiseTheSameOutput_OnGpu(DeterminismCase c) => Check(c, TestDevices.Gpu);

    private static void Check(DeterminismCase c, GpuDevice dev)
    {
        var first = c.Run(dev, 11);
        // Other work in between leaves other data in the device scratch area and grows it.
        Unconditional(dev, "dpmsolver++2m", 99);
        using (var big = Tensor.FromHost(dev, TestData.Random(64 * 256, 1), 64, 256))
        using (var norms = Tensor.Empty(dev, 64))
            PosteriorGpu.Kernels.Reductions.BatchReduce.SquaredNorm(big, norms);
        var second = c.Run(dev, 11);
        Assert.That(first.All(float.IsFinite), "finite output");
        Assert.That(second, Is.EqualTo(first), $"{c.Name}: bitwise the same on {dev.Description}");
        if (c.Stochastic)
            Assert.That(c.Run(dev, 12), Is.Not.EqualTo(first), $"{c.Name}: the seed must matter (else this test proves nothing)");
    }
}

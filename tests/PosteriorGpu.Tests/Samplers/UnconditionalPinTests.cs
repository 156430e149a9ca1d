using NUnit.Framework;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.Priors;
using PosteriorGpu.Models.Schedules;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Tests.Samplers;

/// <summary>Pins a few output values of every unconditional sampler without clipping or thresholding, recorded
/// before clip_sample and thresholding were implemented, so the default path cannot change silently.</summary>
public class UnconditionalPinTests
{
    private static readonly NoiseSchedule Schedule = NoiseSchedule.Linear(1000, 1e-4, 0.02);

    internal static float[] Run(string sampler, double eta)
    {
        var dev = TestDevices.Cpu;
        var mean = TestData.Random(3 * 4 * 5, 1).Select(v => (double)v).ToArray();
        var variance = TestData.Random(3 * 4 * 5, 2).Select(v => 0.3 + Math.Abs(v)).ToArray();
        using var prior = GaussianPrior.Diagonal(dev, 3, 4, 5, mean, variance, Schedule);
        using var x = Tensor.FromHost(dev, TestData.Random(2 * 60, 21, 2f), 2, 3, 4, 5);
        SamplerFactory.Create(sampler, prior, Schedule, eta: eta).Sample(x, 12, 7, 3);
        return x.ToHost();
    }

    // Recorded at commit 9b0e515 (before clip_sample / thresholding): items 0, 17, 59 and 119 as float32 bits and
    // the sum of all 120 values in double. DDIM with eta = 1 and DDPM agree bit for bit (same float coefficients).
    [TestCase("ddpm", 0.0, 0x3EACEEC8u, 0x3FBCD665u, 0x3EAB50E0u, 0x3EC65401u, 12.850011615082622)]
    [TestCase("ddpm-large", 0.0, 0x3EEB6923u, 0x400EFE55u, 0x3D2C1527u, 0x3EB0F8F3u, 17.920455516665243)]
    [TestCase("ddim", 0.0, 0x3DF6865Cu, 0xBFA36975u, 0x3ED48687u, 0xBF085E4Eu, 8.376366766169667)]
    [TestCase("ddim", 1.0, 0x3EACEEC8u, 0x3FBCD665u, 0x3EAB50E0u, 0x3EC65401u, 12.850011615082622)]
    [TestCase("pf-ode", 0.0, 0x3FC7E678u, 0xC098D33Bu, 0x3FBC5D70u, 0xBFE0EC26u, 21.03469738177955)]
    [TestCase("li-accelerated", 0.0, 0x3F096FBAu, 0xC0126479u, 0x3F3823A0u, 0xBF62A0EFu, 11.955707364715636)]
    [TestCase("dpmsolver++2m", 0.0, 0x3ED414D1u, 0xBFFEFB16u, 0x3F231969u, 0xBF4A3E32u, 11.42265526173287)]
    public void DefaultOutput_IsBitwiseAsRecorded(string sampler, double eta, uint v0, uint v17, uint v59, uint v119, double sum)
    {
        var r = Run(sampler, eta);
        Assert.That(new[] { r[0], r[17], r[59], r[119] }.Select(BitConverter.SingleToUInt32Bits), Is.EqualTo(new[] { v0, v17, v59, v119 }));
        Assert.That(r.Sum(v => (double)v), Is.EqualTo(sum));
    }
}

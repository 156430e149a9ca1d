using NUnit.Framework;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Samplers.Posterior;

namespace PosteriorGpu.Tests.Posterior;

/// <summary>
/// The alternatives the defaults were chosen against, on the same exact checks as <see cref="DefaultOptionsExactTests"/>
/// (docs/posterior-defaults.md). Explicit: a study, not a test; run it with
/// tests/PosteriorGpu.Tests/bin/Release/net10.0/PosteriorGpu.Tests --filter "FullyQualifiedName~DefaultOptionsVariantsStudy" --output detailed
/// </summary>
[Explicit("a study of alternative defaults (minutes on 2 cores); docs/posterior-defaults.md")]
public class DefaultOptionsVariantsStudy
{
    private static readonly Dictionary<string, PosteriorMethodOptions> Variants = new()
    {
        ["annealed-langevin, step scale 0.1"] = new AnnealedLangevinOptions { StepScale = 0.1 },
        ["dpnp, unadjusted, eta down to 0.01"] = new DpnpOptions { Metropolis = false },
        ["dpnp, unadjusted, eta down to 0.03"] = new DpnpOptions { Metropolis = false, EtaMin = 0.03 },
        ["dps (biased baseline)"] = new DpsOptions(),
    };

    [Test]
    public void Measure([ValueSource(nameof(Names))] string variant, [Values("identity-1", "identity-64", "correlated-32")] string name)
    {
        var dev = TestDevices.Cpu;
        using var c = ExactGaussianCase.Create(dev, name);
        const int chains = 4096;
        using var x = Tensor.Empty(dev, chains, c.Shape[0], c.Shape[1], c.Shape[2]);
        Variants[variant].CreateSampler(c.Prior, c.Schedule).Sample(x, c.Y, c.Operator, ExactGaussianCase.SigmaY, seed: 3);
        TestContext.Out.WriteLine($"{variant}: {c.Judge(x.ToHost(), chains)}");
    }

    private static IEnumerable<string> Names() => Variants.Keys;
}

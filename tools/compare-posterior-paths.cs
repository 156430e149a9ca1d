using System.Security.Cryptography;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.Priors;
using PosteriorGpu.Models.Schedules;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Samplers.Posterior;

// Posterior paths the command line does not reach (Metropolis-adjusted DPnP, one-bit's own log-likelihood, DPS's
// likelihood rule), printed as a hash of the samples and the acceptance rate, to compare two builds bitwise.
using var dev = GpuDevice.Open(DeviceKind.Cpu);
var schedule = NoiseSchedule.Linear(1000, 1e-4, 0.02);
var rng = new Random(3);
int side = 8, d = side * side;
var mean = Enumerable.Range(0, d).Select(_ => rng.NextDouble() - 0.5).ToArray();
var variance = Enumerable.Range(0, d).Select(_ => 0.3 + rng.NextDouble()).ToArray();
using var prior = GaussianPrior.Diagonal(dev, 1, side, side, mean, variance, schedule);
using var cs = new CompressedSensingOperator(dev, [1, side, side], 16, seed: 5);
using var onebit = new OneBitOperator(dev, [1, side, side], 24, 0.5f, seed: 7);
var yHost = Enumerable.Range(0, 24).Select(i => (float)Math.Sin(i * 1.7)).ToArray();
using var yCs = Tensor.FromHost(dev, yHost.Take(16).ToArray(), 1, 16);
using var yBit = Tensor.FromHost(dev, yHost.Select(v => v >= 0 ? 1f : -1f).ToArray(), 1, 24);
void Run(string name, IPosteriorSampler s, IForwardOperator op, Tensor y, float sigmaY)
{
    using var x = Tensor.Empty(dev, 3, 1, side, side);
    var run = s.Sample(x, y, op, sigmaY, seed: 11, firstSample: 1);
    var bytes = x.ToHost().SelectMany(BitConverter.GetBytes).ToArray();
    Console.WriteLine($"{name}: {Convert.ToHexString(SHA256.HashData(bytes))[..16]} acceptance {run.AcceptanceRate?.ToString("R") ?? "-"}");
}
var mala = new DpnpOptions { Iterations = 5, ConsistencySteps = 4, Metropolis = true, PriorSteps = 4, Denoiser = new DenoisingDiffusionOptions { Steps = 2 } };
Run("dpnp-mala-cs", new DpnpSampler(prior, schedule, mala), cs, yCs, 0.1f);
Run("dpnp-mala-onebit", new DpnpSampler(prior, schedule, mala with { OperatorNormSquared = 24 }), onebit, yBit, 0.3f);
Run("dpnp-ula-cs", new DpnpSampler(prior, schedule, mala with { Metropolis = false }), cs, yCs, 0.1f);
Run("lgd-mc-onebit", new LgdMcSampler(prior, schedule, new LgdMcOptions { Steps = 20, StepSize = 0.3, Particles = 5 }), onebit, yBit, 0.3f);
Run("lgd-mc-cs", new LgdMcSampler(prior, schedule, new LgdMcOptions { Steps = 20, StepSize = 0.3, Particles = 5, Rule = DpsStepRule.Likelihood }), cs, yCs, 0.1f);
Run("dps-likelihood", new DpsSampler(prior, schedule, new DpsOptions { Steps = 20, StepSize = 0.3, Rule = DpsStepRule.Likelihood }), cs, yCs, 0.1f);
Run("dps-residual", new DpsSampler(prior, schedule, new DpsOptions { Steps = 20, StepSize = 0.3 }), cs, yCs, 0.1f);
Run("annealed-langevin-1x3", new AnnealedLangevinSampler(prior, schedule, new AnnealedLangevinOptions { Levels = 7, StepsPerLevel = 3, PriorSteps = 4 }), cs, yCs, 0.1f);
Run("annealed-langevin-20", new AnnealedLangevinSampler(prior, schedule, new AnnealedLangevinOptions { Levels = 2, StepsPerLevel = 20, PriorSteps = 4 }), cs, yCs, 0.1f);

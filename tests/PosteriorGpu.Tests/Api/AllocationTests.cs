using NUnit.Framework;
using PosteriorGpu.Samplers.Posterior;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Samplers.Unconditional;
using PosteriorGpu.Tests.Cli;

namespace PosteriorGpu.Tests.Api;

/// <summary>
/// Steady state allocates no per-element memory: the managed bytes that 100 sampler steps allocate on the calling thread
/// (GC.GetAllocatedBytesForCurrentThread), after a warm-up run, are measured as the difference between a run of
/// S + 100 steps and a run of S steps (per-call setup is the same in both and cancels), and bounded by
/// <see cref="LaunchAllowance"/> bytes per kernel launch (launches counted by <see cref="GpuDevice.KernelLookups"/>) plus
/// <see cref="Slack"/>. Per launch there are small objects: ILGPU's CPU accelerator allocates a task object in every
/// launch (measured: 144 bytes for a 6-argument kernel, 227 on average over a U-Net forward pass), and the U-Net pass
/// rents and slices Tensor objects (on the GPU's paths, where ILGPU's CUDA launcher allocates nothing, 97 bytes a launch
/// for S32: UNetLaunchCountTests.S32ForwardPass_OnTheGpuPaths_AllocatesWithinItsBudget). A host array of a tensor's
/// size per step, or a string or closure per launch on top of those, fails the bound.
/// </summary>
public class AllocationTests
{
    /// <summary>Bytes a kernel launch may allocate: ILGPU's CPU task object, or on a GPU the pass's per-layer Tensor objects
    /// (an H200 measured 208 a launch for annealed Langevin on 2026-12-04, before the launchers' per-launch keys and
    /// closures were removed).</summary>
    private const long LaunchAllowance = 256;

    /// <summary>Slack per 100 steps for the runtime's own noise.</summary>
    private const long Slack = 512;

    private string dir = "";

    [OneTimeSetUp]
    public void WriteModel()
    {
        dir = Directory.CreateTempSubdirectory("allocation-").FullName;
        RandomUNet.Write(RandomUNet.Tiny32, dir);
    }

    [OneTimeTearDown]
    public void DeleteDir() => Directory.Delete(dir, recursive: true);

    private static (long Bytes, long Launches) Measure(GpuDevice dev, Action run)
    {
        run();   // warm-up: compiles kernels, sizes pools and scratch
        long launches = dev.KernelLookups, before = GC.GetAllocatedBytesForCurrentThread();
        run();
        return (GC.GetAllocatedBytesForCurrentThread() - before, dev.KernelLookups - launches);
    }

    /// <summary>Asserts the bound on 100 steps: runs of <paramref name="shortRun"/> and shortRun + <paramref name="extra"/>
    /// steps, scaled to 100 steps.</summary>
    private static void AssertSteadyState(GpuDevice dev, string what, Func<int, Action> runWithSteps, int shortRun = 2, int extra = 100)
    {
        var (a, la) = Measure(dev, runWithSteps(shortRun));
        var (b, lb) = Measure(dev, runWithSteps(shortRun + extra));
        long bytes = (b - a) * 100 / extra, launches = (lb - la) * 100 / extra;
        long bound = launches * LaunchAllowance + Slack;
        TestContext.Out.WriteLine($"{what} on {dev.Kind.Name()}: 100 steps allocate {bytes:N0} bytes in {launches:N0} kernel launches " +
                                  $"({(double)bytes / Math.Max(1, launches):F0} per launch); bound {bound:N0}");
        Assert.That(launches, Is.GreaterThan(0), "the run must launch kernels");
        Assert.That(bytes, Is.LessThanOrEqualTo(bound), $"{what}: 100 steps allocated {bytes:N0} bytes");
    }

    [Test]
    public void AnnealedLangevinSteps_WithTheUNet() => AnnealedLangevin(TestDevices.Cpu);

    [Test, Category("Gpu")]
    public void AnnealedLangevinSteps_WithTheUNet_OnGpu() => AnnealedLangevin(TestDevices.Gpu);

    private void AnnealedLangevin(GpuDevice dev)
    {
        using var model = DiffusionModel.Load(dev, dir);
        using var op = InpaintingOperator.Box(dev, 1, 32, 32, 8, 8, 16, 16);
        using var y = Tensor.Zeros(dev, 1, 1, 32, 32);
        using var x = Tensor.Empty(dev, 1, 1, 32, 32);
        var progress = new LastStep();
        AssertSteadyState(dev, "annealed Langevin (U-Net, inpainting)", steps =>
        {
            var sampler = new PosteriorSampler(model, op, 0.1f, new AnnealedLangevinOptions { Levels = 1, StepsPerLevel = steps, PriorSteps = 1 });
            return () => sampler.Sample(y, x, seed: 1, progress: progress);
        });
    }

    [Test]
    public void DdimSteps_WithTheUNet()
    {
        var dev = TestDevices.Cpu;
        using var model = DiffusionModel.Load(dev, dir);
        using var x = Tensor.Empty(dev, 1, 1, 32, 32);
        var sampler = SamplerFactory.Create("ddim", model.Network, model.Schedule);
        AssertSteadyState(dev, "DDIM (U-Net)", steps => () =>
        {
            x.Clear();
            sampler.Sample(x, steps, seed: 1);
        });
    }

    [Test]
    public void DpnpSweeps_WithTheUNet()
    {
        // A sweep is a consistency draw and a denoising draw of 2 network calls: 50 sweeps are 100 network calls.
        var dev = TestDevices.Cpu;
        using var model = DiffusionModel.Load(dev, dir);
        using var op = InpaintingOperator.Box(dev, 1, 32, 32, 8, 8, 16, 16);
        using var y = Tensor.Zeros(dev, 1, 1, 32, 32);
        using var x = Tensor.Empty(dev, 1, 1, 32, 32);
        AssertSteadyState(dev, "DPnP, 50 sweeps (U-Net, inpainting)", steps =>
        {
            var sampler = new PosteriorSampler(model, op, 0.1f, new DpnpOptions { Iterations = steps / 2, Denoiser = new DenoisingDiffusionOptions { Steps = 1 }, PriorSteps = 1 });
            return () => sampler.Sample(y, x, seed: 1);
        });
    }

    [Test]
    public void DpsSteps_WithTheUNetsBackwardPass()
    {
        var dev = TestDevices.Cpu;
        using var model = DiffusionModel.Load(dev, dir, withGradients: true);
        using var op = InpaintingOperator.Box(dev, 1, 32, 32, 8, 8, 16, 16);
        using var y = Tensor.Zeros(dev, 1, 1, 32, 32);
        using var x = Tensor.Empty(dev, 1, 1, 32, 32);
        // A DPS step is a forward and a backward pass (4 times the launches): measured over 25 steps, scaled to 100.
        AssertSteadyState(dev, "DPS (U-Net forward and backward, inpainting)", steps =>
        {
            var sampler = new PosteriorSampler(model, op, 0.1f, new DpsOptions { Steps = steps + 1 });
            return () => sampler.Sample(y, x, seed: 1);
        }, extra: 25);
    }

    private sealed class LastStep : IProgress<SamplerProgress>
    {
        public int Step;
        public void Report(SamplerProgress value) => Step = value.Step;
    }
}

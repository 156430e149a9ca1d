using System.Globalization;
using System.Text;
using PosteriorGpu.Bench.Samplers;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Samplers.Posterior;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Bench.KernelReport;

/// <summary>
/// <c>--mode launch-count</c> (and the last table of <c>--mode kernel-report</c>): kernel launches, host syncs and host
/// copies of one U-Net forward pass and of one step of each unconditional and posterior sampler at batch 1, counted by
/// <see cref="GpuDevice.Counters"/> on the device the run opens (POSTERIORGPU_DEVICE; the CPU accelerator here). At
/// batch 1 a GPU spends 3-5 us a launch, so these counts bound the latency from below. Options: <c>--models S32,cifar10</c>.
/// </summary>
public static class LaunchCountCommand
{
    /// <summary>The multiprocessors <c>--gpu-paths</c> plans for: an H100 SXM's 132.</summary>
    private const int H100Multiprocessors = 132;

    /// <summary>Steps per sampler run counted (the per-step figure is the difference of a long and a 1-step run).</summary>
    private const int Steps = 32;

    /// <summary>Runs the count; returns the exit code.</summary>
    public static int Run(IReadOnlyList<string> args)
    {
        var models = new List<string> { "S32", "cifar10" };
        bool gpuPaths = false;
        for (int i = 0; i < args.Count; i++)
        {
            if (args[i] == "--models" && i + 1 < args.Count) models = args[++i].Split(',', StringSplitOptions.RemoveEmptyEntries).ToList();
            else if (args[i] == "--gpu-paths") gpuPaths = true;
            else
            {
                Console.Error.WriteLine($"launch-count: error: unknown argument '{args[i]}' (known: --models S32,cifar10, --gpu-paths)");
                return 2;
            }
        }
        Console.Write(Table(models, gpuPaths));
        return 0;
    }

    /// <summary>The markdown table for <paramref name="models"/> (U-Net names of <see cref="Models.UNetArchitectures"/>). With
    /// <paramref name="gpuPaths"/> the count runs on a CPU accelerator that takes the GPU's kernel choices
    /// (<see cref="GpuDevice.UsesGpuKernels"/>): the GPU's launches without a GPU (slowly: each launch runs a GPU kernel
    /// on the CPU).</summary>
    public static string Table(IReadOnlyList<string> models, bool gpuPaths = false)
    {
        using var device = gpuPaths ? GpuDevice.OpenLaunchCounter(H100Multiprocessors) : GpuDevice.Open();
        var text = new StringBuilder();
        string heading = gpuPaths
            ? $"Launches per call at batch 1 that a GPU with {H100Multiprocessors} multiprocessors (an H100 SXM) makes, counted without running them:"
            : $"Launches per call at batch 1 on {device.Description}:";
        text.AppendLine(heading);
        text.AppendLine();
        text.AppendLine("| call | launches | host syncs | host-to-device | device-to-host | largest launch counts |");
        text.AppendLine("|---|---:|---:|---:|---:|---|");
        var hostTimes = new List<string>();
        foreach (var name in models)
        {
            var model = ScoreModels.Open(device, name);
            using var owned = (IDisposable)model;
            var (used, perKernel) = ForwardPass(device, model);
            text.AppendLine(Row($"{name} forward pass", used, perKernel));
            if (gpuPaths) hostTimes.Add($"{name} {HostMicroseconds(device, model):0} us");
        }
        if (gpuPaths)
        {
            // The samplers read their divergence ring back, which a count without execution cannot feed.
            text.AppendLine();
            text.AppendLine("Counted with `dotnet bench/PosteriorGpu.Bench/bin/Release/net10.0/PosteriorGpu.Bench.dll --mode launch-count --gpu-paths`: " +
                            "the launchers' GPU choices (GEMM core with split-K planned for that GPU, GroupNorm slab, the fused convolutions) planned for " +
                            $"{H100Multiprocessors} multiprocessors, every launch counted and none run; the attention kernel is counted as the CPU's " +
                            "choice (flash attention is also one launch).");
            text.AppendLine();
            text.AppendLine($"Host time per forward pass with no kernel run (the library's own work on the host: shapes, plans, pool, launch " +
                            $"arguments; not ILGPU's launch nor the driver's), median of {HostPasses} passes on this machine: {string.Join(", ", hostTimes)}.");
            return text.ToString();
        }
        // A sampler's own launches do not depend on the network: counted with the cheap Gaussian prior, whose forward
        // pass (its launches, and the copy of its timestep) is taken off, they add to a U-Net's forward pass to give a step.
        var gaussian = ScoreModels.Open(device, "gaussian");
        using (var _ = (IDisposable)gaussian)
        {
            var (prior, priorKernels) = ForwardPass(device, gaussian);
            using var x = Tensor.Zeros(device, 1, 3, 32, 32);
            foreach (var sampler in SamplerFactory.Names)
            {
                var s = SamplerFactory.Create(sampler, gaussian, ScoreModels.Schedule);
                s.Sample(x, 2, 1);   // warm-up
                var (one, _) = Count(device, () => s.Sample(x, 1, 1));
                var (many, perRun) = Count(device, () => s.Sample(x, Steps, 1));
                var step = many - one;
                step = step - new DeviceCounters((Steps - 1) * prior.Launches, (Steps - 1) * prior.HostSyncs,
                    (Steps - 1) * prior.HostToDeviceCopies, (Steps - 1) * prior.DeviceToHostCopies);
                foreach (var (key, count) in priorKernels)
                    if (perRun.TryGetValue(key, out long c) && c - Steps * count is var left)
                    {
                        if (left > 0) perRun[key] = left;
                        else perRun.Remove(key);
                    }
                text.AppendLine(Row($"{sampler} step without the network (mean of {Steps - 1}; reads back every {s.DivergenceCheckInterval})",
                    step, perRun, Steps - 1));
            }
            PosteriorRows(device, (IDifferentiableScoreModel)gaussian, prior, priorKernels, text);
        }
        text.AppendLine();
        text.AppendLine("Counted with `dotnet bench/PosteriorGpu.Bench/bin/Release/net10.0/PosteriorGpu.Bench.dll --mode launch-count`; " +
                        "a sampler step = one forward pass + the step's own launches (the update and the divergence ring's two norms); largest launch " +
                        "counts are per forward pass (per run of " + Steps + " steps for the unconditional samplers, over the counted steps for the posterior ones), " +
                        "by the launcher's kernel key. Posterior rows: inpainting (random pixels, 25 %) on the Gaussian prior, counted between " +
                        "progress reports after the first (so the run's setup, the power iteration of ||A|| and the prior draw, is left out), the " +
                        "network's forward passes and vector-Jacobian products taken off.");
        return text.ToString();
    }

    /// <summary>One row per posterior sampler: the mean per step (per network call for DPnP) of the counters between its
    /// progress reports after the first, less the prior's own forward passes and VJPs.</summary>
    private static void PosteriorRows(GpuDevice device, IDifferentiableScoreModel model, DeviceCounters forward,
        Dictionary<string, long> forwardKernels, StringBuilder text)
    {
        using var x = Tensor.Zeros(device, 1, 3, 32, 32);
        using var cotangent = Tensor.Zeros(device, 1, 3, 32, 32);
        using var eps = Tensor.Empty(device, 1, 3, 32, 32);
        using var gradient = Tensor.Empty(device, 1, 3, 32, 32);
        float[] t = [500f];
        model.EpsilonVjp(x, t, cotangent, eps, gradient);   // warm-up
        var (vjp, vjpKernels) = Count(device, () => model.EpsilonVjp(x, t, cotangent, eps, gradient));
        using var op = InpaintingOperator.RandomPixels(device, 3, 32, 32, 0.25, 1);
        using var y = Tensor.Zeros(device, [1, .. op.MeasurementShape]);
        const float sigmaY = 0.1f;
        int interval = PosteriorCommon.DivergenceCheckInterval;
        // (row label, sampler, steps per progress report, forward passes and VJPs per report)
        var rows = new (string Label, IPosteriorSampler Sampler, int StepsPerReport, int Forward, int Vjp)[]
        {
            ($"dps step without the network (mean of {Steps - 1}; reads back every {interval})",
                new DpsSampler(model, ScoreModels.Schedule, new DpsOptions { Steps = Steps, StepSize = 0.1 }), 1, 1, 1),
            ($"lgd-mc step (4 particles) without the network (mean of {Steps - 1}; reads back every {interval})",
                new LgdMcSampler(model, ScoreModels.Schedule, new LgdMcOptions { Steps = Steps, StepSize = 0.1, Particles = 4 }), 1, 1, 1),
            ($"annealed-langevin step without the network (4 steps a level as the CLI; mean of 8 levels x 4; reads back every {AnnealedLangevinSampler.LevelsPerCheck(4)} levels and after the last)",
                new AnnealedLangevinSampler(model, ScoreModels.Schedule, new AnnealedLangevinOptions { Levels = 9, StepsPerLevel = 4 }), 4, 4, 0),
            ($"dpnp network call without the network (unadjusted, as the CLI; mean of {Steps - 1} sweeps of 2 consistency steps + 2 calls; reads back every {interval} sweeps)",
                new DpnpSampler(model, ScoreModels.Schedule, new DpnpOptions { Iterations = Steps, ConsistencySteps = 2, Metropolis = false, Denoiser = new DenoisingDiffusionOptions { Steps = 1 } }), 2, 2, 0),
            ($"dpnp network call without the network (Metropolis-adjusted; mean of {Steps - 1} sweeps of 2 consistency steps + 2 calls; reads back every {interval} sweeps)",
                new DpnpSampler(model, ScoreModels.Schedule, new DpnpOptions { Iterations = Steps, ConsistencySteps = 2, Metropolis = true, Denoiser = new DenoisingDiffusionOptions { Steps = 1 } }), 2, 2, 0),
        };
        foreach (var (label, sampler, stepsPerReport, forwardPerReport, vjpPerReport) in rows)
        {
            using var chains = Tensor.Zeros(device, 1, 3, 32, 32);
            // Refining samplers from the zero start (their prior draw would report progress too).
            void Run(IProgress<SamplerProgress>? progress)
            {
                if (sampler is RefiningPosteriorSampler refining) refining.Refine(chains, y, op, sigmaY, 1, progress: progress);
                else sampler.Sample(chains, y, op, sigmaY, 1, progress: progress);
            }
            Run(null);   // warm-up
            var seen = new List<(DeviceCounters Counters, IReadOnlyDictionary<string, long> Kernels)>();
            Run(new Snapshot(() => seen.Add((device.Counters, device.LaunchesByKernel))));
            int reports = seen.Count - 1;
            var used = seen[^1].Counters - seen[0].Counters;
            long calls = (long)reports * forwardPerReport, vjps = (long)reports * vjpPerReport;
            used -= new DeviceCounters(calls * forward.Launches + vjps * vjp.Launches, calls * forward.HostSyncs + vjps * vjp.HostSyncs,
                calls * forward.HostToDeviceCopies + vjps * vjp.HostToDeviceCopies, calls * forward.DeviceToHostCopies + vjps * vjp.DeviceToHostCopies);
            int steps = reports * stepsPerReport;
            var perStep = new Dictionary<string, long>();
            foreach (var (key, count) in seen[^1].Kernels)
            {
                long c = count - seen[0].Kernels.GetValueOrDefault(key) - calls * forwardKernels.GetValueOrDefault(key) - vjps * vjpKernels.GetValueOrDefault(key);
                if (c > 0) perStep[key] = c;
            }
            text.AppendLine(Row(label, used, perStep, steps));
        }
    }

    private sealed class Snapshot(Action take) : IProgress<SamplerProgress>
    {
        public void Report(SamplerProgress value) => take();
    }

    private const int HostPasses = 200;

    /// <summary>The median wall time of a forward pass on a launch counter, in microseconds: every launcher's host-side work
    /// and none of the kernels'.</summary>
    private static double HostMicroseconds(GpuDevice device, IScoreModel model)
    {
        using var x = Tensor.Zeros(device, 1, 3, 32, 32);
        using var eps = Tensor.Empty(device, 1, 3, 32, 32);
        float[] t = [500f];
        for (int i = 0; i < 20; i++) model.PredictEpsilon(x, t, eps);   // warm-up (JIT, pool)
        var times = new double[HostPasses];
        var clock = new System.Diagnostics.Stopwatch();
        for (int i = 0; i < HostPasses; i++)
        {
            clock.Restart();
            model.PredictEpsilon(x, t, eps);
            times[i] = clock.Elapsed.TotalMicroseconds;
        }
        Array.Sort(times);
        return times[HostPasses / 2];
    }

    private static (DeviceCounters Used, Dictionary<string, long> PerKernel) ForwardPass(GpuDevice device, IScoreModel model)
    {
        using var x = Tensor.Zeros(device, 1, 3, 32, 32);
        using var eps = Tensor.Empty(device, 1, 3, 32, 32);
        float[] t = [500f];
        model.PredictEpsilon(x, t, eps);   // warm-up
        return Count(device, () => model.PredictEpsilon(x, t, eps));
    }

    private static (DeviceCounters Used, Dictionary<string, long> PerKernel) Count(GpuDevice device, Action call)
    {
        var before = device.Counters;
        var kernels = device.LaunchesByKernel;
        call();
        device.Synchronize();
        var used = device.Counters - before;
        used = used with { HostSyncs = used.HostSyncs - 1 };   // the Synchronize above
        var perKernel = device.LaunchesByKernel.ToDictionary(p => p.Key, p => p.Value - kernels.GetValueOrDefault(p.Key));
        return (used, perKernel.Where(p => p.Value > 0).ToDictionary(p => p.Key, p => p.Value));
    }

    private static string Row(string call, DeviceCounters used, Dictionary<string, long> perKernel, int divide = 1)
    {
        string F(long v) => divide == 1 ? v.ToString(CultureInfo.InvariantCulture) : ((double)v / divide).ToString("0.##", CultureInfo.InvariantCulture);
        string top = string.Join(", ", perKernel.OrderByDescending(p => p.Value).Take(5).Select(p => $"{p.Key} {p.Value}"));
        return $"| {call} | {F(used.Launches)} | {F(used.HostSyncs)} | {F(used.HostToDeviceCopies)} | {F(used.DeviceToHostCopies)} | {top} |";
    }
}

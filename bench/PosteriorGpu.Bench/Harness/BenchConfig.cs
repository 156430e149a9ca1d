using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Engines;
using BenchmarkDotNet.Exporters;
using BenchmarkDotNet.Filters;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Perfolizer.Horology;

namespace PosteriorGpu.Bench.Harness;

/// <summary>
/// The BenchmarkDotNet configuration every suite runs under: in-process (the GPU machine has the
/// .NET runtime but no SDK to build a child project, and in-process starts in seconds in CI), the
/// smoke or full job, the throughput columns and a GitHub-markdown report.
/// </summary>
public static class BenchConfig
{
    /// <summary>Smoke: each benchmark a few times, no pilot, no overhead stage; proves it runs.</summary>
    public static Job SmokeJob => new Job("Smoke")
        .WithToolchain(InProcessEmitToolchain.Instance)
        .WithStrategy(RunStrategy.Monitoring)
        .WithLaunchCount(1).WithWarmupCount(1).WithIterationCount(2)
        .WithInvocationCount(1).WithUnrollFactor(1);

    /// <summary>Full: measured iterations of at least 250 ms after warm-ups, ten of them on a GPU, six
    /// on the CPU accelerator (where a U-Net pass takes seconds).</summary>
    public static Job FullJob => new Job("Full")
        .WithToolchain(InProcessEmitToolchain.Instance)
        .WithStrategy(RunStrategy.Throughput)
        .WithLaunchCount(1).WithWarmupCount(BenchMode.OnGpu ? 3 : 2).WithIterationCount(BenchMode.OnGpu ? 10 : 6)
        .WithIterationTime(TimeInterval.FromMilliseconds(250));

    /// <summary>The configuration for the mode set in <see cref="BenchMode"/>.</summary>
    public static IConfig Create() => DefaultConfig.Instance
        .AddJob((BenchMode.Smoke ? SmokeJob : FullJob).AsDefault())
        .AddColumn(ThroughputColumn.All)
        .AddDiagnoser(MemoryDiagnoser.Default)
        .AddExporter(MarkdownExporter.GitHub)
        .AddFilter(new SimpleFilter(b => !(BenchMode.OnGpu && HostLoops.IsHost(b.Descriptor.WorkloadMethod.Name))))
        // The suites print the device they run on; a benchmark that throws must fail the run, not vanish.
        .WithOptions(ConfigOptions.StopOnFirstError | ConfigOptions.DisableLogFile);
}

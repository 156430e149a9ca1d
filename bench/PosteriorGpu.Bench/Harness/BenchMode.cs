using PosteriorGpu.Kernels.Device;

namespace PosteriorGpu.Bench.Harness;

/// <summary>
/// Which sizes the suites run: "smoke" (CI-sized: every benchmark once on small inputs, to prove
/// it runs) or "full" (the sizes the numbers in bench/RESULTS.md come from). The mode travels in
/// an environment variable so that it also reaches BenchmarkDotNet's parameter sources.
/// </summary>
public static class BenchMode
{
    /// <summary>The variable Program sets from --mode.</summary>
    public const string Variable = "POSTERIORGPU_BENCH_MODE";

    /// <summary>True in smoke mode.</summary>
    public static bool Smoke => Environment.GetEnvironmentVariable(Variable) == "smoke";

    private static readonly Lazy<bool> onGpu = new(() =>
    {
        // The device GpuDevice.Open would pick, without opening it.
        var requested = DeviceKinds.Parse(Environment.GetEnvironmentVariable(DeviceKinds.EnvironmentVariable), DeviceKinds.EnvironmentVariable);
        var present = GpuDevice.List().Select(d => d.Kind).ToHashSet();
        var kind = requested ?? new[] { DeviceKind.Cuda, DeviceKind.OpenCL, DeviceKind.Cpu }.First(present.Contains);
        return kind != DeviceKind.Cpu;
    });

    /// <summary>True when the default device is a GPU (sizes grow accordingly).</summary>
    public static bool OnGpu => onGpu.Value;

    /// <summary>Parameter values by mode and device: smoke, full on the CPU accelerator, full on a GPU.</summary>
    public static IEnumerable<T> Pick<T>(T[] smoke, T[] cpu, T[] gpu) => Smoke ? smoke : OnGpu ? gpu : cpu;
}

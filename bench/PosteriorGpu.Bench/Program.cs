using BenchmarkDotNet.Running;
using PosteriorGpu.Bench.Harness;
using PosteriorGpu.Bench.Peer;

namespace PosteriorGpu.Bench;

/// <summary>
/// Entry point. Two uses:
/// <list type="bullet">
/// <item>BenchmarkDotNet suites: <c>--mode smoke|full</c> (default full) picks the job and the sizes;
/// every other argument goes to BenchmarkDotNet's switcher (<c>--filter '*Gemm*'</c>, <c>--list flat</c>,
/// ...; no filter means all suites). Exits 1 when a benchmark failed or did not run.</item>
/// <item><c>peer-run</c>: the side-by-side GPU workloads whose ratios against PyTorch bench/gpu/run.sh
/// prints (see <see cref="PeerRun"/>).</item>
/// <item><c>--mode kernel-report</c>: registers, spills, occupancy and main-loop instruction mix of every
/// kernel compiled for sm_80/sm_90 without a GPU (see <see cref="KernelReport.KernelReportCommand"/>), then
/// the launch counts below.</item>
/// <item><c>--mode launch-count</c>: launches, host syncs and host copies per U-Net forward pass and per sampler
/// step at batch 1 (see <see cref="KernelReport.LaunchCountCommand"/>).</item>
/// </list>
/// </summary>
public static class Program
{
    /// <summary>Runs the benchmarks; returns the exit code.</summary>
    public static int Main(string[] args)
    {
        // POSTERIORGPU_PROFILE=1: each device's per-kernel time table goes to stderr when it is disposed.
        PosteriorGpu.Kernels.Device.GpuDevice.ProfileReported += report => Console.Error.Write(report);
        if (args.Length > 0 && args[0] == "peer-run") return PeerRun.Run(args[1..]);
        var rest = new List<string>();
        string mode = "full";
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--mode" && i + 1 < args.Length) mode = args[++i];
            else rest.Add(args[i]);
        }
        if (mode == "kernel-report") return KernelReport.KernelReportCommand.Run(rest);
        if (mode == "launch-count") return KernelReport.LaunchCountCommand.Run(rest);
        if (mode is not ("smoke" or "full"))
        {
            Console.Error.WriteLine($"PosteriorGpu.Bench: error: --mode takes smoke, full, kernel-report or launch-count, got '{mode}'");
            return 2;
        }
        Environment.SetEnvironmentVariable(BenchMode.Variable, mode);
        // Without a filter the switcher asks on the console; CI has no console.
        if (!rest.Any(a => a is "--filter" or "-f" or "--list" or "--allCategories" or "--anyCategories" or "--help" or "--info"))
            rest.AddRange(["--filter", "*"]);
        var summaries = BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(rest.ToArray(), BenchConfig.Create()).ToList();
        if (rest.Contains("--list") || rest.Contains("--help") || rest.Contains("--info")) return 0;

        int cases = summaries.Sum(s => s.BenchmarksCases.Length);
        var failed = summaries.SelectMany(s => s.Reports).Where(r => !r.Success || r.ResultStatistics is null)
            .Select(r => r.BenchmarkCase.DisplayInfo).ToList();
        bool invalid = summaries.Any(s => s.HasCriticalValidationErrors);
        if (cases == 0 || invalid || failed.Count > 0)
        {
            Console.Error.WriteLine($"PosteriorGpu.Bench: error: {cases} case(s), {failed.Count} failed" +
                (invalid ? ", critical validation errors" : "") +
                (failed.Count > 0 ? ": " + string.Join("; ", failed.Take(5)) : ""));
            return 1;
        }
        Console.WriteLine($"PosteriorGpu.Bench: {cases} case(s) ran in {mode} mode");
        return 0;
    }
}

using System.Diagnostics;
using System.Globalization;

namespace PosteriorGpu.Kernels.Device;

/// <summary>
/// Wall time per kernel key, measured by synchronising at every launch (POSTERIORGPU_PROFILE=1): the time from one
/// launcher lookup to the next, after the device has finished the first launch, goes to the first launch's key. It
/// includes the host work between two launches (the launcher's checks, the sampler's own code), which is what a batch-1
/// step pays; the synchronisations serialise the device, so the total is an upper bound of an unprofiled run's time and
/// the table says where it goes, not how fast the run is. Handed to <see cref="GpuDevice.ProfileReported"/> when the device
/// is disposed (the command-line tool and the benchmarks print it to stderr).
/// </summary>
internal sealed class KernelProfile
{
    /// <summary>The environment variable that turns profiling on ("1").</summary>
    public const string Variable = "POSTERIORGPU_PROFILE";

    private readonly Dictionary<string, (long Launches, long Ticks)> byKey = [];
    private string? lastKey;
    private long last;

    /// <summary>A profile when <see cref="Variable"/> is "1", else null.</summary>
    public static KernelProfile? FromEnvironment() => Environment.GetEnvironmentVariable(Variable) == "1" ? new KernelProfile() : null;

    /// <summary>Called at each launcher lookup: waits for the device, closes the previous launch's interval.</summary>
    public void Enter(ILGPU.Runtime.Accelerator accelerator, string key)
    {
        lock (byKey)
        {
            accelerator.Synchronize();
            long now = Stopwatch.GetTimestamp();
            Close(now);
            lastKey = key;
            last = now;
        }
    }

    /// <summary>Called once the launcher is at hand: its loading (a first launch compiles the kernel) is not timed.</summary>
    public void Loaded()
    {
        lock (byKey) last = Stopwatch.GetTimestamp();
    }

    private void Close(long now)
    {
        if (lastKey is null) return;
        var (launches, ticks) = byKey.GetValueOrDefault(lastKey);
        byKey[lastKey] = (launches + 1, ticks + now - last);
    }

    /// <summary>The table, heaviest first (at most <paramref name="rows"/> rows).</summary>
    public string Report(ILGPU.Runtime.Accelerator accelerator, string device, int rows = 40)
    {
        lock (byKey)
        {
            accelerator.Synchronize();
            Close(Stopwatch.GetTimestamp());
            lastKey = null;
            double total = byKey.Values.Sum(v => (double)v.Ticks) / Stopwatch.Frequency * 1e3;
            long launches = byKey.Values.Sum(v => v.Launches);
            var w = new System.Text.StringBuilder();
            w.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"kernel profile ({Variable}=1) on {device}: {launches} launches, {total:F1} ms (each launch synchronised; the host's work between launches included)"));
            w.AppendLine("| kernel | launches | total ms | mean us | share |");
            w.AppendLine("|---|---:|---:|---:|---:|");
            foreach (var (key, (n, ticks)) in byKey.OrderByDescending(p => p.Value.Ticks).Take(rows))
            {
                double ms = (double)ticks / Stopwatch.Frequency * 1e3;
                w.AppendLine(string.Create(CultureInfo.InvariantCulture, $"| {key} | {n} | {ms:F2} | {ms * 1e3 / n:F1} | {ms / Math.Max(total, 1e-9):P1} |"));
            }
            return w.ToString();
        }
    }
}

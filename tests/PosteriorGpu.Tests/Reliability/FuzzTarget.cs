using System.Diagnostics;
using NUnit.Framework;
using PosteriorGpu.Models.IO;

namespace PosteriorGpu.Tests.Reliability;

/// <summary>
/// A reader under fuzzing: valid seed files, how to read (and fully use) bytes that claim to come from
/// a named file, what the mutator knows of the format, and the exception types the reader documents.
/// Adding a reader is one of these in <see cref="ReaderFuzzTests"/>' target list.
/// </summary>
/// <param name="Name">Short name, used in the fake file names and in failure reports.</param>
/// <param name="Seeds">Valid files (each must read without error); mutants are made from them in turn.</param>
/// <param name="Read">Parses bytes as the file named by the second argument and touches every value it
/// yields (conversions included), so lazily checked parts are exercised too.</param>
public sealed record FuzzTarget(string Name, IReadOnlyList<byte[]> Seeds, Action<byte[], string> Read)
{
    /// <summary>Mutants to try.</summary>
    public int Count { get; init; } = 3000;

    /// <summary>Generous time per case for the whole run's limit (one minute plus this per case).</summary>
    public TimeSpan CaseTime { get; init; } = TimeSpan.FromMilliseconds(20);

    /// <summary>The format knowledge that lets mutants get past the first check.</summary>
    public FuzzFormat Format { get; init; } = new();

    /// <summary>The exception types the reader documents; anything else is a failure.</summary>
    public IReadOnlyList<Type> Documented { get; init; } = [typeof(CheckpointFormatException)];

    /// <summary>The folder the fake file names are in (a real one when the read needs to create files there).</summary>
    public string NameRoot { get; init; } = "/fuzz";

    /// <summary>Most bytes one read of a file of this size may allocate on the managed heap (null: not checked).</summary>
    public Func<long, long>? AllocationBound { get; init; } = size => size + FuzzRunner.AllocationSlack;
}

/// <summary>The outcome of fuzzing one reader.</summary>
public sealed record FuzzReport(string Reader, int Tried, int Accepted, int Rejected, int DistinctErrors,
    long MaxAllocatedBytes, double MaxAllocatedPerFileByte, TimeSpan Elapsed, string Mix)
{
    /// <inheritdoc/>
    public override string ToString() =>
        $"{Reader}: {Tried} mutants, {Rejected} rejected with a documented error ({DistinctErrors} distinct messages), " +
        $"{Accepted} still valid; most allocated by one read {MaxAllocatedBytes} bytes ({MaxAllocatedPerFileByte:F2} per file byte); " +
        $"{Elapsed.TotalSeconds:F2} s; edits: {Mix}";
}

/// <summary>Runs a <see cref="FuzzTarget"/>: every mutant must read or fail with a documented exception
/// whose message names the file, within the allocation bound, and the whole run within a time limit
/// (a hang fails the test with the case that hung). Failures print the seed that reproduces them.</summary>
public static class FuzzRunner
{
    /// <summary>Allowance for allocations not proportional to the file (exception objects, stack traces, dictionaries).</summary>
    public const long AllocationSlack = 256 * 1024;

    /// <summary>Longest one case may take before it counts as a hang.</summary>
    public static readonly TimeSpan CaseLimit = TimeSpan.FromSeconds(10);

    /// <summary>Environment variable that overrides the base seed (explore other mutants locally).</summary>
    public const string SeedVariable = "POSTERIORGPU_FUZZ_SEED";

    /// <summary>Environment variable that multiplies every target's mutant count (longer local runs).</summary>
    public const string ScaleVariable = "POSTERIORGPU_FUZZ_SCALE";

    /// <summary>The seed of mutant <paramref name="index"/> of a run with base seed <paramref name="baseSeed"/>.</summary>
    public static int CaseSeed(int baseSeed, int index) => unchecked(baseSeed * 1_000_003 + index);

    /// <summary>Fuzzes <paramref name="target"/>; fails the test on the first bad outcomes.</summary>
    public static FuzzReport Run(FuzzTarget target, int baseSeed = 20250601, TimeSpan? limit = null)
    {
        if (int.TryParse(Environment.GetEnvironmentVariable(SeedVariable), out int s)) baseSeed = s;
        int count = target.Count;
        if (int.TryParse(Environment.GetEnvironmentVariable(ScaleVariable), out int scale) && scale > 0) count *= scale;

        for (int k = 0; k < target.Seeds.Count; k++)
            target.Read(target.Seeds[k], Path.Combine(target.NameRoot, $"{target.Name}-seed-{k}"));   // a seed that does not read is a broken test

        int current = -1;
        string currentEdit = "";
        int accepted = 0, rejected = 0;
        long maxAllocated = 0;
        double maxRatio = 0;
        var messages = new HashSet<string>(StringComparer.Ordinal);
        var failures = new List<string>();
        var descriptions = new List<string>();
        var clock = Stopwatch.StartNew();
        long mutateTicks = 0;
        var work = Task.Run(() =>
        {
            for (int i = 0; i < count && failures.Count < 5; i++)
            {
                int seedIndex = i % target.Seeds.Count;
                int caseSeed = CaseSeed(baseSeed, i);
                long t0 = Stopwatch.GetTimestamp();
                var (bytes, edit) = Mutator.Mutate(target.Seeds[seedIndex], target.Format, caseSeed);
                mutateTicks += Stopwatch.GetTimestamp() - t0;
                Volatile.Write(ref currentEdit, edit);
                Volatile.Write(ref current, i);
                descriptions.Add(edit);
                string name = Path.Combine(target.NameRoot, $"{target.Name}-case-{i}-seed-{caseSeed}");
                string Where() => $"{target.Name}: case {i} (base seed {baseSeed}, case seed {caseSeed}, seed file {seedIndex}; " +
                                  $"reproduce with Mutator.Mutate(seeds[{seedIndex}], format, {caseSeed})): {edit}";

                long before = GC.GetAllocatedBytesForCurrentThread();
                Exception? error = null;
                try { target.Read(bytes, name); }
                catch (Exception e) { error = e; }
                long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

                if (error is null) accepted++;
                else if (!target.Documented.Any(t => t.IsInstanceOfType(error)))
                    failures.Add($"{Where()}\n  undocumented {error.GetType().Name}: {error}");
                else if (!error.Message.Contains(name, StringComparison.Ordinal)
                         || (error is CheckpointFormatException c && !c.FileName.Contains(name, StringComparison.Ordinal)))
                    failures.Add($"{Where()}\n  the message does not name the file: {error.Message}");
                else
                {
                    rejected++;
                    messages.Add(error.Message.Replace(name, "<file>"));
                }
                if (target.AllocationBound is { } bound && allocated > bound(bytes.Length))
                    failures.Add($"{Where()}\n  allocated {allocated} bytes reading a {bytes.Length}-byte file (bound {bound(bytes.Length)})");
                maxAllocated = Math.Max(maxAllocated, allocated);
                if (bytes.Length > 0) maxRatio = Math.Max(maxRatio, (double)allocated / bytes.Length);
            }
        });
        // A case that makes no progress for CaseLimit is a hang (named with its seed); the whole run has a limit too.
        var total = limit ?? TimeSpan.FromSeconds(60) + count * target.CaseTime;
        int seen = -2;
        var since = Stopwatch.StartNew();
        while (!work.Wait(TimeSpan.FromMilliseconds(200)))
        {
            int now = Volatile.Read(ref current);
            if (now != seen) { seen = now; since.Restart(); }
            if (since.Elapsed > CaseLimit || clock.Elapsed > total)
                Assert.Fail($"{target.Name}: case {now} gave no answer after {since.Elapsed.TotalSeconds:F0} s (run {clock.Elapsed.TotalSeconds:F0} s; " +
                            $"base seed {baseSeed}, case seed {CaseSeed(baseSeed, now)}): {Volatile.Read(ref currentEdit)}");
        }
        work.Wait();
        var report = new FuzzReport(target.Name, Volatile.Read(ref current) + 1, accepted, rejected, messages.Count,
            maxAllocated, maxRatio, clock.Elapsed, Mutator.DescribeMix(descriptions));
        TestContext.Out.WriteLine(report);
        TestContext.Out.WriteLine($"  of which mutating: {Stopwatch.GetElapsedTime(0, mutateTicks).TotalSeconds:F2} s");
        if (failures.Count > 0) Assert.Fail(string.Join("\n", failures));
        return report;
    }
}

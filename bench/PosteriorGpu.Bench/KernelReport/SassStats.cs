using System.Globalization;
using System.Text.RegularExpressions;

namespace PosteriorGpu.Bench.KernelReport;

/// <summary>What ptxas -v says about one entry: registers, spills, stack and static shared memory.</summary>
public sealed record PtxasInfo(int Registers, int SpillStores, int SpillLoads, int StackFrame, int SharedBytes)
{
    private static readonly Regex Used = new(@"Used (\d+) registers(?:, (\d+) bytes smem)?", RegexOptions.Compiled);
    private static readonly Regex Frame = new(@"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", RegexOptions.Compiled);

    /// <summary>Parses ptxas' verbose output for a file with one entry.</summary>
    public static PtxasInfo Parse(string text)
    {
        var u = Used.Match(text);
        var f = Frame.Match(text);
        if (!u.Success) throw new InvalidOperationException($"ptxas -v printed no 'Used N registers' line:\n{text}");
        int I(Group g) => g.Success ? int.Parse(g.Value, CultureInfo.InvariantCulture) : 0;
        return new PtxasInfo(I(u.Groups[1]), f.Success ? I(f.Groups[2]) : 0, f.Success ? I(f.Groups[3]) : 0,
            f.Success ? I(f.Groups[1]) : 0, I(u.Groups[2]));
    }
}

/// <summary>
/// The instruction mix of a kernel's main loop from its SASS (cuobjdump -sass): loops are found from
/// backward branches; the main loop is the one with the most FFMA (ties: the smallest body, i.e. the
/// innermost). Counts are static (instructions in the loop body), which for an unrolled k-step is the
/// dynamic mix per iteration.
/// </summary>
public sealed record LoopMix(int Instructions, int Ffma, int SharedLoads, int SharedLoads128, int GlobalLoads, int Barriers)
{
    private static readonly Regex Line = new(@"/\*([0-9a-f]{4,})\*/\s+(?:@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_.]*)([^;]*);", RegexOptions.Compiled);
    private static readonly Regex Target = new(@"0x([0-9a-f]+)", RegexOptions.Compiled);

    /// <summary>FFMA as a fraction of the loop's instructions.</summary>
    public double FfmaShare => Instructions == 0 ? 0 : (double)Ffma / Instructions;

    /// <summary>Shared-memory load instructions per FFMA (a 128-bit LDS counts once).</summary>
    public double SharedLoadsPerFfma => Ffma == 0 ? 0 : (double)SharedLoads / Ffma;

    /// <summary>The main loop's mix, or null when the kernel has no loop with an FFMA or none at all.</summary>
    public static LoopMix? MainLoop(string sass)
    {
        var ins = new List<(int Addr, string Op, string Args)>();
        foreach (Match m in Line.Matches(sass))
            ins.Add((int.Parse(m.Groups[1].Value, NumberStyles.HexNumber), m.Groups[2].Value, m.Groups[3].Value));
        LoopMix? best = null;
        foreach (var (addr, op, args) in ins)
        {
            if (!op.StartsWith("BRA", StringComparison.Ordinal)) continue;
            var t = Target.Match(args);
            if (!t.Success) continue;
            int target = int.Parse(t.Groups[1].Value, NumberStyles.HexNumber);
            if (target >= addr) continue; // forward, or the trap loop after EXIT (BRA to itself)
            var body = ins.Where(i => i.Addr >= target && i.Addr <= addr && i.Op != "NOP").ToList();
            var mix = new LoopMix(body.Count,
                body.Count(i => i.Op.StartsWith("FFMA", StringComparison.Ordinal)),
                body.Count(i => i.Op.StartsWith("LDS", StringComparison.Ordinal)),
                body.Count(i => i.Op.StartsWith("LDS", StringComparison.Ordinal) && i.Op.Contains(".128", StringComparison.Ordinal)),
                body.Count(i => i.Op.StartsWith("LDG", StringComparison.Ordinal) || i.Op.StartsWith("LD.", StringComparison.Ordinal) || i.Op == "LD"),
                body.Count(i => i.Op.StartsWith("BAR", StringComparison.Ordinal)));
            if (best is null || mix.Ffma > best.Ffma || (mix.Ffma == best.Ffma && mix.Instructions < best.Instructions)) best = mix;
        }
        return best;
    }
}

/// <summary>Theoretical occupancy (resident warps / maximum warps per SM) from the CUDA occupancy rules.</summary>
public static class Occupancy
{
    /// <summary>Limits of one SM: threads, blocks, registers and shared memory (bytes usable by blocks).</summary>
    public sealed record Sm(string Name, int MaxThreads, int MaxBlocks, int Registers, int SharedBytes, int ReservedSharedPerBlock);

    /// <summary>A100 (sm_80): 164 KiB of shared memory per SM.</summary>
    public static readonly Sm Sm80 = new("sm_80", 2048, 32, 65536, 167936, 1024);

    /// <summary>H100/H200 (sm_90): 228 KiB of shared memory per SM.</summary>
    public static readonly Sm Sm90 = new("sm_90", 2048, 32, 65536, 233472, 1024);

    /// <summary>Fraction of the SM's warps resident for blocks of <paramref name="threads"/> threads.</summary>
    public static double Of(Sm sm, int threads, int registers, int sharedBytes)
    {
        int warps = (threads + 31) / 32;
        int regsPerWarp = (Math.Max(registers, 1) * 32 + 255) / 256 * 256;
        int byThreads = sm.MaxThreads / (warps * 32);
        int byRegs = sm.Registers / (regsPerWarp * warps);
        int smem = (sharedBytes + sm.ReservedSharedPerBlock + 127) / 128 * 128;
        int bySmem = sm.SharedBytes / smem;
        int blocks = Math.Min(Math.Min(byThreads, byRegs), Math.Min(bySmem, sm.MaxBlocks));
        return blocks * warps * 32.0 / sm.MaxThreads;
    }

    /// <summary>The best occupancy over block sizes 32..1024 (what ILGPU's auto-grouped launch picks on CUDA).</summary>
    public static (double Occupancy, int Threads) Best(Sm sm, int registers, int sharedBytes)
    {
        (double, int) best = (0, 32);
        for (int t = 32; t <= 1024; t += 32)
        {
            double o = Of(sm, t, registers, sharedBytes);
            if (o > best.Item1 + 1e-9) best = (o, t);
        }
        return best;
    }
}

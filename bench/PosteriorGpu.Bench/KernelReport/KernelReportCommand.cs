using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Text;
using PosteriorGpu.Kernels.Device;

namespace PosteriorGpu.Bench.KernelReport;

/// <summary>
/// <c>--mode kernel-report</c>: compiles every kernel of PosteriorGpu.Kernels to PTX for sm_80 and sm_90
/// without a GPU, assembles each with ptxas and disassembles it with cuobjdump, and prints one markdown
/// table per architecture: registers, spills, shared memory, theoretical occupancy and the main loop's
/// instruction mix. Options: <c>--cuda-bin DIR</c> (where ptxas and cuobjdump are; default: PATH, then
/// the cache tools/install-ptxas fills, installing it when missing), <c>--filter TEXT</c> (kernels whose
/// name contains it), <c>--out FILE</c> (also write the tables), <c>--keep DIR</c> (keep PTX, cubins, SASS). Without a
/// filter the report ends with <see cref="LaunchCountCommand"/>'s launches per forward pass and per sampler step.
/// </summary>
public static class KernelReportCommand
{
    /// <summary>PTX ISA that ptxas 11.8 (Debian 12's nvidia-cuda-toolkit) accepts at most.</summary>
    public static readonly Version PtxasMaxIsa = new(7, 8);

    /// <summary>Runs the report; returns the exit code (2: tools missing or bad arguments, 1: a kernel failed).</summary>
    public static int Run(IReadOnlyList<string> args)
    {
        string? cudaBin = null, filter = null, outFile = null, keep = null;
        for (int i = 0; i < args.Count; i++)
        {
            string Next() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"kernel-report: {args[i]} needs a value");
            switch (args[i])
            {
                case "--cuda-bin": cudaBin = Next(); break;
                case "--filter": filter = Next(); break;
                case "--out": outFile = Next(); break;
                case "--keep": keep = Next(); break;
                default:
                    Console.Error.WriteLine($"kernel-report: error: unknown argument '{args[i]}' (known: --cuda-bin DIR, --filter TEXT, --out FILE, --keep DIR)");
                    return 2;
            }
        }
        var tools = CudaTools.Find(cudaBin);
        if (tools is null) return 2;

        var kernels = KernelCatalog.Find(typeof(GpuDevice).Assembly)
            .Where(k => filter is null || k.Name.Contains(filter, StringComparison.OrdinalIgnoreCase)).ToList();
        string work = keep ?? Path.Combine(Path.GetTempPath(), $"kernel-report-{Environment.ProcessId}");
        Directory.CreateDirectory(work);
        var text = new StringBuilder();
        text.AppendLine($"kernel-report: {kernels.Count} kernels of PosteriorGpu.Kernels, ILGPU {typeof(ILGPU.Context).Assembly.GetName().Version} " +
                        $"PTX backend (ISA {PtxCompiler.DriverIsa} lowered to {PtxasMaxIsa}), {tools.Version}");
        int failures = 0;
        using var context = GpuDevice.CreateContext();
        foreach (var (sm, major, minor) in new[] { (Occupancy.Sm80, 8, 0), (Occupancy.Sm90, 9, 0) })
        {
            using var compiler = new PtxCompiler(context, major, minor);
            text.AppendLine();
            text.AppendLine($"### {sm.Name}");
            text.AppendLine();
            text.AppendLine("| kernel | regs | spill st/ld B | stack B | smem B | block | occupancy | loop instr | FFMA | FFMA % | LDS/FFMA | LDS.128 | LDG | BAR |");
            text.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
            for (int ki = 0; ki < kernels.Count; ki++)
            {
                var k = kernels[ki];
                string stem = Path.Combine(work, $"{sm.Name}-{ki:D3}");
                try
                {
                    string ptx = PtxCompiler.LowerVersion(compiler.Compile(k, Specialization(k)), PtxasMaxIsa);
                    File.WriteAllText(stem + ".ptx", ptx);
                    var info = PtxasInfo.Parse(tools.Assemble(stem + ".ptx", stem + ".cubin", sm.Name));
                    string sass = tools.Disassemble(stem + ".cubin");
                    File.WriteAllText(stem + ".sass", sass);
                    var loop = LoopMix.MainLoop(sass);
                    int threads = BlockThreads(k);
                    string block;
                    double occ;
                    if (threads > 0) { occ = Occupancy.Of(sm, threads, info.Registers, info.SharedBytes); block = threads.ToString(CultureInfo.InvariantCulture); }
                    else { (occ, threads) = Occupancy.Best(sm, info.Registers, info.SharedBytes); block = $"auto {threads}"; }
                    string head = FormattableString.Invariant(
                        $"| {k.Name} | {info.Registers} | {info.SpillStores}/{info.SpillLoads} | {info.StackFrame} | {info.SharedBytes} | {block} | {occ:P0} | ");
                    string tail = loop is null ? "- | - | - | - | - | - | - |"
                        : loop.Ffma == 0 ? FormattableString.Invariant($"{loop.Instructions} | 0 | - | - | {loop.SharedLoads128} | {loop.GlobalLoads} | {loop.Barriers} |")
                        : FormattableString.Invariant($"{loop.Instructions} | {loop.Ffma} | {loop.FfmaShare:P0} | {loop.SharedLoadsPerFfma:0.00} | {loop.SharedLoads128} | {loop.GlobalLoads} | {loop.Barriers} |");
                    text.AppendLine(head + tail);
                }
                catch (Exception e)
                {
                    failures++;
                    text.AppendLine($"| {k.Name} | FAILED: {e.GetType().Name}: {e.Message.Split('\n')[0].Replace("|", "/")} |");
                }
            }
        }
        text.AppendLine();
        text.AppendLine("Columns: ptxas -v (registers, spill stores/loads, stack frame, static shared memory); occupancy = resident warps / 64 " +
                        "for the launch's block size (explicitly grouped kernels: the tile configuration's threads, else 256; 'auto': the best " +
                        "block size, as ILGPU's auto-grouped launch picks on CUDA); loop = the loop with the most FFMA in cuobjdump -sass " +
                        "(static instruction counts of its body; LDS/FFMA counts a 128-bit shared load once).");
        if (filter is null)
        {
            text.AppendLine();
            text.Append(LaunchCountCommand.Table(["S32", "cifar10"]));
        }
        Console.Write(text.ToString());
        if (outFile is not null) File.WriteAllText(outFile, text.ToString());
        if (keep is null) Directory.Delete(work, recursive: true);
        if (failures > 0) Console.Error.WriteLine($"kernel-report: error: {failures} kernel compilation(s) failed (rows marked FAILED)");
        return failures > 0 ? 1 : 0;
    }

    /// <summary>The KernelSpecialization a launcher loads a kernel with: a tile configuration's (Threads,
    /// MinGroupsPerSM) when a generic argument has them (the GEMM core), else none.</summary>
    private static ILGPU.Runtime.KernelSpecialization Specialization(KernelEntry k)
    {
        const BindingFlags flags = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance;
        if (k.Method.IsGenericMethod)
            foreach (var a in k.Method.GetGenericArguments())
                if (a.GetProperty("Threads", flags) is { } t && a.GetProperty("MinGroupsPerSM", flags) is { } g)
                {
                    var tile = Activator.CreateInstance(a);
                    return new ILGPU.Runtime.KernelSpecialization((int)t.GetValue(tile)!, (int)g.GetValue(tile)!);
                }
        return new ILGPU.Runtime.KernelSpecialization();
    }

    /// <summary>Threads per group of an explicitly grouped kernel: a generic argument's <c>Threads</c>
    /// (the GEMM tile configurations) or 256; 0 for implicitly grouped kernels (auto).</summary>
    private static int BlockThreads(KernelEntry k)
    {
        if (k.ImplicitlyGrouped) return 0;
        if (k.Method.IsGenericMethod)
            foreach (var a in k.Method.GetGenericArguments())
                if (a.GetProperty("Threads", BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance) is { PropertyType: var t } p && t == typeof(int))
                    return (int)p.GetValue(Activator.CreateInstance(a))!;
        return 256;
    }
}

/// <summary>ptxas and cuobjdump: where they are and how to call them.</summary>
public sealed class CudaTools
{
    private readonly string ptxas, cuobjdump;

    private CudaTools(string ptxas, string cuobjdump, string version)
    {
        this.ptxas = ptxas;
        this.cuobjdump = cuobjdump;
        Version = version;
    }

    /// <summary>ptxas' release line, e.g. "ptxas release 11.8, V11.8.89".</summary>
    public string Version { get; }

    /// <summary>The cache tools/install-ptxas extracts Debian's nvidia-cuda-toolkit into.</summary>
    public static string CacheBin => Path.Combine(
        Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } x ? x : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"),
        "posteriorgpu", "cuda-11.8", "usr", "bin");

    /// <summary>Finds the tools (installing them with tools/install-ptxas when missing); null, with the reason
    /// printed, when they cannot be had.</summary>
    public static CudaTools? Find(string? bin)
    {
        var dirs = new List<string>();
        if (bin is not null) dirs.Add(bin);
        else
        {
            dirs.AddRange((Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries));
            dirs.Add(CacheBin);
        }
        string? dir = dirs.FirstOrDefault(d => File.Exists(Path.Combine(d, "ptxas")) && File.Exists(Path.Combine(d, "cuobjdump")));
        if (dir is null && bin is null && FindInstaller() is { } installer)
        {
            Console.Error.WriteLine($"kernel-report: ptxas/cuobjdump not found; running {installer}");
            var (code, output) = Exec("bash", [installer], 900);
            Console.Error.Write(output);
            if (code == 0 && File.Exists(Path.Combine(CacheBin, "ptxas"))) dir = CacheBin;
        }
        if (dir is null)
        {
            Console.Error.WriteLine(
                "kernel-report: error: ptxas and cuobjdump were not found" + (bin is not null ? $" in {bin}" : " on PATH or in " + CacheBin) +
                " and could not be installed. They come from Debian's nvidia-cuda-toolkit (component non-free): run tools/install-ptxas " +
                "as root (it enables non-free, downloads the package and extracts only the binaries), or pass --cuda-bin DIR.");
            return null;
        }
        var (vc, vo) = Exec(Path.Combine(dir, "ptxas"), ["--version"], 60);
        string version = vc == 0 ? vo.Split('\n').FirstOrDefault(l => l.Contains("release", StringComparison.Ordinal))?.Trim() ?? "ptxas" : "ptxas (version unknown)";
        return new CudaTools(Path.Combine(dir, "ptxas"), Path.Combine(dir, "cuobjdump"), version);
    }

    /// <summary>Assembles one PTX file for <paramref name="arch"/>; returns ptxas' verbose report.</summary>
    public string Assemble(string ptx, string cubin, string arch)
    {
        var (code, output) = Exec(ptxas, ["-v", $"-arch={arch}", "-o", cubin, ptx], 300);
        if (code != 0) throw new InvalidOperationException($"ptxas failed ({code}): {output.Trim()}");
        return output;
    }

    /// <summary>The SASS of a cubin.</summary>
    public string Disassemble(string cubin)
    {
        var (code, output) = Exec(cuobjdump, ["-sass", cubin], 300);
        if (code != 0) throw new InvalidOperationException($"cuobjdump failed ({code}): {output.Trim()}");
        return output;
    }

    private static string? FindInstaller()
    {
        foreach (var start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
                if (File.Exists(Path.Combine(d.FullName, "tools", "install-ptxas"))) return Path.Combine(d.FullName, "tools", "install-ptxas");
        return null;
    }

    private static (int Code, string Output) Exec(string file, string[] args, int timeoutSeconds)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {file}");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeoutSeconds * 1000))
        {
            p.Kill(entireProcessTree: true);
            return (124, $"{file} timed out after {timeoutSeconds} s");
        }
        return (p.ExitCode, stdout.Result + stderr.Result);
    }
}

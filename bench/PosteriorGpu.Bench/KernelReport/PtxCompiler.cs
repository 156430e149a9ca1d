using System.Text.RegularExpressions;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace PosteriorGpu.Bench.KernelReport;

/// <summary>
/// Compiles kernels to PTX with ILGPU's own PTX backend, exactly as a CUDA accelerator would, but without a
/// GPU: a backend needs only a Context (the library's, so optimisation level and math mode match) and a
/// CudaCapabilityContext for the target architecture.
/// </summary>
public sealed class PtxCompiler : IDisposable
{
    /// <summary>The PTX ISA that ILGPU 1.5.3 writes for a current driver (12.9): what a GPU machine gets.</summary>
    public static readonly CudaInstructionSet DriverIsa = new(8, 8);

    private readonly Context context;
    private readonly PTXBackend backend;

    /// <summary>A compiler for sm_<paramref name="major"/><paramref name="minor"/>.</summary>
    public PtxCompiler(Context context, int major, int minor)
    {
        this.context = context;
        var arch = new CudaArchitecture(major, minor);
        backend = new PTXBackend(context, new CudaCapabilityContext(arch), arch, DriverIsa, null);
    }

    /// <summary>The PTX of one kernel, with the specialization its launcher loads it with.</summary>
    public string Compile(KernelEntry kernel, KernelSpecialization specialization)
    {
        var entry = kernel.ImplicitlyGrouped
            ? EntryPointDescription.FromImplicitlyGroupedKernel(kernel.Method)
            : EntryPointDescription.FromExplicitlyGroupedKernel(kernel.Method);
        var compiled = (PTXCompiledKernel)backend.Compile(entry, specialization);
        return compiled.PTXAssembly;
    }

    /// <summary>
    /// Rewrites the <c>.version</c> line to <paramref name="maxIsa"/> when it is newer (ptxas 11.8 accepts
    /// PTX ISA 7.8; ILGPU uses no instruction newer than that for sm_80/sm_90, it only stamps the version
    /// its driver table names).
    /// </summary>
    public static string LowerVersion(string ptx, Version maxIsa) =>
        Regex.Replace(ptx, @"^\.version\s+(\d+)\.(\d+)", m =>
        {
            var v = new Version(int.Parse(m.Groups[1].Value), int.Parse(m.Groups[2].Value));
            return v > maxIsa ? $".version {maxIsa.Major}.{maxIsa.Minor}" : m.Value;
        }, RegexOptions.Multiline);

    /// <inheritdoc/>
    public void Dispose() => backend.Dispose();
}

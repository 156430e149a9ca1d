using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using NUnit.Framework;
using PosteriorGpu.Kernels.Conv;
using PosteriorGpu.Kernels.Gemm;

namespace PosteriorGpu.Tests.Kernels;

/// <summary>
/// The tiled (GPU) kernels run on the CPU accelerator in the other tests, which executes them as .NET
/// code; this compiles them with ILGPU's PTX backend (no GPU needed) so that a construct the CUDA
/// backend rejects (generic interface calls, views inside struct parameters, shared memory) fails here.
/// </summary>
public class TiledGemmPtxTests
{
    private static IEnumerable<TestCaseData> Kernels()
    {
        yield return new TestCaseData(typeof(Gemm.Operands)).SetArgDisplayNames("gemm");
        yield return new TestCaseData(typeof(Conv2d.Operands)).SetArgDisplayNames("conv2d");
    }

    [TestCaseSource(nameof(Kernels))]
    public void TiledKernel_CompilesToPtx(Type operands)
    {
        using var context = Context.Create(b => b.Default().Math(MathMode.Fast32BitOnly));
        using var backend = new PTXBackend(context, CudaArchitecture.SM_70, CudaInstructionSet.ISA_70, null!);
        var method = typeof(TiledGemm).GetMethod(nameof(TiledGemm.Kernel),
            System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!.MakeGenericMethod(operands);
        var entry = EntryPointDescription.FromExplicitlyGroupedKernel(method);
        var compiled = (PTXCompiledKernel)backend.Compile(entry, KernelSpecialization.Empty);
        Assert.That(compiled.PTXAssembly, Does.Contain("bar.sync"), "the tiled kernel synchronises its group");
        Assert.That(compiled.PTXAssembly, Does.Contain(".shared"), "the tiled kernel stages tiles in shared memory");
    }
}

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
/// The GEMM core's kernels run on the CPU accelerator in the other tests, which executes them as .NET
/// code; this compiles each tile x operand pair with ILGPU's PTX backend (no GPU needed) so that a
/// construct the CUDA backend rejects (generic interface calls, views inside struct parameters, shared
/// memory extents that are not constants) fails here, and checks the shared reads are 16-byte vectors.
/// </summary>
public class GemmCorePtxTests
{
    private static IEnumerable<TestCaseData> Kernels() =>
        from tile in new[] { typeof(Tile128x128), typeof(Tile64x64), typeof(Tile64x32), typeof(Tile32x32) }
        from ops in new[] { typeof(Gemm.Operands), typeof(Conv2d.Operands), typeof(Conv2dUpsampled.Operands), typeof(Conv2dNormalized.Operands), typeof(Conv2dBackward.WeightOperands) }
        select new TestCaseData(tile, ops).SetArgDisplayNames(tile.Name, ops.DeclaringType!.Name + "." + ops.Name);

    [TestCaseSource(nameof(Kernels))]
    public void CoreKernel_CompilesToPtxWithVectorSharedLoads(Type tile, Type operands)
    {
        using var context = PosteriorGpu.Kernels.Device.GpuDevice.CreateContext();   // the library's settings (algorithms, fast math, O2)
        using var backend = new PTXBackend(context, CudaArchitecture.SM_70, CudaInstructionSet.ISA_70, null!);
        var method = typeof(GemmCore).GetMethod(nameof(GemmCore.Kernel),
            System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!.MakeGenericMethod(tile, operands);
        var entry = EntryPointDescription.FromExplicitlyGroupedKernel(method);
        var compiled = (PTXCompiledKernel)backend.Compile(entry, KernelSpecialization.Empty);
        Assert.That(compiled.PTXAssembly, Does.Contain("bar.sync"), "the core synchronises its group");
        Assert.That(compiled.PTXAssembly, Does.Contain("ld.shared.v4.f32"), "fragments are read from shared memory as 16-byte vectors");
    }

    [TestCase(4096, 4096, 4096, 1, 132, false, 128, 128, 1, 1024)]  // big: 128x128 tiles fill the GPU
    [TestCase(64, 262144, 576, 1, 132, true, 64, 64, 1, 1024)]      // 64-channel conv at batch 256: 128 rows would be half padding
    [TestCase(3, 262144, 576, 1, 132, true, 64, 64, 1, 1024)]       // 3-channel output conv: padding alike, 64x64 has the better loop
    [TestCase(128, 8192, 1152, 1, 132, true, 64, 64, 1, 1024)]      // 64 tiles of 128 < 132 SMs, 256 of 64: 64x64
    [TestCase(128, 1024, 1152, 1, 132, true, 64, 32, 3, 1024)]      // conv: 64 tiles of 64x32 < 132 SMs and k long: split in 3
    [TestCase(128, 64, 1152, 1, 132, true, 64, 32, 8, 1024)]        // conv at batch 1 on an 8x8 map: 4 tiles, split in 8
    [TestCase(128, 1024, 1152, 1, 132, false, 32, 32, 2, 1024)]     // GEMM: 128 tiles of 32 < 132 SMs: split in 2
    [TestCase(256, 1, 1024, 1, 132, false, 32, 32, 8, 1024)]        // one-column product (time embedding at batch 1): split-K
    [TestCase(64, 64, 64, 1, 132, false, 32, 32, 1, 1024)]          // short k: never split
    [TestCase(4096, 4096, 4096, 1, 132, false, 64, 64, 1, 128)]     // (with groups of at most 128 threads: no 128x128)
    public void Choose_FollowsTheHeuristic(int m, int n, int k, int batch, int sms, bool im2col, int tileM, int tileN, int splits, int maxThreads)
    {
        var plan = GemmCore.Choose(m, n, k, batch, sms, maxThreads, im2col);
        Assert.That((plan.TileM, plan.TileN, plan.Splits), Is.EqualTo((tileM, tileN, splits)));
    }
}

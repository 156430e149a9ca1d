using NUnit.Framework;
using PosteriorGpu.Kernels.Device;

namespace PosteriorGpu.Tests;

/// <summary>One CPU accelerator for the whole run (creating one costs about a second), and the GPU
/// when the machine has one. Tests take the device lock because a device is single-threaded.</summary>
public static class TestDevices
{
    private static readonly Lazy<GpuDevice> cpu = new(GpuDevice.OpenCpu);
    private static readonly Lazy<GpuDevice> cpuWide = new(() => GpuDevice.OpenCpu(256));
    private static readonly Lazy<GpuDevice> cpuOnGpuPaths = new(() => GpuDevice.OpenCpuOnGpuPaths(256));
    private static readonly Lazy<GpuDevice?> gpu = new(() =>
    {
        foreach (var kind in new[] { DeviceKind.Cuda, DeviceKind.OpenCL })
        {
            try { return GpuDevice.Open(kind); }
            catch (InvalidOperationException) { }
        }
        return null;
    });

    /// <summary>ILGPU's CPU accelerator.</summary>
    public static GpuDevice Cpu => cpu.Value;

    /// <summary>A CPU accelerator with 256-thread groups: runs every tile configuration of the GEMM core.</summary>
    public static GpuDevice CpuWide => cpuWide.Value;

    /// <summary>A CPU accelerator with 256-thread groups on which launchers choose their GPU kernels (the GEMM core,
    /// GroupNorm's slab and the fusions built on them): a whole model on the GPU's code paths, slowly, without a GPU.</summary>
    public static GpuDevice CpuOnGpuPaths => cpuOnGpuPaths.Value;

    /// <summary>The CUDA or OpenCL device; ignores (skips) the test when there is none.</summary>
    public static GpuDevice Gpu
    {
        get
        {
            var g = gpu.Value;
            if (g is null) Assert.Ignore("no CUDA or OpenCL device on this machine");
            return g!;
        }
    }
}

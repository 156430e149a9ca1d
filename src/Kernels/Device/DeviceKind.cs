namespace PosteriorGpu.Kernels.Device;

/// <summary>The kind of accelerator a <see cref="GpuDevice"/> runs kernels on.</summary>
public enum DeviceKind
{
    /// <summary>An NVIDIA GPU through ILGPU's CUDA backend.</summary>
    Cuda,
    /// <summary>An OpenCL device (GPU) through ILGPU's OpenCL backend.</summary>
    OpenCL,
    /// <summary>ILGPU's CPU accelerator: every kernel runs as .NET code on the host's cores.</summary>
    Cpu,
}

/// <summary>Parses and names <see cref="DeviceKind"/> values as users write them (cuda|opencl|cpu).</summary>
public static class DeviceKinds
{
    /// <summary>The environment variable that overrides automatic device choice.</summary>
    public const string EnvironmentVariable = "POSTERIORGPU_DEVICE";

    /// <summary>Parses "cuda", "opencl" or "cpu" (case-insensitive); "auto" or empty gives null.</summary>
    /// <exception cref="ArgumentException">The text names no known device kind.</exception>
    public static DeviceKind? Parse(string? text, string source = "device")
    {
        switch (text?.Trim().ToLowerInvariant())
        {
            case null or "" or "auto": return null;
            case "cuda": return DeviceKind.Cuda;
            case "opencl" or "cl": return DeviceKind.OpenCL;
            case "cpu": return DeviceKind.Cpu;
            default:
                throw new ArgumentException(
                    $"{source}: unknown device '{text}'; expected one of cuda, opencl, cpu (or auto).");
        }
    }

    /// <summary>The lower-case name used on the command line and in the environment variable.</summary>
    public static string Name(this DeviceKind kind) => kind switch
    {
        DeviceKind.Cuda => "cuda",
        DeviceKind.OpenCL => "opencl",
        _ => "cpu",
    };
}

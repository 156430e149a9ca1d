using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.IO;

namespace PosteriorGpu.Models.UNet;

/// <summary>Moves named tensors of a safetensors checkpoint to the device, checking each shape,
/// and reports tensors the architecture did not use (a config that does not match its weights).</summary>
internal sealed class WeightLoader(SafeTensorsFile file, GpuDevice device, string path)
{
    private readonly HashSet<string> used = new();

    public GpuDevice Device { get; } = device;

    public Tensor Load(string name, params int[] shape)
    {
        used.Add(name);
        return Tensor.FromHost(Device, file.GetFloat32(name, shape), shape);
    }

    public bool Has(string name) => file.Names.Contains(name);

    public void ThrowIfUnused()
    {
        var extra = file.Names.Where(n => !used.Contains(n)).OrderBy(n => n).ToList();
        if (extra.Count > 0)
            throw new CheckpointFormatException(path,
                $"{extra.Count} tensor(s) are not used by the architecture in config.json " +
                $"(first: {string.Join(", ", extra.Take(5))}); the config does not match the weights");
    }
}

using System.Globalization;
using System.Text.Json;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.IO;
using PosteriorGpu.Models.UNet;

namespace PosteriorGpu.Models.Training;

/// <summary>
/// The resumable state a trainer writes beside its model (one safetensors file): the weights, Adam's two
/// moments, any further per-parameter tensors (the score model's EMA), the step and the seconds trained.
/// The step is two floats (high and low 16 bits) so that any int32 step survives float32.
/// </summary>
internal static class AdamCheckpoint
{
    /// <summary>The metadata both the state and the model folder carry.</summary>
    public static Dictionary<string, string> Metadata(int step, double seconds, string device, object options) => new()
    {
        ["step"] = step.ToString(CultureInfo.InvariantCulture),
        ["seconds"] = seconds.ToString("R", CultureInfo.InvariantCulture),
        ["device"] = device,
        ["options"] = JsonSerializer.Serialize(options),
    };

    /// <summary>Writes weights, moments, the extra tensors (prefix, flat values) and the step to <paramref name="path"/>.</summary>
    public static void Write(string path, ParameterStore p, float[] weights, Tensor m, Tensor v, int step,
        IReadOnlyDictionary<string, string> metadata, params (string Prefix, float[] Values)[] extra)
    {
        var tensors = p.Split(weights, "weights.")
            .Concat(p.Split(m.ToHost(), "adam_m."))
            .Concat(p.Split(v.ToHost(), "adam_v."));
        foreach (var (prefix, values) in extra) tensors = tensors.Concat(p.Split(values, prefix));
        SafeTensorsWriter.Write(path, tensors.Append(("step", [2], [step / 65536, step % 65536])), metadata);
    }

    /// <summary>Restores weights and moments into <paramref name="p"/>, <paramref name="m"/> and
    /// <paramref name="v"/>; returns the file (for extra tensors), the step and the seconds trained so far.</summary>
    public static (SafeTensorsFile File, int Step, double Seconds) Read(string path, ParameterStore p, Tensor m, Tensor v)
    {
        var file = SafeTensorsFile.Read(path);
        p.Values.CopyFrom(p.Gather(file, "weights."));
        m.CopyFrom(p.Gather(file, "adam_m."));
        v.CopyFrom(p.Gather(file, "adam_v."));
        var step = file.GetFloat32("step", 2);
        double seconds = file.Metadata.TryGetValue("seconds", out var s) ? double.Parse(s, CultureInfo.InvariantCulture) : 0;
        return (file, (int)step[0] * 65536 + (int)step[1], seconds);
    }
}

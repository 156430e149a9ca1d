using PosteriorGpu.Models.IO;

namespace PosteriorGpu.Models.UNet;

/// <summary>Reads named tensors of a safetensors checkpoint for the parameter store, checking each shape,
/// and reports tensors the architecture did not use (a config that does not match its weights).</summary>
internal sealed class WeightLoader(SafeTensorsFile file, string path) : ParameterSource
{
    private readonly HashSet<string> used = new();

    /// <summary>Attention parameter names before diffusers 0.14 (query, key, value, proj_attn). diffusers
    /// still renames them on load (ModelMixin._fix_state_dict_keys_on_load for its
    /// _from_deprecated_attn_block attentions, which are all the attentions of UNet2DModel), and hub
    /// checkpoints such as google/ddpm-cifar10-32 use them.</summary>
    private static readonly (string Current, string Legacy)[] LegacyAttentionNames =
        [(".to_q.", ".query."), (".to_k.", ".key."), (".to_v.", ".value."), (".to_out.0.", ".proj_attn.")];

    public override float[] Values(string name, int[] shape, ParameterInit init)
    {
        name = Resolve(name);
        used.Add(name);
        return file.GetFloat32(name, shape);
    }

    /// <summary>The name in the file: the current one, else its legacy attention name when only that is present.</summary>
    private string Resolve(string name)
    {
        if (file.ContainsKey(name)) return name;
        foreach (var (current, legacy) in LegacyAttentionNames)
        {
            int at = name.IndexOf(".attentions.", StringComparison.Ordinal) >= 0 ? name.LastIndexOf(current, StringComparison.Ordinal) : -1;
            if (at < 0) continue;
            string old = name[..at] + legacy + name[(at + current.Length)..];
            if (file.ContainsKey(old)) return old;
        }
        return name;
    }

    public override void Complete()
    {
        var extra = file.Names.Where(n => !used.Contains(n)).OrderBy(n => n).ToList();
        if (extra.Count > 0)
            throw new CheckpointFormatException(path,
                $"{extra.Count} tensor(s) are not used by the architecture in config.json " +
                $"(first: {string.Join(", ", extra.Take(5))}); the config does not match the weights");
    }
}

namespace PosteriorGpu.Models.IO;

/// <summary>The dtype names of the safetensors format and their sizes in bytes.</summary>
internal static class SafeTensorsDType
{
    private static readonly Dictionary<string, int> sizes = new(StringComparer.Ordinal)
    {
        ["BOOL"] = 1, ["U8"] = 1, ["I8"] = 1, ["F8_E5M2"] = 1, ["F8_E4M3"] = 1,
        ["I16"] = 2, ["U16"] = 2, ["F16"] = 2, ["BF16"] = 2,
        ["I32"] = 4, ["U32"] = 4, ["F32"] = 4,
        ["I64"] = 8, ["U64"] = 8, ["F64"] = 8,
    };

    /// <summary>The dtypes that convert to float32.</summary>
    public const string FloatTypes = "F32, F16, BF16, F64";

    /// <summary>All dtype names, for error messages.</summary>
    public static string Known => string.Join(", ", sizes.Keys);

    /// <summary>Size in bytes of one element; false for an unknown dtype.</summary>
    public static bool TrySize(string dtype, out int size) => sizes.TryGetValue(dtype, out size);
}

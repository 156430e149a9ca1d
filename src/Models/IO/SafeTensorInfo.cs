namespace PosteriorGpu.Models.IO;

/// <summary>One tensor's entry in a safetensors header: dtype, shape and byte range
/// [<paramref name="Begin"/>, <paramref name="End"/>) relative to the start of the data buffer.</summary>
public sealed record SafeTensorInfo(string Name, string DType, int[] Shape, long Begin, long End)
{
    /// <summary>Number of elements (product of the shape; 1 for a scalar).</summary>
    public long ElementCount
    {
        get
        {
            long n = 1;
            foreach (int d in Shape) n *= d;
            return n;
        }
    }
}

using System.Buffers.Binary;
using System.Text.Json;

namespace PosteriorGpu.Models.IO;

/// <summary>Writes safetensors files that the reference implementation (and diffusers) load:
/// tensors sorted by name, contiguous data, header padded with spaces to an 8-byte boundary.</summary>
public static class SafeTensorsWriter
{
    /// <summary>Writes the tensors as F32 (or F16 when <paramref name="float16"/>, rounding to nearest
    /// and overflowing to infinity beyond ±65504), with an optional "__metadata__" map. The file is
    /// written to a temporary name first and then moved into place.</summary>
    /// <exception cref="ArgumentException">Duplicate or reserved names, or data not matching the shape.</exception>
    public static void Write(string path, IEnumerable<(string Name, int[] Shape, float[] Data)> tensors,
        IReadOnlyDictionary<string, string>? metadata = null, bool float16 = false)
    {
        var list = tensors.OrderBy(t => t.Name, StringComparer.Ordinal).ToList();
        int size = float16 ? 2 : 4;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, shape, data) in list)
        {
            if (name == "__metadata__") throw new ArgumentException("'__metadata__' is reserved and cannot name a tensor", nameof(tensors));
            if (!seen.Add(name)) throw new ArgumentException($"tensor '{name}' is given twice", nameof(tensors));
            long count = 1;
            foreach (int d in shape)
            {
                if (d < 0) throw new ArgumentException($"tensor '{name}': shape [{string.Join(", ", shape)}] has a negative dimension", nameof(tensors));
                count = checked(count * d);
            }
            if (count != data.Length)
                throw new ArgumentException($"tensor '{name}': shape [{string.Join(", ", shape)}] holds {count} elements but the data has {data.Length}", nameof(tensors));
        }

        var json = new MemoryStream();
        using (var w = new Utf8JsonWriter(json))
        {
            w.WriteStartObject();
            if (metadata is not null)
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata.OrderBy(p => p.Key, StringComparer.Ordinal)) w.WriteString(k, v);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var (name, shape, data) in list)
            {
                w.WriteStartObject(name);
                w.WriteString("dtype", float16 ? "F16" : "F32");
                w.WriteStartArray("shape");
                foreach (int d in shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                offset += (long)data.Length * size;
                w.WriteNumberValue(offset);
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        int padding = (int)((8 - json.Length % 8) % 8);
        for (int i = 0; i < padding; i++) json.WriteByte((byte)' ');

        FileBytes.WriteAtomically(path, stream =>
        {
            Span<byte> prefix = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)json.Length);
            stream.Write(prefix);
            json.Position = 0;
            json.CopyTo(stream);
            var chunk = new byte[1 << 16];
            foreach (var (_, _, data) in list)
            {
                int perChunk = chunk.Length / size;
                for (int start = 0; start < data.Length; start += perChunk)
                {
                    int n = Math.Min(perChunk, data.Length - start);
                    for (int i = 0; i < n; i++)
                    {
                        if (float16) BinaryPrimitives.WriteHalfLittleEndian(chunk.AsSpan(2 * i), (Half)data[start + i]);
                        else BinaryPrimitives.WriteSingleLittleEndian(chunk.AsSpan(4 * i), data[start + i]);
                    }
                    stream.Write(chunk, 0, n * size);
                }
            }
        });
    }
}

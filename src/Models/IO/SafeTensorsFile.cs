using System.Buffers.Binary;
using System.Collections;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace PosteriorGpu.Models.IO;

/// <summary>A safetensors file held in memory (https://github.com/huggingface/safetensors, format:
/// u64 little-endian header length N, N bytes of UTF-8 JSON mapping each tensor name to
/// {dtype, shape, data_offsets: [begin, end]} plus an optional "__metadata__" string map, then the
/// data buffer the offsets index). Every entry is checked against the file when it is read.</summary>
public sealed class SafeTensorsFile : IReadOnlyDictionary<string, SafeTensorInfo>
{
    /// <summary>Largest header accepted (the reference implementation's limit).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private const string MetadataKey = "__metadata__";

    private readonly byte[] bytes;
    private readonly int dataStart;
    private readonly Dictionary<string, SafeTensorInfo> tensors;
    private readonly List<string> names;

    private SafeTensorsFile(string fileName, byte[] bytes, int dataStart, Dictionary<string, SafeTensorInfo> tensors,
        List<string> names, Dictionary<string, string> metadata)
    {
        FileName = fileName;
        this.bytes = bytes;
        this.dataStart = dataStart;
        this.tensors = tensors;
        this.names = names;
        Metadata = metadata;
    }

    /// <summary>The file this was read from (as the caller named it).</summary>
    public string FileName { get; }

    /// <summary>Tensor names in header order.</summary>
    public IReadOnlyCollection<string> Names => names;

    /// <summary>The "__metadata__" string map (empty when the file has none).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Reads and validates a safetensors file.</summary>
    /// <exception cref="CheckpointFormatException">The file is malformed; the message names the file and the tensor.</exception>
    public static SafeTensorsFile Read(string path) => Parse(FileBytes.ReadAll(path), path);

    /// <summary>Validates the bytes of a safetensors file; <paramref name="fileName"/> is used in error
    /// messages. The result keeps a reference to <paramref name="bytes"/>.</summary>
    /// <exception cref="CheckpointFormatException">The bytes are not a valid safetensors file.</exception>
    public static SafeTensorsFile Parse(byte[] bytes, string fileName)
    {
        if (bytes.Length < 8)
            throw new CheckpointFormatException(fileName, $"file is {bytes.Length} bytes, too short to hold the 8-byte header length");
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        if (headerLength > MaxHeaderBytes)
            throw new CheckpointFormatException(fileName, $"header length {headerLength} exceeds the {MaxHeaderBytes}-byte limit (not a safetensors file?)");
        if ((long)headerLength > bytes.Length - 8)
            throw new CheckpointFormatException(fileName, $"header length {headerLength} runs past the end of the file ({bytes.Length} bytes)");
        int dataStart = 8 + (int)headerLength;
        long bufferLength = bytes.Length - dataStart;

        if (!System.Text.Unicode.Utf8.IsValid(bytes.AsSpan(8, (int)headerLength)))
            throw new CheckpointFormatException(fileName, "header is not valid UTF-8");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(bytes.AsMemory(8, (int)headerLength));
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException(fileName, $"header is not valid JSON: {e.Message}", e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new CheckpointFormatException(fileName, $"header must be a JSON object but is {doc.RootElement.ValueKind}");
            var tensors = new Dictionary<string, SafeTensorInfo>(StringComparer.Ordinal);
            var names = new List<string>();
            Dictionary<string, string>? metadata = null;
            foreach (var property in doc.RootElement.EnumerateObject())
            {
                if (property.Name == MetadataKey)
                {
                    if (metadata is not null) throw new CheckpointFormatException(fileName, "header has two '__metadata__' entries");
                    metadata = ParseMetadata(property.Value, fileName);
                    continue;
                }
                var info = ParseEntry(property.Name, property.Value, bufferLength, fileName);
                if (!tensors.TryAdd(info.Name, info))
                    throw new CheckpointFormatException(fileName, $"tensor '{info.Name}' appears twice in the header");
                names.Add(info.Name);
            }
            RequireTiling(tensors.Values, bufferLength, fileName);
            return new SafeTensorsFile(fileName, bytes, dataStart, tensors, names, metadata ?? new Dictionary<string, string>());
        }
    }

    /// <summary>The format requires the tensors to tile the data buffer exactly, as the reference
    /// implementation checks (InvalidOffset, MetadataIncompleteBuffer): overlapping tensors would alias
    /// one another's bytes, and bytes no tensor owns are a hidden payload or a damaged file.</summary>
    private static void RequireTiling(IEnumerable<SafeTensorInfo> entries, long bufferLength, string fileName)
    {
        long end = 0;
        string? previous = null;
        foreach (var info in entries.OrderBy(e => e.Begin).ThenBy(e => e.End))
        {
            if (info.Begin != end)
                throw new CheckpointFormatException(fileName, $"tensor '{info.Name}': data_offsets [{info.Begin}, {info.End}] " +
                    (info.Begin < end ? "overlap" : "leave a gap after") +
                    (previous is null ? " the start of the data buffer" : $" tensor '{previous}', which ends at {end}"));
            end = info.End;
            previous = info.Name;
        }
        if (end != bufferLength)
            throw new CheckpointFormatException(fileName,
                $"the tensors cover {end} bytes of the {bufferLength}-byte data buffer; the file is damaged or carries extra data");
    }

    private static Dictionary<string, string> ParseMetadata(JsonElement value, string fileName)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw new CheckpointFormatException(fileName, $"'__metadata__' must be an object of strings but is {value.ValueKind}");
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var p in value.EnumerateObject())
        {
            if (p.Value.ValueKind != JsonValueKind.String)
                throw new CheckpointFormatException(fileName, $"'__metadata__' entry '{p.Name}' must be a string but is {p.Value.ValueKind}");
            if (!map.TryAdd(p.Name, p.Value.GetString()!))
                throw new CheckpointFormatException(fileName, $"'__metadata__' entry '{p.Name}' appears twice");
        }
        return map;
    }

    private static SafeTensorInfo ParseEntry(string name, JsonElement entry, long bufferLength, string fileName)
    {
        CheckpointFormatException Fail(string problem) => new(fileName, $"tensor '{name}': {problem}");

        if (entry.ValueKind != JsonValueKind.Object)
            throw Fail($"header entry must be an object but is {entry.ValueKind}");
        if (!entry.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw Fail("missing or non-string 'dtype'");
        string dtype = dtypeElement.GetString()!;
        if (!SafeTensorsDType.TrySize(dtype, out int size))
            throw Fail($"unknown dtype '{dtype}' (known: {SafeTensorsDType.Known})");

        if (!entry.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
            throw Fail("missing or non-array 'shape'");
        int rank = shapeElement.GetArrayLength();
        if (rank > 64) throw Fail($"shape has {rank} dimensions (at most 64 supported)");
        var shape = new int[rank];
        long count = 1;
        int k = 0;
        foreach (var dim in shapeElement.EnumerateArray())
        {
            if (dim.ValueKind != JsonValueKind.Number || !dim.TryGetInt64(out long d) || d < 0 || d > int.MaxValue)
                throw Fail($"shape entry {k} ({dim.GetRawText()}) is not an integer in [0, {int.MaxValue}]");
            shape[k++] = (int)d;
        }
        foreach (int d in shape)
        {
            // Overflow-safe product: once it exceeds what any file could hold it stays there (a zero still wins).
            if (d == 0) { count = 0; break; }
            count = count > Array.MaxLength ? count : count * d;
        }
        if (count > Array.MaxLength)
            throw Fail($"shape {Format(shape)} has too many elements");
        long byteLength = count * size;

        if (!entry.TryGetProperty("data_offsets", out var offsets) || offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2)
            throw Fail("missing 'data_offsets' or it is not [begin, end]");
        long begin = ReadOffset(offsets[0], "begin", Fail);
        long end = ReadOffset(offsets[1], "end", Fail);
        if (end < begin)
            throw Fail($"data_offsets [{begin}, {end}] end before they begin");
        if (end > bufferLength)
            throw Fail($"data_offsets [{begin}, {end}] run past the end of the data buffer ({bufferLength} bytes)");
        if (end - begin != byteLength)
            throw Fail($"data_offsets [{begin}, {end}] span {end - begin} bytes but shape {Format(shape)} of {dtype} needs {byteLength}");
        return new SafeTensorInfo(name, dtype, shape, begin, end);
    }

    private static long ReadOffset(JsonElement e, string which, Func<string, CheckpointFormatException> fail)
    {
        if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt64(out long v) || v < 0)
            throw fail($"data_offsets {which} ({e.GetRawText()}) is not a non-negative integer");
        return v;
    }

    /// <summary>The tensor's shape (a copy).</summary>
    /// <exception cref="CheckpointFormatException">No such tensor.</exception>
    public int[] ShapeOf(string name) => (int[])Info(name).Shape.Clone();

    /// <summary>The tensor's dtype name (F32, F16, BF16, ...).</summary>
    /// <exception cref="CheckpointFormatException">No such tensor.</exception>
    public string DTypeOf(string name) => Info(name).DType;

    /// <summary>The tensor's raw little-endian bytes.</summary>
    /// <exception cref="CheckpointFormatException">No such tensor.</exception>
    public ReadOnlyMemory<byte> GetBytes(string name)
    {
        var info = Info(name);
        return bytes.AsMemory(dataStart + (int)info.Begin, (int)(info.End - info.Begin));
    }

    /// <summary>The tensor converted to float32 (from F32, F16, BF16 or F64).</summary>
    /// <exception cref="CheckpointFormatException">No such tensor, or its dtype is not a float type.</exception>
    public float[] GetFloat32(string name)
    {
        var info = Info(name);
        var src = bytes.AsSpan(dataStart + (int)info.Begin, (int)(info.End - info.Begin));
        var result = new float[info.ElementCount];
        switch (info.DType)
        {
            case "F32" when BitConverter.IsLittleEndian:
                MemoryMarshal.Cast<byte, float>(src).CopyTo(result);
                break;
            case "F32":
                for (int i = 0; i < result.Length; i++) result[i] = BinaryPrimitives.ReadSingleLittleEndian(src[(4 * i)..]);
                break;
            case "F16":
                for (int i = 0; i < result.Length; i++) result[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(src[(2 * i)..]);
                break;
            case "BF16":
                for (int i = 0; i < result.Length; i++) result[i] = BFloat16ToSingle(BinaryPrimitives.ReadUInt16LittleEndian(src[(2 * i)..]));
                break;
            case "F64":
                for (int i = 0; i < result.Length; i++) result[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(src[(8 * i)..]);
                break;
            default:
                throw new CheckpointFormatException(FileName, $"tensor '{name}': dtype {info.DType} cannot be read as float32 (supported: {SafeTensorsDType.FloatTypes})");
        }
        return result;
    }

    /// <summary>The tensor converted to float32, after checking it has exactly <paramref name="expectedShape"/>.</summary>
    /// <exception cref="CheckpointFormatException">No such tensor, a different shape, or a non-float dtype.</exception>
    public float[] GetFloat32(string name, params int[] expectedShape)
    {
        var info = Info(name);
        if (!info.Shape.AsSpan().SequenceEqual(expectedShape))
            throw new CheckpointFormatException(FileName, $"tensor '{name}': expected shape {Format(expectedShape)} but got {Format(info.Shape)}");
        return GetFloat32(name);
    }

    /// <summary>Converts a bfloat16 bit pattern (the upper half of a float32) to float32.</summary>
    public static float BFloat16ToSingle(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);

    private SafeTensorInfo Info(string name) =>
        tensors.TryGetValue(name, out var info) ? info : throw new CheckpointFormatException(FileName, $"missing tensor '{name}'");

    private static string Format(int[] shape) => "[" + string.Join(", ", shape) + "]";

    /// <summary>The entry for a tensor.</summary>
    /// <exception cref="CheckpointFormatException">No such tensor.</exception>
    public SafeTensorInfo this[string key] => Info(key);

    /// <summary>Tensor names in header order.</summary>
    public IEnumerable<string> Keys => names;

    /// <summary>Entries in header order.</summary>
    public IEnumerable<SafeTensorInfo> Values => names.Select(n => tensors[n]);

    /// <summary>Number of tensors (the metadata entry is not counted).</summary>
    public int Count => names.Count;

    /// <summary>Whether the file holds a tensor of that name.</summary>
    public bool ContainsKey(string key) => tensors.ContainsKey(key);

    /// <summary>Looks a tensor up without throwing.</summary>
    public bool TryGetValue(string key, [MaybeNullWhen(false)] out SafeTensorInfo value) => tensors.TryGetValue(key, out value);

    /// <summary>Entries in header order.</summary>
    public IEnumerator<KeyValuePair<string, SafeTensorInfo>> GetEnumerator()
    {
        foreach (var n in names) yield return new(n, tensors[n]);
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}

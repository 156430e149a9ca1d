using System.Buffers.Binary;
using PosteriorGpu.Models.IO;

namespace PosteriorGpu.Models.Data;

/// <summary>Reads the IDX format of LeCun's MNIST files: two zero bytes, a type byte (0x08 u8, 0x09 i8,
/// 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64), a byte with the number of dimensions, one big-endian u32 per
/// dimension, then the data, big-endian, in C order. The sizes in the header are checked against the
/// file's length before any data is read, so a corrupt header never triggers a huge allocation.</summary>
public static class Idx
{
    /// <summary>Reads a whole IDX file.</summary>
    /// <exception cref="CheckpointFormatException">The file is not IDX, is truncated, has trailing bytes
    /// or uses an unknown type byte; the message starts with the file name.</exception>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    public static IdxArray Read(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        var (type, shape, dataStart) = ReadHeader(stream, path);
        long need = DataBytes(type, shape, path);
        long have = stream.Length - dataStart;
        if (have != need)
            throw new CheckpointFormatException(path, have < need
                ? $"truncated IDX file: shape {Format(shape)} of {type.Name} needs {need} data bytes but only {have} follow the header"
                : $"IDX file has {have - need} bytes after the data of shape {Format(shape)} of {type.Name} (wrong file or corrupt header?)");
        var data = new byte[need];
        stream.ReadExactly(data);
        return new IdxArray(path, type, shape, data);
    }

    /// <summary>Reads only the header: element type and shape (for a quick check of a large file).</summary>
    /// <exception cref="CheckpointFormatException">The header is malformed.</exception>
    public static (IdxType Type, int[] Shape) ReadHeader(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        var (type, shape, _) = ReadHeader(stream, path);
        return (type, shape);
    }

    private static (IdxType Type, int[] Shape, long DataStart) ReadHeader(Stream stream, string path)
    {
        Span<byte> magic = stackalloc byte[4];
        if (stream.ReadAtLeast(magic, 4, throwOnEndOfStream: false) < 4)
            throw new CheckpointFormatException(path, $"not an IDX file: {stream.Length} bytes is shorter than the 4-byte magic number");
        if (magic[0] != 0 || magic[1] != 0)
            throw new CheckpointFormatException(path,
                $"not an IDX file: the magic number must start with two zero bytes, found 0x{magic[0]:X2} 0x{magic[1]:X2}" +
                (magic[0] == 0x1F && magic[1] == 0x8B ? " (this is a gzip file; gunzip it first)" : ""));
        if (!IdxType.TryFromCode(magic[2], out var type))
            throw new CheckpointFormatException(path,
                $"unknown IDX type byte 0x{magic[2]:X2} (known: 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64)");
        int rank = magic[3];
        if (rank == 0)
            throw new CheckpointFormatException(path, "IDX header has zero dimensions");
        var dims = new byte[4 * rank];
        if (stream.ReadAtLeast(dims, dims.Length, throwOnEndOfStream: false) < dims.Length)
            throw new CheckpointFormatException(path, $"truncated IDX header: {rank} dimensions need {4 + dims.Length} header bytes, the file has {stream.Length}");
        var shape = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            uint d = BinaryPrimitives.ReadUInt32BigEndian(dims.AsSpan(4 * i));
            if (d > int.MaxValue)
                throw new CheckpointFormatException(path, $"IDX dimension {i} is {d}, out of range");
            shape[i] = (int)d;
        }
        return (type, shape, 4 + dims.Length);
    }

    private static long DataBytes(IdxType type, int[] shape, string path)
    {
        // Overflow-safe: a product past the largest array can never match a real file, so stop growing it.
        long count = 1;
        foreach (int d in shape)
        {
            if (d == 0) return 0;
            count = count > Array.MaxLength ? count : count * d;
        }
        if (count > Array.MaxLength || count * type.Size > Array.MaxLength)
            throw new CheckpointFormatException(path, $"IDX shape {Format(shape)} of {type.Name} is too large (over {Array.MaxLength} bytes)");
        return count * type.Size;
    }

    internal static string Format(int[] shape) => "[" + string.Join(", ", shape) + "]";
}

/// <summary>An IDX element type: its type byte, size in bytes and name.</summary>
public readonly record struct IdxType(byte Code, int Size, string Name)
{
    /// <summary>Unsigned 8-bit (MNIST images and labels).</summary>
    public static readonly IdxType UInt8 = new(0x08, 1, "u8");

    /// <summary>Maps a type byte to its type; false for unknown bytes.</summary>
    public static bool TryFromCode(byte code, out IdxType type)
    {
        type = code switch
        {
            0x08 => UInt8,
            0x09 => new IdxType(code, 1, "i8"),
            0x0B => new IdxType(code, 2, "i16"),
            0x0C => new IdxType(code, 4, "i32"),
            0x0D => new IdxType(code, 4, "f32"),
            0x0E => new IdxType(code, 8, "f64"),
            _ => default,
        };
        return type.Size != 0;
    }
}

/// <summary>The contents of one IDX file: element type, shape (C order) and the raw big-endian data.</summary>
public sealed class IdxArray
{
    internal IdxArray(string fileName, IdxType type, int[] shape, byte[] data)
    {
        FileName = fileName;
        Type = type;
        Shape = shape;
        Data = data;
    }

    /// <summary>The file this array was read from (as the caller named it).</summary>
    public string FileName { get; }

    /// <summary>The element type.</summary>
    public IdxType Type { get; }

    /// <summary>The shape, outermost dimension first.</summary>
    public int[] Shape { get; }

    /// <summary>The raw data bytes (big-endian elements; for u8 simply the values).</summary>
    public byte[] Data { get; }

    /// <summary>Number of elements.</summary>
    public int Length => Data.Length / Type.Size;

    /// <summary>The elements as double (exact for every IDX type).</summary>
    public double[] ToFloat64()
    {
        var result = new double[Length];
        var b = Data.AsSpan();
        int s = Type.Size;
        for (int i = 0; i < result.Length; i++)
        {
            var e = b.Slice(i * s, s);
            result[i] = Type.Code switch
            {
                0x08 => e[0],
                0x09 => (sbyte)e[0],
                0x0B => BinaryPrimitives.ReadInt16BigEndian(e),
                0x0C => BinaryPrimitives.ReadInt32BigEndian(e),
                0x0D => BinaryPrimitives.ReadSingleBigEndian(e),
                _ => BinaryPrimitives.ReadDoubleBigEndian(e),
            };
        }
        return result;
    }
}

using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace PosteriorGpu.Models.IO;

/// <summary>The contents of one .npy file: its dtype, its C-order shape and its data, converted on
/// request to the element type the caller needs.</summary>
public sealed class NpyArray
{
    private readonly byte[] buffer;
    private readonly int offset;
    private readonly NpyDType type;

    internal NpyArray(string fileName, NpyDType type, int[] shape, int length, byte[] buffer, int offset)
    {
        FileName = fileName;
        this.type = type;
        Shape = shape;
        Length = length;
        this.buffer = buffer;
        this.offset = offset;
    }

    /// <summary>The file this array was read from (as the caller named it).</summary>
    public string FileName { get; }

    /// <summary>The numpy dtype descriptor as stored, e.g. "&lt;f4", "&lt;i8", "|u1".</summary>
    public string DType => type.Descr;

    /// <summary>The shape (C order); empty for a 0-d array.</summary>
    public int[] Shape { get; }

    /// <summary>Number of elements (product of <see cref="Shape"/>).</summary>
    public int Length { get; }

    /// <summary>True for floating-point dtypes (f2, f4, f8).</summary>
    public bool IsFloatingPoint => type.Kind == 'f';

    /// <summary>The data as float32 (integers and float64 are converted, possibly rounding).</summary>
    public float[] ToFloat32()
    {
        var result = new float[Length];
        if (type.Kind == 'f' && type.Size == 4 && type.LittleEndian == BitConverter.IsLittleEndian)
        {
            MemoryMarshal.Cast<byte, float>(Data).CopyTo(result);
            return result;
        }
        for (int i = 0; i < result.Length; i++) result[i] = (float)ReadDouble(i);
        return result;
    }

    /// <summary>The data as float64 (exact for every supported dtype except int64 beyond 2^53).</summary>
    public double[] ToFloat64()
    {
        var result = new double[Length];
        for (int i = 0; i < result.Length; i++) result[i] = ReadDouble(i);
        return result;
    }

    /// <summary>The data as int64; only for integer dtypes (i4, i8, u1).</summary>
    /// <exception cref="InvalidOperationException">The dtype is floating point.</exception>
    public long[] ToInt64()
    {
        if (type.Kind == 'f')
            throw new InvalidOperationException($"{FileName}: dtype {DType} is floating point; read it with ToFloat32 or ToFloat64");
        var result = new long[Length];
        for (int i = 0; i < result.Length; i++) result[i] = ReadInteger(i);
        return result;
    }

    private ReadOnlySpan<byte> Data => buffer.AsSpan(offset, Length * type.Size);

    private double ReadDouble(int i) => type.Kind == 'f' ? ReadFloat(i) : ReadInteger(i);

    private double ReadFloat(int i)
    {
        var b = buffer.AsSpan(offset + i * type.Size, type.Size);
        bool le = type.LittleEndian;
        return type.Size switch
        {
            2 => (double)(le ? BinaryPrimitives.ReadHalfLittleEndian(b) : BinaryPrimitives.ReadHalfBigEndian(b)),
            4 => le ? BinaryPrimitives.ReadSingleLittleEndian(b) : BinaryPrimitives.ReadSingleBigEndian(b),
            _ => le ? BinaryPrimitives.ReadDoubleLittleEndian(b) : BinaryPrimitives.ReadDoubleBigEndian(b),
        };
    }

    private long ReadInteger(int i)
    {
        var b = buffer.AsSpan(offset + i * type.Size, type.Size);
        bool le = type.LittleEndian;
        return (type.Kind, type.Size) switch
        {
            ('u', 1) => b[0],
            ('i', 1) => (sbyte)b[0],
            ('i', 4) => le ? BinaryPrimitives.ReadInt32LittleEndian(b) : BinaryPrimitives.ReadInt32BigEndian(b),
            _ => le ? BinaryPrimitives.ReadInt64LittleEndian(b) : BinaryPrimitives.ReadInt64BigEndian(b),
        };
    }
}

/// <summary>A supported numpy element type: kind ('f', 'i', 'u'), size in bytes and byte order.</summary>
internal readonly record struct NpyDType(string Descr, char Kind, int Size, bool LittleEndian)
{
    /// <summary>The descriptors <see cref="Npy"/> reads, for error messages.</summary>
    public const string Supported = "<f2, <f4, <f8, <i4, <i8 (or big-endian '>'), |i1, |u1";

    /// <summary>Parses a descriptor such as "&lt;f4"; false when unsupported.</summary>
    public static bool TryParse(string descr, out NpyDType type)
    {
        type = default;
        if (descr.Length != 3) return false;
        char order = descr[0], kind = descr[1];
        int size = descr[2] - '0';
        bool known = (kind, size) switch
        {
            ('f', 2) or ('f', 4) or ('f', 8) or ('i', 4) or ('i', 8) => order is '<' or '>',
            ('u', 1) or ('i', 1) => order is '|' or '<' or '>',
            _ => false,
        };
        if (!known) return false;
        type = new NpyDType(descr, kind, size, order != '>');
        return true;
    }
}

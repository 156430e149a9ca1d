using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace PosteriorGpu.Models.IO;

/// <summary>Reads and writes numpy .npy files (format versions 1.0, 2.0 and 3.0, C order only), as
/// specified in numpy's NEP 1 / numpy.lib.format: magic "\x93NUMPY", version, header length
/// (u16 for 1.0, u32 after), a Python dict literal {'descr', 'fortran_order', 'shape'}, then the data.</summary>
public static class Npy
{
    private static readonly byte[] Magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <summary>Reads a .npy file.</summary>
    /// <exception cref="CheckpointFormatException">The file is malformed, truncated or uses an unsupported dtype or Fortran order.</exception>
    public static NpyArray Read(string path) => Parse(FileBytes.ReadAll(path), path);

    /// <summary>Parses the bytes of a .npy file; <paramref name="fileName"/> is used in error messages.
    /// The returned array keeps a reference to <paramref name="bytes"/>.</summary>
    /// <exception cref="CheckpointFormatException">The bytes are not a supported .npy file.</exception>
    public static NpyArray Parse(byte[] bytes, string fileName)
    {
        if (bytes.Length < 10 || !bytes.AsSpan(0, 6).SequenceEqual(Magic))
            throw new CheckpointFormatException(fileName, "not a .npy file (bad magic; expected \\x93NUMPY)");
        byte major = bytes[6];
        long headerLength;
        int headerStart;
        switch (major)
        {
            case 1:
                headerLength = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(8, 2));
                headerStart = 10;
                break;
            case 2 or 3:
                if (bytes.Length < 12) throw new CheckpointFormatException(fileName, "truncated .npy header");
                headerLength = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(8, 4));
                headerStart = 12;
                break;
            default:
                throw new CheckpointFormatException(fileName, $"unsupported .npy format version {major}.{bytes[7]} (supported: 1.0, 2.0, 3.0)");
        }
        if (headerLength > bytes.Length - headerStart)
            throw new CheckpointFormatException(fileName,
                $"header length {headerLength} runs past the end of the file ({bytes.Length} bytes)");

        // Latin-1 keeps every byte one char; a v3 (UTF-8) header holding non-ASCII text is rejected by the parser anyway.
        string header = Encoding.Latin1.GetString(bytes, headerStart, (int)headerLength);
        var (descr, fortran, dims) = new HeaderParser(header, fileName).ParseHeader();

        if (!NpyDType.TryParse(descr, out var type))
            throw new CheckpointFormatException(fileName, $"field 'descr': unsupported dtype '{descr}' (supported: {NpyDType.Supported})");
        if (fortran)
            throw new CheckpointFormatException(fileName, "field 'fortran_order': Fortran-order arrays are not supported; save with np.ascontiguousarray");

        var shape = new int[dims.Count];
        long count = 1;
        for (int i = 0; i < dims.Count; i++)
        {
            if (dims[i] < 0 || dims[i] > int.MaxValue)
                throw new CheckpointFormatException(fileName, $"field 'shape': dimension {dims[i]} is out of range in {FormatDims(dims)}");
            shape[i] = (int)dims[i];
        }
        foreach (int d in shape)
        {
            // Overflow-safe product: once it exceeds what any file could hold, stop (a zero dimension still wins).
            if (d == 0) { count = 0; break; }
            count = count > Array.MaxLength ? count : count * d;
        }
        if (count > Array.MaxLength)
            throw new CheckpointFormatException(fileName, $"field 'shape': {FormatDims(dims)} has too many elements");

        long dataStart = headerStart + headerLength;
        long need = count * type.Size;
        if (need > bytes.Length - dataStart)
            throw new CheckpointFormatException(fileName,
                $"data is truncated: shape {FormatDims(dims)} of {descr} needs {need} bytes but only {bytes.Length - dataStart} follow the header");
        return new NpyArray(fileName, type, shape, (int)count, bytes, (int)dataStart);
    }

    /// <summary>Writes a float32 (&lt;f4) array of the given C-order shape.</summary>
    public static void Write(string path, ReadOnlySpan<float> data, params int[] shape) =>
        WriteRaw(path, "<f4", MemoryMarshal.AsBytes(data), data.Length, shape, 4);

    /// <summary>Writes a float64 (&lt;f8) array of the given C-order shape.</summary>
    public static void Write(string path, ReadOnlySpan<double> data, params int[] shape) =>
        WriteRaw(path, "<f8", MemoryMarshal.AsBytes(data), data.Length, shape, 8);

    /// <summary>Writes an int64 (&lt;i8) array of the given C-order shape.</summary>
    public static void Write(string path, ReadOnlySpan<long> data, params int[] shape) =>
        WriteRaw(path, "<i8", MemoryMarshal.AsBytes(data), data.Length, shape, 8);

    private static void WriteRaw(string path, string descr, ReadOnlySpan<byte> data, int length, int[] shape, int size)
    {
        long count = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException($"shape [{string.Join(", ", shape)}] has a negative dimension", nameof(shape));
            count = checked(count * d);
        }
        if (count != length)
            throw new ArgumentException($"shape [{string.Join(", ", shape)}] holds {count} elements but the data has {length}", nameof(shape));

        string dims = shape.Length == 1 ? $"({shape[0]},)" : "(" + string.Join(", ", shape) + ")";
        string dict = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': {dims}, }}";
        // numpy pads with spaces and ends with '\n' so the data starts on a 64-byte boundary.
        int total = 10 + dict.Length + 1;
        int padded = (total + 63) / 64 * 64;
        bool v2 = padded - 10 > ushort.MaxValue;
        if (v2) padded = (12 + dict.Length + 1 + 63) / 64 * 64;
        int prefix = v2 ? 12 : 10;
        string header = dict + new string(' ', padded - prefix - dict.Length - 1) + "\n";

        var head = new byte[prefix + header.Length];
        Magic.CopyTo(head, 0);
        head[6] = (byte)(v2 ? 2 : 1);
        head[7] = 0;
        if (v2) BinaryPrimitives.WriteUInt32LittleEndian(head.AsSpan(8), (uint)header.Length);
        else BinaryPrimitives.WriteUInt16LittleEndian(head.AsSpan(8), (ushort)header.Length);
        Encoding.ASCII.GetBytes(header, head.AsSpan(prefix));

        if (!BitConverter.IsLittleEndian)
        {
            var swapped = data.ToArray();
            for (int i = 0; i < swapped.Length; i += size) swapped.AsSpan(i, size).Reverse();
            FileBytes.WriteAtomically(path, head, swapped);
        }
        else FileBytes.WriteAtomically(path, head, data);
    }

    private static string FormatDims(List<long> dims) => "(" + string.Join(", ", dims) + ")";

    /// <summary>Recursive-descent parser for the restricted Python literal numpy writes as header:
    /// a dict of quoted-string keys to strings, True/False, and tuples of integers.</summary>
    private ref struct HeaderParser(string text, string fileName)
    {
        private int pos;

        public (string Descr, bool Fortran, List<long> Shape) ParseHeader()
        {
            string? descr = null;
            bool? fortran = null;
            List<long>? shape = null;
            Expect('{');
            while (true)
            {
                SkipSpace();
                if (Peek() == '}') { pos++; break; }
                string key = ParseString("a dict key");
                Expect(':');
                switch (key)
                {
                    case "descr":
                        SkipSpace();
                        if (Peek() is not ('\'' or '"'))
                            throw Fail("field 'descr': structured or non-string dtypes are not supported");
                        descr = ParseString("the dtype");
                        break;
                    case "fortran_order":
                        fortran = ParseBool();
                        break;
                    case "shape":
                        shape = ParseTuple();
                        break;
                    default:
                        throw Fail($"unexpected header key '{key}' (expected 'descr', 'fortran_order', 'shape')");
                }
                SkipSpace();
                if (Peek() == ',') { pos++; continue; }
                if (Peek() == '}') { pos++; break; }
                throw Fail($"expected ',' or '}}' at offset {pos} of the header");
            }
            if (descr is null) throw Fail("header has no 'descr'");
            if (fortran is null) throw Fail("header has no 'fortran_order'");
            if (shape is null) throw Fail("header has no 'shape'");
            SkipSpace();
            if (pos != text.Length) throw Fail($"unexpected text after the header dict at offset {pos}");
            return (descr, fortran.Value, shape);
        }

        private List<long> ParseTuple()
        {
            SkipSpace();
            char close = Peek() switch { '(' => ')', '[' => ']', _ => throw Fail("field 'shape': expected a tuple of integers") };
            pos++;
            var dims = new List<long>();
            while (true)
            {
                SkipSpace();
                if (Peek() == close) { pos++; return dims; }
                dims.Add(ParseInteger());
                if (dims.Count > 64) throw Fail("field 'shape': more than 64 dimensions");
                SkipSpace();
                if (Peek() == ',') { pos++; continue; }
                if (Peek() == close) { pos++; return dims; }
                throw Fail($"field 'shape': expected ',' or '{close}' at offset {pos}");
            }
        }

        private long ParseInteger()
        {
            int start = pos;
            if (Peek() == '-') pos++;
            while (pos < text.Length && char.IsAsciiDigit(text[pos])) pos++;
            var digits = text.AsSpan(start, pos - start);
            if (pos < text.Length && text[pos] == 'L') pos++; // Python 2 long suffix, e.g. (3L,)
            if (!long.TryParse(digits, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long value))
                throw Fail($"field 'shape': '{digits}' is not a valid dimension");
            return value;
        }

        private bool ParseBool()
        {
            SkipSpace();
            if (string.CompareOrdinal(text, pos, "True", 0, 4) == 0) { pos += 4; return true; }
            if (string.CompareOrdinal(text, pos, "False", 0, 5) == 0) { pos += 5; return false; }
            throw Fail("field 'fortran_order': expected True or False");
        }

        private string ParseString(string what)
        {
            SkipSpace();
            char quote = Peek();
            if (quote is not ('\'' or '"')) throw Fail($"expected a quoted string for {what} at offset {pos}");
            int end = text.IndexOf(quote, pos + 1);
            if (end < 0) throw Fail($"unterminated string for {what}");
            string s = text.Substring(pos + 1, end - pos - 1);
            pos = end + 1;
            return s;
        }

        private void Expect(char c)
        {
            SkipSpace();
            if (Peek() != c) throw Fail($"expected '{c}' at offset {pos} of the header");
            pos++;
        }

        private readonly char Peek() => pos < text.Length ? text[pos] : '\0';

        private void SkipSpace()
        {
            while (pos < text.Length && text[pos] is ' ' or '\t' or '\n' or '\r') pos++;
        }

        private readonly CheckpointFormatException Fail(string problem) => new(fileName, "invalid .npy header: " + problem);
    }
}

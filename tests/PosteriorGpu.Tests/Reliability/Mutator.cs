using System.Buffers.Binary;
using System.Text;

namespace PosteriorGpu.Tests.Reliability;

/// <summary>A binary integer field of a format (a length, a count, a dimension) that mutations may
/// overwrite with a lie: <paramref name="Offset"/> and <paramref name="Size"/> (1, 2, 4 or 8) in bytes.</summary>
public readonly record struct IntegerField(int Offset, int Size, bool BigEndian = false);

/// <summary>What the mutator knows about a file format, so that its mutations reach past the first check:
/// where the (text) header is and how to fix its length field after an edit, which binary integer fields
/// to lie in, which tokens (dtype names) to swap, and an optional repair (e.g. checksums) applied to
/// most mutants. Everything is optional: an empty description still truncates, flips and scrambles.</summary>
public sealed record FuzzFormat
{
    /// <summary>The bytes most checks look at (a header): flips and text edits land here more often. Null: the whole file.</summary>
    public Func<byte[], (int Start, int Length)?>? Header { get; init; }

    /// <summary>Whether the header is text (JSON, a Python dict literal): numbers and tokens in it get swapped.</summary>
    public bool TextHeader { get; init; }

    /// <summary>Writes a header length after a text edit changed it (null: the format has no such field).</summary>
    public Action<byte[], int>? SetHeaderLength { get; init; }

    /// <summary>Binary integer fields to overwrite with hostile values (lengths, counts, dimensions).</summary>
    public Func<byte[], IReadOnlyList<IntegerField>>? IntegerFields { get; init; }

    /// <summary>Tokens the format uses for element types and the like ("F32", "&lt;f4"): swapped for one another.</summary>
    public IReadOnlyList<string> Tokens { get; init; } = [];

    /// <summary>Makes a mutant consistent again where the format has redundancy (checksums); applied to most mutants.</summary>
    public Func<byte[], byte[]>? Repair { get; init; }
}

/// <summary>
/// Seeded structure-aware mutation of a valid file: truncation, empty and random files, bit flips,
/// overwritten, inserted and deleted bytes, lying integer fields and header numbers (sizes, offsets,
/// shapes: 0, -1, 2^31, 2^64, 1e400, ...), dtype swaps and broken punctuation. One seed gives one
/// mutant, so a failing case is reproduced from the seed alone (<see cref="Mutate"/>).
/// </summary>
public static class Mutator
{
    private static readonly ulong[] HostileIntegers =
    [
        0, 1, 2, 7, 8, 255, 256, 65535, 65536, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x100000000,
        1UL << 53, 0x7FFFFFFFFFFFFFFF, 0x8000000000000000, ulong.MaxValue, ulong.MaxValue - 7,
    ];

    private static readonly string[] HostileNumbers =
    [
        "0", "-1", "1", "-0", "2147483647", "2147483648", "-2147483648", "4294967295", "4294967296",
        "9223372036854775807", "9223372036854775808", "-9223372036854775809", "18446744073709551616",
        "99999999999999999999999999999", "1e308", "1e400", "-1e400", "1.5", "0.0", "1e-400", "NaN", "Infinity",
        "null", "true", "\"1\"", "[]", "{}", "[1]", "0x10", "1_000", "",
    ];

    private static readonly string[] Punctuation = ["{", "}", "[", "]", "(", ")", ",", ":", "\"", "'", "\\", "\\u", "\0", "\u00e9", "\ud800", " "];

    /// <summary>The kinds of mutation, for reporting which ones were tried.</summary>
    public enum Kind { Empty, RandomBytes, Truncate, FlipBits, Overwrite, Insert, Delete, Duplicate, LieInteger, LieNumber, SwapToken, BreakText }

    /// <summary>Mutates <paramref name="original"/> (never modified) with the mutation seeded by <paramref name="seed"/>:
    /// one to three stacked edits, or a whole-file replacement. Returns the mutant and a description of the edits.</summary>
    public static (byte[] Bytes, string Description) Mutate(byte[] original, FuzzFormat format, int seed)
    {
        var rng = new Random(seed);
        var bytes = (byte[])original.Clone();
        var edits = new List<string>();
        int roll = rng.Next(100);
        if (roll < 2) return ([], "empty");
        if (roll < 5)
        {
            var noise = new byte[rng.Next(0, Math.Min(original.Length * 2, 1 << 16) + 1)];
            rng.NextBytes(noise);
            return (noise, $"random-bytes ({noise.Length})");
        }
        int count = 1 + rng.Next(3);
        for (int i = 0; i < count; i++)
        {
            var kind = (Kind)(2 + rng.Next(Enum.GetValues<Kind>().Length - 2));
            bytes = Apply(kind, bytes, format, rng, edits);
        }
        if (format.Repair is not null && rng.Next(5) != 0)
        {
            bytes = format.Repair(bytes);
            edits.Add("repaired");
        }
        return (bytes, string.Join(" | ", edits));
    }

    /// <summary>How often each kind of edit occurs in these mutation descriptions (for the test log).</summary>
    public static string DescribeMix(IEnumerable<string> descriptions)
    {
        var counts = new SortedDictionary<string, int>(StringComparer.Ordinal);
        foreach (var d in descriptions)
            foreach (var part in d.Split(" | "))
            {
                string key = part.Split(' ')[0];
                counts[key] = counts.GetValueOrDefault(key) + 1;
            }
        return string.Join(", ", counts.Select(p => $"{p.Key} {p.Value}"));
    }

    private const int MaxHeader = 1 << 16;

    private static (int Start, int Length) HeaderOf(byte[] bytes, FuzzFormat format)
    {
        // At most 64 KiB: a lying length can make the "header" the whole file, and text edits scan it.
        var span = format.Header?.Invoke(bytes);
        if (span is { } s && s.Start >= 0 && s.Length >= 0 && s.Start + s.Length <= bytes.Length) return (s.Start, Math.Min(s.Length, MaxHeader));
        return (0, Math.Min(bytes.Length, MaxHeader));
    }

    /// <summary>A position, in the header three times out of four.</summary>
    private static int Position(byte[] bytes, FuzzFormat format, Random rng)
    {
        if (bytes.Length == 0) return 0;
        var (start, length) = HeaderOf(bytes, format);
        return length > 0 && rng.Next(4) != 0 ? start + rng.Next(length) : rng.Next(bytes.Length);
    }

    private static byte[] Apply(Kind kind, byte[] bytes, FuzzFormat format, Random rng, List<string> edits)
    {
        switch (kind)
        {
            case Kind.Truncate:
            {
                // Cut inside the header half the time: that is where the lengths live.
                var (start, length) = HeaderOf(bytes, format);
                int at = rng.Next(2) == 0 && length > 0 ? start + rng.Next(length + 1) : rng.Next(bytes.Length + 1);
                edits.Add($"truncate to {at} of {bytes.Length}");
                return bytes[..at];
            }
            case Kind.FlipBits:
            {
                int flips = 1 + rng.Next(8);
                for (int i = 0; i < flips && bytes.Length > 0; i++)
                {
                    int at = Position(bytes, format, rng);
                    int bit = rng.Next(8);
                    bytes[at] ^= (byte)(1 << bit);
                    edits.Add($"flip bit {bit} at {at}");
                }
                return bytes;
            }
            case Kind.Overwrite:
            {
                if (bytes.Length == 0) return bytes;
                int at = Position(bytes, format, rng), n = Math.Min(1 + rng.Next(8), bytes.Length - at);
                byte fill = (byte)(rng.Next(3) switch { 0 => 0x00, 1 => 0xFF, _ => rng.Next(256) });
                bytes.AsSpan(at, n).Fill(fill);
                edits.Add($"overwrite {n} bytes at {at} with 0x{fill:X2}");
                return bytes;
            }
            case Kind.Insert:
            {
                int at = Position(bytes, format, rng);
                var extra = new byte[1 + rng.Next(16)];
                rng.NextBytes(extra);
                edits.Add($"insert {extra.Length} random bytes at {at}");
                return Concat(bytes.AsSpan(0, at), extra, bytes.AsSpan(at));
            }
            case Kind.Delete:
            {
                if (bytes.Length == 0) return bytes;
                int at = Position(bytes, format, rng), n = Math.Min(1 + rng.Next(16), bytes.Length - at);
                edits.Add($"delete {n} bytes at {at}");
                return Concat(bytes.AsSpan(0, at), [], bytes.AsSpan(at + n));
            }
            case Kind.Duplicate:
            {
                if (bytes.Length == 0) return bytes;
                int at = Position(bytes, format, rng), n = Math.Min(1 + rng.Next(64), bytes.Length - at);
                edits.Add($"duplicate {n} bytes at {at}");
                return Concat(bytes.AsSpan(0, at + n), bytes.AsSpan(at, n), bytes.AsSpan(at + n));
            }
            case Kind.LieInteger:
            {
                var fields = format.IntegerFields?.Invoke(bytes) ?? [];
                var usable = fields.Where(f => f.Offset >= 0 && f.Offset + f.Size <= bytes.Length).ToList();
                if (usable.Count == 0) return Apply(Kind.FlipBits, bytes, format, rng, edits);
                var field = usable[rng.Next(usable.Count)];
                ulong old = ReadField(bytes, field);
                ulong value = rng.Next(4) switch
                {
                    0 => old + (ulong)(rng.Next(2) == 0 ? 1 : -1),
                    1 => old + (ulong)rng.Next(1, 1 << 20) * (rng.Next(2) == 0 ? 1UL : ulong.MaxValue),
                    2 => (ulong)rng.NextInt64() * 2 + (ulong)rng.Next(2),
                    _ => HostileIntegers[rng.Next(HostileIntegers.Length)],
                };
                WriteField(bytes, field, value);
                edits.Add($"lie-integer at {field.Offset} ({field.Size} bytes): {old} -> {ReadField(bytes, field)}");
                return bytes;
            }
            case Kind.LieNumber:
                return EditText(bytes, format, rng, edits, "lie-number", text =>
                {
                    var numbers = System.Text.RegularExpressions.Regex.Matches(text, @"-?\d+(\.\d+)?([eE][-+]?\d+)?");
                    if (numbers.Count == 0) return null;
                    var m = numbers[rng.Next(numbers.Count)];
                    string replacement = rng.Next(3) == 0 && long.TryParse(m.Value, out long v)
                        ? (rng.Next(2) == 0 ? v + 1 : v * (1L << rng.Next(1, 33))).ToString(System.Globalization.CultureInfo.InvariantCulture)
                        : HostileNumbers[rng.Next(HostileNumbers.Length)];
                    return (m.Index, m.Length, replacement);
                });
            case Kind.SwapToken:
                return EditText(bytes, format, rng, edits, "swap-token", text =>
                {
                    var present = format.Tokens.Where(t => text.Contains(t, StringComparison.Ordinal)).ToList();
                    if (present.Count == 0) return null;
                    string token = present[rng.Next(present.Count)];
                    var at = new List<int>();
                    for (int i = text.IndexOf(token, StringComparison.Ordinal); i >= 0; i = text.IndexOf(token, i + 1, StringComparison.Ordinal)) at.Add(i);
                    string other = rng.Next(5) == 0 ? new[] { "", "X", token + token, token.ToLowerInvariant(), " " + token }[rng.Next(5)]
                        : format.Tokens[rng.Next(format.Tokens.Count)];
                    return (at[rng.Next(at.Count)], token.Length, other);
                });
            case Kind.BreakText:
                return EditText(bytes, format, rng, edits, "break-text", text =>
                {
                    if (text.Length == 0) return null;
                    int at = rng.Next(text.Length);
                    return rng.Next(3) switch
                    {
                        0 => (at, 1, ""),                                                       // drop a character
                        1 => (at, 0, Punctuation[rng.Next(Punctuation.Length)]),                // stray punctuation
                        _ => (at, 0, text.Substring(at, Math.Min(rng.Next(1, 80), text.Length - at))), // repeat a run (duplicate keys)
                    };
                });
            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, null);
        }
    }

    /// <summary>Edits the text header (Latin-1, so every byte survives) and fixes its length field most of the time,
    /// so the reader gets past the length check and has to parse the lie.</summary>
    private static byte[] EditText(byte[] bytes, FuzzFormat format, Random rng, List<string> edits, string name,
        Func<string, (int At, int Length, string Replacement)?> edit)
    {
        if (!format.TextHeader) return Apply(Kind.Overwrite, bytes, format, rng, edits);
        var (start, length) = HeaderOf(bytes, format);
        string text = Encoding.Latin1.GetString(bytes, start, length);
        var change = edit(text);
        if (change is not { } c) return Apply(Kind.FlipBits, bytes, format, rng, edits);
        // Non-Latin-1 replacements go in as UTF-8 bytes.
        var replacement = c.Replacement.Any(ch => ch > 0xFF) ? Encoding.UTF8.GetBytes(c.Replacement) : Encoding.Latin1.GetBytes(c.Replacement);
        byte[] result = Concat(bytes.AsSpan(0, start + c.At), replacement, bytes.AsSpan(start + c.At + c.Length));
        int newLength = length - c.Length + replacement.Length;
        bool fixedUp = format.SetHeaderLength is not null && rng.Next(5) != 0;
        if (fixedUp) format.SetHeaderLength!(result, newLength);
        string shown = text.Substring(c.At, Math.Min(c.Length, 40));
        edits.Add($"{name} at header offset {c.At}: '{shown}' -> '{c.Replacement}'{(fixedUp ? " (length fixed)" : "")}");
        return result;
    }

    private static byte[] Concat(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, ReadOnlySpan<byte> c)
    {
        var result = new byte[a.Length + b.Length + c.Length];
        a.CopyTo(result);
        b.CopyTo(result.AsSpan(a.Length));
        c.CopyTo(result.AsSpan(a.Length + b.Length));
        return result;
    }

    private static ulong ReadField(byte[] b, IntegerField f)
    {
        var s = b.AsSpan(f.Offset, f.Size);
        return (f.Size, f.BigEndian) switch
        {
            (1, _) => s[0],
            (2, false) => BinaryPrimitives.ReadUInt16LittleEndian(s),
            (2, true) => BinaryPrimitives.ReadUInt16BigEndian(s),
            (4, false) => BinaryPrimitives.ReadUInt32LittleEndian(s),
            (4, true) => BinaryPrimitives.ReadUInt32BigEndian(s),
            (_, false) => BinaryPrimitives.ReadUInt64LittleEndian(s),
            _ => BinaryPrimitives.ReadUInt64BigEndian(s),
        };
    }

    private static void WriteField(byte[] b, IntegerField f, ulong v)
    {
        var s = b.AsSpan(f.Offset, f.Size);
        switch (f.Size, f.BigEndian)
        {
            case (1, _): s[0] = (byte)v; break;
            case (2, false): BinaryPrimitives.WriteUInt16LittleEndian(s, (ushort)v); break;
            case (2, true): BinaryPrimitives.WriteUInt16BigEndian(s, (ushort)v); break;
            case (4, false): BinaryPrimitives.WriteUInt32LittleEndian(s, (uint)v); break;
            case (4, true): BinaryPrimitives.WriteUInt32BigEndian(s, (uint)v); break;
            case (_, false): BinaryPrimitives.WriteUInt64LittleEndian(s, v); break;
            default: BinaryPrimitives.WriteUInt64BigEndian(s, v); break;
        }
    }
}

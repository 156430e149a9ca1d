using System.Buffers.Binary;
using NUnit.Framework;
using PosteriorGpu.Cli;
using PosteriorGpu.Models.Data;
using PosteriorGpu.Models.IO;
using PosteriorGpu.Tests.Data;
using SkiaSharp;

namespace PosteriorGpu.Tests.Reliability;

/// <summary>The readers of pictures: MNIST's IDX files and the PNG inputs of `posteriorgpu posterior`.
/// Both read from a path, so each mutant is written to a temporary folder of the target's own.</summary>
public partial class ReaderFuzzTests
{
    /// <summary>A read of bytes that must be a real file: writes them under the given name, reads, deletes.</summary>
    private static Action<byte[], string> FromFile(Action<byte[], string> read) => (bytes, path) =>
    {
        File.WriteAllBytes(path, bytes);
        try { read(bytes, path); }
        finally { File.Delete(path); }
    };

    // ---- MNIST IDX ----

    /// <summary>MnistImages.Load (a rank byte of 1: LoadLabels) on images and labels files; every image is
    /// padded and scaled, and what loads must hold exactly the data the header promises.</summary>
    private static FuzzTarget MnistIdxTarget()
    {
        var rng = new Random(8);
        byte[] Data(int n) { var b = new byte[n]; rng.NextBytes(b); return b; }
        var seeds = new List<byte[]>
        {
            SyntheticMnist.IdxFile(0x08, [3, 7, 6], Data(3 * 7 * 6)),
            SyntheticMnist.IdxFile(0x08, [2, 28, 28], Data(2 * 28 * 28)),
            SyntheticMnist.IdxFile(0x08, [1, 32, 1], Data(32)),
            SyntheticMnist.IdxFile(0x08, [10], [.. Enumerable.Range(0, 10).Select(i => (byte)i)]),
            SyntheticMnist.IdxFile(0x08, [0], []),
        };
        var image = new float[MnistImages.ImageLength];   // reused: the read's allocations are the reader's own
        var format = new FuzzFormat
        {
            Header = b => b.Length < 4 ? null : (0, Math.Min(4 + 4 * b[3], b.Length)),
            IntegerFields = b => [new IntegerField(2, 1), new IntegerField(3, 1),
                                  .. Enumerable.Range(0, b.Length < 4 ? 0 : b[3]).Select(i => new IntegerField(4 + 4 * i, 4, BigEndian: true))],
        };
        string root = Directory.CreateTempSubdirectory("idx-fuzz-").FullName;
        return new FuzzTarget("mnist-idx", seeds, FromFile((bytes, path) =>
        {
            if (bytes.Length > 3 && bytes[3] == 1)
            {
                var labels = MnistImages.LoadLabels(path);
                if (labels.Length != BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(4))) throw new InvalidOperationException("label count");
                return;
            }
            var images = MnistImages.Load(path);
            if ((long)images.Count * images.SourceHeight * images.SourceWidth != bytes.Length - 16) throw new InvalidOperationException("image bytes");
            for (int i = 0; i < images.Count; i++)
            {
                images.CopyImage(i, image);
                foreach (float v in image)
                    if (!(v >= -1f && v <= 1f)) throw new InvalidOperationException($"image {i} holds {v}");
            }
        }))
        {
            Count = 3000,
            NameRoot = root,
            Format = format,
        };
    }

    // ---- PNG inputs of `posterior` ----

    /// <summary>A PNG written by SkiaSharp from a bitmap of <paramref name="info"/> with the given pixels.</summary>
    public static byte[] PngFile(SKImageInfo info, Func<int, int, SKColor> pixel)
    {
        using var bitmap = new SKBitmap(info);
        for (int y = 0; y < info.Height; y++)
            for (int x = 0; x < info.Width; x++)
                bitmap.SetPixel(x, y, pixel(x, y));
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    }

    /// <summary>A PNG by the specification: signature, IHDR, the given chunks, one IDAT (each row with filter
    /// type 0, zlib-compressed), IEND.</summary>
    public static byte[] PngByHand(int width, int height, byte bitDepth, byte colourType, (string Type, byte[] Data)[] chunks, byte[][] rows)
    {
        var file = new MemoryStream();
        file.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        void Chunk(string type, byte[] data)
        {
            var body = new byte[4 + data.Length];
            System.Text.Encoding.ASCII.GetBytes(type).CopyTo(body, 0);
            data.CopyTo(body, 4);
            Span<byte> word = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(word, (uint)data.Length);
            file.Write(word);
            file.Write(body);
            BinaryPrimitives.WriteUInt32BigEndian(word, PngCrc(body));
            file.Write(word);
        }
        var ihdr = new byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(ihdr, (uint)width);
        BinaryPrimitives.WriteUInt32BigEndian(ihdr.AsSpan(4), (uint)height);
        ihdr[8] = bitDepth;
        ihdr[9] = colourType;
        Chunk("IHDR", ihdr);
        foreach (var (type, data) in chunks) Chunk(type, data);
        var pixels = new MemoryStream();
        using (var z = new System.IO.Compression.ZLibStream(pixels, System.IO.Compression.CompressionLevel.Optimal, leaveOpen: true))
            foreach (var row in rows) { z.WriteByte(0); z.Write(row); }
        Chunk("IDAT", pixels.ToArray());
        Chunk("IEND", []);
        return file.ToArray();
    }

    /// <summary>The chunks of a PNG (offset of the length field, claimed data length), up to the first that overruns the file.</summary>
    private static List<(int At, uint Length)> PngChunks(byte[] b)
    {
        var chunks = new List<(int, uint)>();
        for (int at = 8; at + 8 <= b.Length;)
        {
            uint length = BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(at));
            chunks.Add((at, length));
            if (length > (long)b.Length - at - 12) break;
            at += 12 + (int)length;
        }
        return chunks;
    }

    private static readonly uint[] CrcTable = [.. Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        return c;
    })];

    /// <summary>The CRC-32 of the PNG specification (ISO 3309), over a chunk's type and data.</summary>
    public static uint PngCrc(ReadOnlySpan<byte> bytes)
    {
        uint c = 0xFFFFFFFFu;
        foreach (byte b in bytes) c = CrcTable[(c ^ b) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFu;
    }

    /// <summary>Recomputes the CRC of every chunk that fits in the file, so that mutants get past the checksums.</summary>
    public static byte[] RepairPngCrcs(byte[] b)
    {
        foreach (var (at, length) in PngChunks(b))
            if (length <= (long)b.Length - at - 12)
                BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(at + 8 + (int)length), PngCrc(b.AsSpan(at + 4, 4 + (int)length)));
        return b;
    }

    private static FuzzFormat PngFormat => new()
    {
        // Signature and the chunks before the pixel data (IHDR, and what SkiaSharp writes before IDAT).
        Header = b =>
        {
            var idat = PngChunks(b).FirstOrDefault(c => c.At + 8 <= b.Length && b.AsSpan(c.At + 4, 4).SequenceEqual("IDAT"u8));
            return (0, idat.At > 0 ? idat.At + 8 : Math.Min(b.Length, 33));
        },
        // IHDR: width, height, bit depth, colour type, compression, filter, interlace; then every chunk's length.
        IntegerFields = b => [new IntegerField(16, 4, BigEndian: true), new IntegerField(20, 4, BigEndian: true),
                              .. Enumerable.Range(24, 5).Select(o => new IntegerField(o, 1)),
                              .. PngChunks(b).Select(c => new IntegerField(c.At, 4, BigEndian: true))],
        Repair = RepairPngCrcs,
    };

    /// <summary>Grey, RGB, RGBA (with transparency) and 16-bit PNGs, read as the `posterior` command reads its
    /// --input pictures, for 1- and 3-channel models of square and wide sizes.</summary>
    private static FuzzTarget PngInputTarget()
    {
        var seeds = new List<byte[]>
        {
            PngFile(new SKImageInfo(12, 10, SKColorType.Gray8, SKAlphaType.Opaque), (x, y) => new SKColor((byte)(20 * x + y), (byte)(20 * x + y), (byte)(20 * x + y))),
            PngFile(new SKImageInfo(9, 7, SKColorType.Rgb888x, SKAlphaType.Opaque), (x, y) => new SKColor((byte)(28 * x), (byte)(36 * y), (byte)(x * y))),
            PngFile(new SKImageInfo(6, 5, SKColorType.Rgba8888, SKAlphaType.Unpremul), (x, y) => new SKColor((byte)(40 * x), 200, (byte)(50 * y), (byte)(50 * x + 5 * y))),
            // What SkiaSharp does not write: 16-bit grey, and a 4-bit palette (two pixels a byte, a PLTE chunk).
            PngByHand(5, 4, 16, 0, [], [.. Enumerable.Range(0, 4).Select(y => Enumerable.Range(0, 10).Select(i => (byte)(y * 50 + i * 20)).ToArray())]),
            PngByHand(7, 3, 4, 3, [("PLTE", [0, 0, 0, 255, 0, 0, 0, 255, 0, 255, 255, 255])],
                [.. Enumerable.Range(0, 3).Select(y => new byte[] { 0x01, (byte)(0x20 + y), 0x31, 0x00 })]),
        };
        string root = Directory.CreateTempSubdirectory("png-fuzz-").FullName;
        const int H = 8, MaxW = 12;
        return new FuzzTarget("png-input", seeds, FromFile((bytes, path) =>
        {
            // The model's shape varies with the mutant: grey or RGB, square or wide (a centre crop).
            int c = bytes.Length % 2 == 0 ? 1 : 3, w = bytes.Length % 3 == 0 ? MaxW : H;
            var (images, count, _) = PosteriorInputs.Load(path, c, H, w, invert: bytes.Length % 5 == 0);
            if (count != 1 || images.Length != c * H * w) throw new InvalidOperationException($"{count} images of {images.Length} values");
            foreach (float v in images)
                if (!(v >= -1.0001f && v <= 1.0001f)) throw new InvalidOperationException($"the image holds {v}");
        }))
        {
            Count = 3000,
            NameRoot = root,
            Format = PngFormat,
            // The decoded pixels live in SkiaSharp's native memory, bounded by PosteriorInputs.MaxPixels (checked
            // from the header before decoding); on the managed heap: the model-sized result, twice.
            AllocationBound = _ => 2L * 4 * 3 * H * MaxW + FuzzRunner.AllocationSlack,
        };
    }

    [Test]
    public void APictureClaimingTooManyPixels_IsRefusedBeforeDecoding()
    {
        var png = PngFile(new SKImageInfo(4, 4, SKColorType.Gray8, SKAlphaType.Opaque), (x, y) => SKColors.White);
        string dir = Directory.CreateTempSubdirectory("png-size-").FullName;
        try
        {
            // Within the limit the header is believed and the pixel data found short; past it, nothing is decoded
            // (a width of 2^31 - 1 SkiaSharp refuses itself).
            foreach (var (width, height, expected) in new[] { (4096u, 4096u, "IncompleteInput"), (4097u, 4096u, "at most 16777216 pixels"),
                                                               (20000u, 20000u, "at most 16777216 pixels"), (0x7FFFFFFFu, 1u, "") })
            {
                var lie = (byte[])png.Clone();
                BinaryPrimitives.WriteUInt32BigEndian(lie.AsSpan(16), width);
                BinaryPrimitives.WriteUInt32BigEndian(lie.AsSpan(20), height);
                string path = Path.Combine(dir, $"{width}x{height}.png");
                File.WriteAllBytes(path, RepairPngCrcs(lie));
                var ex = Assert.Throws<CheckpointFormatException>(() => PosteriorInputs.Load(path, 1, 8, 8, invert: false));
                Assert.That(ex!.Message, Does.StartWith(path).And.Contain(expected));
            }
            // A truncated picture is an error, not a partly black image.
            var noise = new Random(9);
            var full = PngFile(new SKImageInfo(32, 32, SKColorType.Gray8, SKAlphaType.Opaque), (x, y) => new SKColor((byte)noise.Next(256), 0, 0));
            string cut = Path.Combine(dir, "cut.png");
            File.WriteAllBytes(cut, full[..(full.Length / 2)]);
            Assert.That(() => PosteriorInputs.Load(cut, 1, 8, 8, invert: false),
                Throws.TypeOf<CheckpointFormatException>().With.Message.StartsWith(cut));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}

using System.Buffers.Binary;
using NUnit.Framework;
using PosteriorGpu.Models.Data;
using PosteriorGpu.Models.IO;

namespace PosteriorGpu.Tests.Data;

public class IdxTests
{
    private string dir = "";

    [OneTimeSetUp]
    public void CreateTempDir() => dir = Directory.CreateTempSubdirectory("idx-tests-").FullName;

    [OneTimeTearDown]
    public void DeleteTempDir() => Directory.Delete(dir, recursive: true);

    /// <summary>Writes an IDX file by the format's definition: 0, 0, type, rank, big-endian u32 dims, data.</summary>
    private string Write(string name, byte type, uint[] dims, byte[] data)
    {
        string path = Path.Combine(dir, name);
        File.WriteAllBytes(path, SyntheticMnist.IdxFile(type, dims, data));
        return path;
    }

    private string WriteRaw(string name, params byte[] bytes)
    {
        string path = Path.Combine(dir, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Test]
    public void U8Images_ArePaddedTo32AndScaledToMinusOneOne()
    {
        // Three 28 x 28 images; pixel (y, x) of image n holds (n * 7 + y * 28 + x) mod 256.
        var data = new byte[3 * 28 * 28];
        for (int i = 0; i < data.Length; i++) data[i] = (byte)((i / 784) * 7 + i % 784);
        var images = MnistImages.Load(Write("images", 0x08, [3, 28, 28], data));
        Assert.That((images.Count, images.SourceHeight, images.SourceWidth), Is.EqualTo((3, 28, 28)));

        var all = images.ToArray(0, 3);
        Assert.That(all, Has.Length.EqualTo(3 * 32 * 32));
        for (int n = 0; n < 3; n++)
            for (int y = 0; y < 32; y++)
                for (int x = 0; x < 32; x++)
                {
                    float got = all[(n * 32 + y) * 32 + x];
                    bool inside = y >= 2 && y < 30 && x >= 2 && x < 30;
                    float want = inside ? (byte)(n * 7 + (y - 2) * 28 + (x - 2)) / 255f * 2f - 1f : -1f;
                    Assert.That(got, Is.EqualTo(want).Within(1e-6f), $"image {n} pixel ({y}, {x})");
                }
        Assert.That(MnistImages.Scale(0), Is.EqualTo(-1f));
        Assert.That(MnistImages.Scale(255), Is.EqualTo(1f));

        var batch = images.Gather([2, 0, 2]);
        Assert.That(batch.AsSpan(0, 1024).ToArray(), Is.EqualTo(all.AsSpan(2048, 1024).ToArray()));
        Assert.That(batch.AsSpan(1024, 1024).ToArray(), Is.EqualTo(all.AsSpan(0, 1024).ToArray()));
        Assert.Throws<ArgumentOutOfRangeException>(() => images.Gather([3]));
        Assert.Throws<ArgumentOutOfRangeException>(() => images.ToArray(2, 2));
    }

    [Test]
    public void SmallerImages_AreCentred()
    {
        // One 3 x 5 image of 255s: rows 14..16, columns 13..17 of the canvas.
        var images = MnistImages.Load(Write("small", 0x08, [1, 3, 5], Enumerable.Repeat((byte)255, 15).ToArray()));
        var x = images.ToArray(0, 1);
        for (int i = 0; i < 1024; i++)
        {
            int r = i / 32, c = i % 32;
            Assert.That(x[i], Is.EqualTo(r is >= 14 and <= 16 && c is >= 13 and <= 17 ? 1f : -1f), $"({r}, {c})");
        }
    }

    [Test]
    public void Labels_AndOtherTypes_ReadBigEndian()
    {
        Assert.That(MnistImages.LoadLabels(Write("labels", 0x08, [4], [7, 2, 1, 0])), Is.EqualTo(new byte[] { 7, 2, 1, 0 }));

        var i16 = new byte[4];
        BinaryPrimitives.WriteInt16BigEndian(i16, -300);
        BinaryPrimitives.WriteInt16BigEndian(i16.AsSpan(2), 1234);
        var a = Idx.Read(Write("i16", 0x0B, [2, 1], i16));
        Assert.That((a.Type.Name, a.Shape, a.Length), Is.EqualTo(("i16", new[] { 2, 1 }, 2)));
        Assert.That(a.ToFloat64(), Is.EqualTo(new[] { -300.0, 1234.0 }));

        var f64 = new byte[8];
        BinaryPrimitives.WriteDoubleBigEndian(f64, Math.PI);
        Assert.That(Idx.Read(Write("f64", 0x0E, [1], f64)).ToFloat64(), Is.EqualTo(new[] { Math.PI }));
        Assert.That(Idx.ReadHeader(Write("empty", 0x0D, [0, 5], [])).Shape, Is.EqualTo(new[] { 0, 5 }));
    }

    private static void AssertRejected(string path, string expected)
    {
        var e = Assert.Throws<CheckpointFormatException>(() => MnistImages.Load(path))!;
        Assert.That(e.Message, Does.StartWith(path + ": ").And.Contain(expected));
    }

    [Test]
    public void MalformedFiles_AreRejectedWithTheFileNameAndTheProblem()
    {
        AssertRejected(WriteRaw("short", 0, 0, 8), "shorter than the 4-byte magic");
        AssertRejected(WriteRaw("gzip", 0x1F, 0x8B, 8, 3, 0, 0, 0, 0), "gunzip");
        AssertRejected(WriteRaw("type", 0, 0, 0x0A, 1, 0, 0, 0, 0), "unknown IDX type byte 0x0A");
        AssertRejected(WriteRaw("rank0", 0, 0, 8, 0), "zero dimensions");
        AssertRejected(WriteRaw("header", 0, 0, 8, 3, 0, 0, 0, 1, 0, 0), "truncated IDX header");
        // A header claiming the full training set over a few bytes of data: refused before any allocation.
        AssertRejected(Write("truncated", 0x08, [60000, 28, 28], new byte[100]), "needs 47040000 data bytes but only 100");
        AssertRejected(Write("huge", 0x08, [0x7FFFFFFF, 0x7FFFFFFF, 28], new byte[10]), "too large");
        AssertRejected(Write("dim", 0x08, [0x80000000, 1, 1], []), "out of range");
        AssertRejected(Write("trailing", 0x08, [1, 2, 2], new byte[5]), "1 bytes after the data");
        AssertRejected(Write("labels1d", 0x08, [4], new byte[4]), "labels file");
        AssertRejected(Write("float", 0x0D, [1, 2, 2], new byte[16]), "expected MNIST images (u8");
        AssertRejected(Write("big", 0x08, [1, 33, 28], new byte[33 * 28]), "do not fit the 32 x 32 canvas");
        var e = Assert.Throws<CheckpointFormatException>(() => MnistImages.LoadLabels(Write("img3d", 0x08, [1, 2, 2], new byte[4])))!;
        Assert.That(e.Message, Does.Contain("expected MNIST labels"));
        Assert.Throws<FileNotFoundException>(() => Idx.Read(Path.Combine(dir, "missing")));
    }

    [Test]
    public void MnistFolder_NamesTheFetchScriptWhenAFileIsMissing()
    {
        Assert.That(MnistFolder.Resolve(dir), Is.EqualTo(dir));
        var e = Assert.Throws<FileNotFoundException>(() => MnistFolder.File(MnistFolder.TestImages, dir))!;
        Assert.That(e.Message, Does.Contain("tools/fetch-mnist"));
    }
}

using System.Buffers.Binary;
using System.Text;
using NUnit.Framework;
using PosteriorGpu.Models.IO;

namespace PosteriorGpu.Tests.Models;

public class NpyTests
{
    private string dir = "";

    [OneTimeSetUp]
    public void CreateTempDir() => dir = Directory.CreateTempSubdirectory("npy-tests-").FullName;

    [OneTimeTearDown]
    public void DeleteTempDir() => Directory.Delete(dir, recursive: true);

    [Test]
    public void FixtureArrays_LoadWithTheirShapesAndValues()
    {
        var x = Npy.Read(Fixtures.File("diffusers-unet-tiny", "x.npy"));
        Assert.That((x.DType, x.Shape, x.Length), Is.EqualTo(("<f4", new[] { 4, 1, 16, 16 }, 1024)));
        Assert.That(x.ToFloat32()[..3], Is.EqualTo(new[] { 1.1582797765731812f, 0.8897275924682617f, 0.29174110293388367f }));
        Assert.That(x.ToFloat64()[0], Is.EqualTo((double)1.1582797765731812f));

        var t = Npy.Read(Fixtures.File("diffusers-unet-tiny", "t.npy"));
        Assert.That((t.DType, t.Shape), Is.EqualTo(("<i8", new[] { 4 })));
        Assert.That(t.ToInt64(), Is.EqualTo(new long[] { 0, 17, 500, 999 }));
        Assert.That(t.ToFloat32(), Is.EqualTo(new float[] { 0, 17, 500, 999 }));

        var eps = Npy.Read(Fixtures.File("diffusers-unet-tiny", "eps.npy"));
        Assert.That(eps.Shape, Is.EqualTo(new[] { 4, 1, 16, 16 }));
        Assert.That(eps.ToFloat32(), Has.All.Matches<float>(float.IsFinite));
        Assert.Throws<InvalidOperationException>(() => eps.ToInt64());
    }

    private static readonly int[][] Shapes = [[], [1], [5], [2, 3, 4], [0, 3], [3, 1, 7, 1]];

    [TestCaseSource(nameof(Shapes))]
    public void RoundTrip_EachDType(int[] shape)
    {
        int n = shape.Aggregate(1, (a, b) => a * b);
        var f = TestData.Random(n, 7);
        var d = f.Select(v => v * Math.PI).ToArray();
        var l = Enumerable.Range(0, n).Select(i => (long)i * 123456789012L - 5).ToArray();
        string pf = Path.Combine(dir, "f.npy"), pd = Path.Combine(dir, "d.npy"), pl = Path.Combine(dir, "l.npy");
        Npy.Write(pf, f, shape);
        Npy.Write(pd, d, shape);
        Npy.Write(pl, l, shape);

        var rf = Npy.Read(pf);
        var rd = Npy.Read(pd);
        var rl = Npy.Read(pl);
        Assert.That((rf.DType, rf.Shape, rf.ToFloat32()), Is.EqualTo(("<f4", shape, f)));
        Assert.That((rd.DType, rd.Shape, rd.ToFloat64()), Is.EqualTo(("<f8", shape, d)));
        Assert.That((rl.DType, rl.Shape, rl.ToInt64()), Is.EqualTo(("<i8", shape, l)));
        // numpy's layout: header padded so the data starts on a 64-byte boundary, ending in '\n'.
        var bytes = File.ReadAllBytes(pf);
        int headerLength = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(8));
        Assert.That((10 + headerLength) % 64, Is.Zero);
        Assert.That(bytes[10 + headerLength - 1], Is.EqualTo((byte)'\n'));
    }

    [Test]
    public void Write_RejectsDataThatDoesNotMatchTheShape()
    {
        var e = Assert.Throws<ArgumentException>(() => Npy.Write(Path.Combine(dir, "bad.npy"), new float[5], 2, 3));
        Assert.That(e!.Message, Does.Contain("[2, 3]").And.Contain("5"));
        Assert.Throws<ArgumentException>(() => Npy.Write(Path.Combine(dir, "bad.npy"), new float[0], 2, -1));
    }

    [Test]
    public void Reads_Versions2And3_BigEndian_SmallerDTypes_AndPython2Longs()
    {
        var v2 = Build("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 2, Floats(1.5f, -2f));
        Assert.That(Npy.Parse(v2, "v2.npy").ToFloat32(), Is.EqualTo(new[] { 1.5f, -2f }));
        var v3 = Build("{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (1, 2)}", 3, Floats(3f, 4f));
        Assert.That(Npy.Parse(v3, "v3.npy").Shape, Is.EqualTo(new[] { 1, 2 }));

        var be = new byte[8];
        BinaryPrimitives.WriteDoubleBigEndian(be, 2.25);
        Assert.That(Npy.Parse(Build("{'descr': '>f8', 'fortran_order': False, 'shape': (), }", 1, be), "be.npy").ToFloat64(), Is.EqualTo(new[] { 2.25 }));

        var i4 = new byte[8];
        BinaryPrimitives.WriteInt32LittleEndian(i4, -7);
        BinaryPrimitives.WriteInt32LittleEndian(i4.AsSpan(4), 1 << 30);
        Assert.That(Npy.Parse(Build("{'descr': '<i4', 'fortran_order': False, 'shape': (2L,), }", 1, i4), "i4.npy").ToInt64(), Is.EqualTo(new long[] { -7, 1 << 30 }));

        var u1 = Npy.Parse(Build("{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }", 1, [0, 128, 255]), "u1.npy");
        Assert.That((u1.ToInt64(), u1.ToFloat32()), Is.EqualTo((new long[] { 0, 128, 255 }, new float[] { 0, 128, 255 })));

        var f2 = new byte[4];
        BinaryPrimitives.WriteHalfLittleEndian(f2, (Half)0.5f);
        BinaryPrimitives.WriteHalfLittleEndian(f2.AsSpan(2), (Half)(-3f));
        Assert.That(Npy.Parse(Build("{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }", 1, f2), "f2.npy").ToFloat32(), Is.EqualTo(new[] { 0.5f, -3f }));
        Assert.That(Npy.Parse(Build("{'descr': '|i1', 'fortran_order': False, 'shape': (2,), }", 1, [0xFF, 5]), "i1.npy").ToInt64(), Is.EqualTo(new long[] { -1, 5 }));

        // Trailing bytes after the data are ignored, as numpy does.
        Assert.That(Npy.Parse(Build("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", 1, Floats(9f, 10f)), "extra.npy").ToFloat32(), Is.EqualTo(new[] { 9f }));
    }

    /// <summary>Each case builds a malformed file; reading it must throw CheckpointFormatException naming the file.</summary>
    [TestCase("empty", "bad magic")]
    [TestCase("short", "bad magic")]
    [TestCase("bad-magic", "bad magic")]
    [TestCase("version-9", "version 9.0")]
    [TestCase("header-past-end", "runs past the end")]
    [TestCase("v2-header-past-end", "runs past the end")]
    [TestCase("v2-truncated-length", "truncated")]
    [TestCase("not-a-dict", "expected '{'")]
    [TestCase("unterminated-string", "unterminated")]
    [TestCase("fortran", "Fortran")]
    [TestCase("dtype-unsupported", "'<c8'")]
    [TestCase("dtype-structured", "structured")]
    [TestCase("dtype-object", "'|O'")]
    [TestCase("missing-shape", "no 'shape'")]
    [TestCase("extra-key", "unexpected header key 'foo'")]
    [TestCase("negative-dim", "-3")]
    [TestCase("huge-dim", "out of range")]
    [TestCase("dim-not-a-number", "not a valid dimension")]
    [TestCase("dim-overflows-long", "not a valid dimension")]
    [TestCase("shape-product-overflow", "too many elements")]
    [TestCase("data-shorter-than-shape", "truncated")]
    [TestCase("shape-larger-than-file", "truncated")]
    [TestCase("fortran-not-bool", "True or False")]
    [TestCase("text-after-dict", "after the header")]
    [TestCase("too-many-dims", "64 dimensions")]
    public void MalformedFile_ThrowsCheckpointFormatExceptionNamingTheFile(string name, string fragment)
    {
        const string ok = "'descr': '<f4', 'fortran_order': False";
        byte[] bytes = name switch
        {
            "empty" => [],
            "short" => [0x93, (byte)'N', (byte)'U'],
            "bad-magic" => Encoding.ASCII.GetBytes("PK\x03\x04 this is a zip file, not npy"),
            "version-9" => Build($"{{{ok}, 'shape': (1,), }}", 9, Floats(1f)),
            "header-past-end" => WithLength(Build($"{{{ok}, 'shape': (1,), }}", 1, Floats(1f)), 60000),
            "v2-header-past-end" => WithLength(Build($"{{{ok}, 'shape': (1,), }}", 2, Floats(1f)), 0xFFFFFFF0),
            "v2-truncated-length" => [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 2, 0, 5, 0, 0],
            "not-a-dict" => Build("['descr', '<f4']", 1, Floats(1f)),
            "unterminated-string" => Build("{'descr': '<f4", 1, Floats(1f)),
            "fortran" => Build("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 1, Floats(1f, 2f, 3f, 4f)),
            "dtype-unsupported" => Build("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", 1, Floats(1f, 2f)),
            "dtype-structured" => Build("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", 1, Floats(1f)),
            "dtype-object" => Build("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", 1, Floats(1f, 1f)),
            "missing-shape" => Build($"{{{ok}, }}", 1, Floats(1f)),
            "extra-key" => Build($"{{{ok}, 'shape': (1,), 'foo': 1}}", 1, Floats(1f)),
            "negative-dim" => Build($"{{{ok}, 'shape': (2, -3), }}", 1, Floats(1f)),
            "huge-dim" => Build($"{{{ok}, 'shape': (4294967296,), }}", 1, Floats(1f)),
            "dim-not-a-number" => Build($"{{{ok}, 'shape': (2, x), }}", 1, Floats(1f)),
            "dim-overflows-long" => Build($"{{{ok}, 'shape': (99999999999999999999999,), }}", 1, Floats(1f)),
            "shape-product-overflow" => Build($"{{{ok}, 'shape': (2147483647, 2147483647, 2147483647, 2147483647, 3), }}", 1, Floats(1f)),
            "data-shorter-than-shape" => Build($"{{{ok}, 'shape': (2, 3), }}", 1, Floats(1f, 2f, 3f, 4f, 5f)),
            "shape-larger-than-file" => Build($"{{{ok}, 'shape': (10000, 10000), }}", 1, Floats(1f)),
            "fortran-not-bool" => Build("{'descr': '<f4', 'fortran_order': 0, 'shape': (1,), }", 1, Floats(1f)),
            "text-after-dict" => Build($"{{{ok}, 'shape': (1,), }} junk", 1, Floats(1f)),
            "too-many-dims" => Build($"{{{ok}, 'shape': ({string.Concat(Enumerable.Repeat("1, ", 70))}), }}", 1, Floats(1f)),
            _ => throw new ArgumentException(name),
        };
        string path = Path.Combine(dir, name + ".npy");
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<CheckpointFormatException>(() => Npy.Read(path));
        Assert.That(e!.Message, Does.Contain(name + ".npy").And.Contain(fragment));
        Assert.That(e.FileName, Is.EqualTo(path));
    }

    [Test]
    public void SeededMutations_EitherLoadOrThrowCheckpointFormatException()
    {
        string path = Path.Combine(dir, "base.npy");
        Npy.Write(path, TestData.Random(3 * 5 * 7, 3), 3, 5, 7);
        byte[] original = File.ReadAllBytes(path);
        var rng = new Random(20240611);
        int loaded = 0, rejected = 0;
        for (int m = 0; m < 300; m++)
        {
            byte[] bytes;
            string what;
            switch (m % 3)
            {
                case 0:
                    int length = rng.Next(original.Length);
                    bytes = original[..length];
                    what = $"truncate to {length}";
                    break;
                case 1:
                    bytes = (byte[])original.Clone();
                    int at = rng.Next(128); // header region
                    bytes[at] = (byte)rng.Next(256);
                    what = $"set byte {at} to {bytes[at]}";
                    break;
                default:
                    bytes = (byte[])original.Clone();
                    int flips = 1 + rng.Next(4);
                    what = "flip bits at";
                    for (int k = 0; k < flips; k++)
                    {
                        int i = rng.Next(bytes.Length);
                        bytes[i] ^= (byte)(1 << rng.Next(8));
                        what += " " + i;
                    }
                    break;
            }
            try
            {
                var a = Npy.Parse(bytes, "mutant.npy");
                _ = a.ToFloat32();
                _ = a.ToFloat64();
                if (!a.IsFloatingPoint) _ = a.ToInt64();
                loaded++;
            }
            catch (CheckpointFormatException e)
            {
                Assert.That(e.Message, Does.StartWith("mutant.npy: "), what);
                rejected++;
            }
            catch (Exception e)
            {
                Assert.Fail($"mutation {m} ({what}) threw {e.GetType().Name}: {e.Message}");
            }
        }
        TestContext.Out.WriteLine($"npy mutations: {loaded} loaded, {rejected} rejected");
        Assert.That(rejected, Is.GreaterThan(50));
    }

    private static byte[] Floats(params float[] values)
    {
        var b = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan(4 * i), values[i]);
        return b;
    }

    /// <summary>A .npy file with the given header text (padded like numpy) and raw data.</summary>
    private static byte[] Build(string dict, int major, byte[] data)
    {
        int prefix = major == 1 ? 10 : 12;
        string header = dict.PadRight((prefix + dict.Length + 1 + 63) / 64 * 64 - prefix - 1) + "\n";
        var bytes = new byte[prefix + header.Length + data.Length];
        new byte[] { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', (byte)major, 0 }.CopyTo(bytes, 0);
        if (major == 1) BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(8), (ushort)header.Length);
        else BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(8), (uint)header.Length);
        Encoding.Latin1.GetBytes(header).CopyTo(bytes, prefix);
        data.CopyTo(bytes, prefix + header.Length);
        return bytes;
    }

    private static byte[] WithLength(byte[] bytes, uint headerLength)
    {
        if (bytes[6] == 1) BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(8), (ushort)headerLength);
        else BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(8), headerLength);
        return bytes;
    }
}

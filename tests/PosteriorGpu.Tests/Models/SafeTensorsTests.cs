using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using NUnit.Framework;
using PosteriorGpu.Models.IO;

namespace PosteriorGpu.Tests.Models;

public class SafeTensorsTests
{
    private string dir = "";

    [OneTimeSetUp]
    public void CreateTempDir() => dir = Directory.CreateTempSubdirectory("safetensors-tests-").FullName;

    [OneTimeTearDown]
    public void DeleteTempDir() => Directory.Delete(dir, recursive: true);

    private static string FixtureCheckpoint => Fixtures.File("diffusers-unet-tiny", "diffusion_pytorch_model.safetensors");

    [Test]
    public void FixtureCheckpoint_LoadsEveryTensor()
    {
        var st = SafeTensorsFile.Read(FixtureCheckpoint);
        Assert.That(st.Count, Is.EqualTo(144));
        Assert.That(st.Names, Does.Contain("conv_in.weight").And.Contain("mid_block.attentions.0.to_q.weight").And.Not.Contain("__metadata__"));
        Assert.That(st.Metadata, Is.EquivalentTo(new Dictionary<string, string> { ["format"] = "pt" }));
        Assert.That(st.ShapeOf("conv_in.weight"), Is.EqualTo(new[] { 32, 1, 3, 3 }));
        Assert.That(st.DTypeOf("conv_in.weight"), Is.EqualTo("F32"));
        var w = st.GetFloat32("conv_in.weight", 32, 1, 3, 3);
        Assert.That(w[..3], Is.EqualTo(new[] { -0.02488252893090248f, 0.24690376222133636f, -0.34206297993659973f }));
        // meta.json: 701,345 parameters.
        Assert.That(st.Values.Sum(t => t.ElementCount), Is.EqualTo(701_345));
        long floats = 0;
        foreach (var name in st.Names) floats += st.GetFloat32(name).Length;
        Assert.That(floats, Is.EqualTo(701_345));
        Assert.That(st["conv_in.bias"].Shape, Is.EqualTo(new[] { 32 }));
        Assert.That(st.ContainsKey("nope"), Is.False);
    }

    [Test]
    public void ShapeMismatch_AndMissingTensor_NameFileAndTensor()
    {
        var st = SafeTensorsFile.Read(FixtureCheckpoint);
        var e = Assert.Throws<CheckpointFormatException>(() => st.GetFloat32("conv_in.weight", 32, 3, 3, 3));
        Assert.That(e!.Message, Is.EqualTo($"{FixtureCheckpoint}: tensor 'conv_in.weight': expected shape [32, 3, 3, 3] but got [32, 1, 3, 3]"));
        e = Assert.Throws<CheckpointFormatException>(() => st.GetFloat32("down_blocks.9.weight"));
        Assert.That(e!.Message, Is.EqualTo($"{FixtureCheckpoint}: missing tensor 'down_blocks.9.weight'"));
        Assert.Throws<CheckpointFormatException>(() => st.ShapeOf("x"));
        Assert.Throws<CheckpointFormatException>(() => _ = st["x"]);
    }

    [Test]
    public void RoundTrip_Float32_IsExact_AndFloat16_WithinHalfPrecision()
    {
        var tensors = new List<(string Name, int[] Shape, float[] Data)>
        {
            ("b.weight", [3, 4, 5], TestData.Random(60, 1, 3f)),
            ("a.bias", [7], TestData.Random(7, 2)),
            ("scalar", [], [42.5f]),
            ("empty", [0, 4], []),
        };
        var meta = new Dictionary<string, string> { ["format"] = "pt", ["note"] = "héllo \"quoted\"" };
        foreach (bool half in new[] { false, true })
        {
            string path = Path.Combine(dir, half ? "f16.safetensors" : "f32.safetensors");
            SafeTensorsWriter.Write(path, tensors, meta, float16: half);
            var st = SafeTensorsFile.Read(path);
            Assert.That(st.Names, Is.EqualTo(new[] { "a.bias", "b.weight", "empty", "scalar" }));
            Assert.That(st.Metadata, Is.EquivalentTo(meta));
            foreach (var (name, shape, data) in tensors)
            {
                Assert.That(st.ShapeOf(name), Is.EqualTo(shape));
                Assert.That(st.DTypeOf(name), Is.EqualTo(half ? "F16" : "F32"));
                var back = st.GetFloat32(name, shape);
                if (!half) Assert.That(back, Is.EqualTo(data));
                else
                    for (int i = 0; i < data.Length; i++)
                        Assert.That(back[i], Is.EqualTo(data[i]).Within(Math.Abs(data[i]) * 4.8828125e-4f + 1e-7f), name);
            }
            // Layout of the reference implementation: header padded with spaces to 8 bytes, data contiguous.
            var bytes = File.ReadAllBytes(path);
            long n = BinaryPrimitives.ReadInt64LittleEndian(bytes);
            Assert.That(n % 8, Is.Zero);
            Assert.That(bytes.Length, Is.EqualTo(8 + n + (60 + 7 + 1) * (half ? 2 : 4)));
            using var doc = JsonDocument.Parse(bytes.AsMemory(8, (int)n));
            Assert.That(doc.RootElement.GetProperty("b.weight").GetProperty("data_offsets")[1].GetInt64(), Is.EqualTo((7 + 60) * (half ? 2 : 4)));
        }
    }

    [Test]
    public void Writer_RejectsBadInput()
    {
        string path = Path.Combine(dir, "bad.safetensors");
        Assert.Throws<ArgumentException>(() => SafeTensorsWriter.Write(path, [("a", [2, 3], new float[5])]));
        Assert.Throws<ArgumentException>(() => SafeTensorsWriter.Write(path, [("a", [1], new float[1]), ("a", [1], new float[1])]));
        Assert.Throws<ArgumentException>(() => SafeTensorsWriter.Write(path, [("__metadata__", [1], new float[1])]));
        Assert.That(File.Exists(path), Is.False);
    }

    [Test]
    public void BFloat16_F16_F64_ConvertToFloat32()
    {
        ushort[] bf16 = [0x3F80, 0xC000, 0x4049, 0x3E80, 0x0000, 0x8000, 0x7F80, 0xFF80, 0x0001, 0x477F];
        float[] expected = [1f, -2f, 3.140625f, 0.25f, 0f, -0f, float.PositiveInfinity, float.NegativeInfinity, BitConverter.UInt32BitsToSingle(0x00010000), 65280f];
        for (int i = 0; i < bf16.Length; i++) Assert.That(SafeTensorsFile.BFloat16ToSingle(bf16[i]), Is.EqualTo(expected[i]));
        Assert.That(float.IsNaN(SafeTensorsFile.BFloat16ToSingle(0x7FC0)));

        var data = new byte[bf16.Length * 2 + 3 * 2 + 2 * 8 + 8];
        for (int i = 0; i < bf16.Length; i++) BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(2 * i), bf16[i]);
        int o = bf16.Length * 2;
        BinaryPrimitives.WriteHalfLittleEndian(data.AsSpan(o), (Half)1.5f);
        BinaryPrimitives.WriteHalfLittleEndian(data.AsSpan(o + 2), (Half)(-65504f));
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(o + 4), 0x0001); // smallest subnormal half, 2^-24
        BinaryPrimitives.WriteDoubleLittleEndian(data.AsSpan(o + 6), Math.PI);
        BinaryPrimitives.WriteDoubleLittleEndian(data.AsSpan(o + 14), -1e300);
        BinaryPrimitives.WriteInt64LittleEndian(data.AsSpan(o + 22), 5);
        string json = $$"""
            {"bf": {"dtype": "BF16", "shape": [2, 5], "data_offsets": [0, {{o}}]},
             "h": {"dtype": "F16", "shape": [3], "data_offsets": [{{o}}, {{o + 6}}]},
             "d": {"dtype": "F64", "shape": [2], "data_offsets": [{{o + 6}}, {{o + 22}}]},
             "i": {"dtype": "I64", "shape": [], "data_offsets": [{{o + 22}}, {{o + 30}}]} }
            """;
        var st = SafeTensorsFile.Parse(Build(json, data), "mixed.safetensors");
        Assert.That(st.GetFloat32("bf", 2, 5), Is.EqualTo(expected));
        Assert.That(st.GetFloat32("h"), Is.EqualTo(new[] { 1.5f, -65504f, MathF.Pow(2, -24) }));
        Assert.That(st.GetFloat32("d"), Is.EqualTo(new[] { MathF.PI, float.NegativeInfinity }));
        Assert.That(st.GetBytes("i").Length, Is.EqualTo(8));
        var e = Assert.Throws<CheckpointFormatException>(() => st.GetFloat32("i"));
        Assert.That(e!.Message, Does.Contain("mixed.safetensors").And.Contain("'i'").And.Contain("I64"));
    }

    private const string Good = "\"w\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [0, 16]}";

    /// <summary>Each case builds a malformed file; reading must throw CheckpointFormatException naming the
    /// file and, where a tensor is at fault, the tensor.</summary>
    [TestCase("empty", "too short")]
    [TestCase("seven-bytes", "too short")]
    [TestCase("header-past-end", "runs past the end of the file")]
    [TestCase("header-gigabytes", "exceeds")]
    [TestCase("header-u64-max", "exceeds")]
    [TestCase("header-empty", "not valid JSON")]
    [TestCase("invalid-json", "not valid JSON")]
    [TestCase("trailing-comma", "not valid JSON")]
    [TestCase("json-array", "must be a JSON object")]
    [TestCase("deep-nesting", "not valid JSON")]
    [TestCase("invalid-utf8", "UTF-8")]
    [TestCase("entry-not-object", "tensor 't'")]
    [TestCase("missing-dtype", "tensor 't': missing or non-string 'dtype'")]
    [TestCase("unknown-dtype", "tensor 't': unknown dtype 'Q4'")]
    [TestCase("missing-shape", "tensor 't': missing or non-array 'shape'")]
    [TestCase("negative-dim", "tensor 't': shape entry 1 (-2)")]
    [TestCase("fractional-dim", "tensor 't': shape entry 0 (1.5)")]
    [TestCase("huge-dim", "tensor 't': shape entry 0 (1e20)")]
    [TestCase("string-dim", "tensor 't': shape entry 0")]
    [TestCase("shape-overflow", "tensor 't': shape [2147483647, 2147483647, 2147483647, 2147483647, 2147483647] has too many elements")]
    [TestCase("offsets-missing", "tensor 't': missing 'data_offsets'")]
    [TestCase("offsets-three", "tensor 't': missing 'data_offsets'")]
    [TestCase("offsets-negative", "tensor 't': data_offsets begin (-4)")]
    [TestCase("offsets-past-buffer", "tensor 't': data_offsets [16, 32] run past the end of the data buffer (16 bytes)")]
    [TestCase("offsets-huge", "tensor 't': data_offsets [0, 9223372036854775807] run past")]
    [TestCase("end-before-begin", "tensor 't': data_offsets [8, 0] end before they begin")]
    [TestCase("length-mismatch", "tensor 't': data_offsets [0, 12] span 12 bytes but shape [2, 2] of F32 needs 16")]
    [TestCase("truncated-data", "run past the end of the data buffer")]
    [TestCase("duplicate-name", "tensor 'w' appears twice")]
    [TestCase("metadata-not-strings", "'__metadata__' entry 'epoch' must be a string")]
    [TestCase("metadata-array", "'__metadata__' must be an object")]
    public void MalformedFile_ThrowsCheckpointFormatExceptionNamingTheFile(string name, string fragment)
    {
        var data = new byte[16];
        byte[] bytes = name switch
        {
            "empty" => [],
            "seven-bytes" => [1, 0, 0, 0, 0, 0, 0],
            "header-past-end" => WithLength(Build($"{{{Good}}}", data), 5000),
            "header-gigabytes" => WithLength(Build($"{{{Good}}}", data), 4UL << 30),
            "header-u64-max" => WithLength(Build($"{{{Good}}}", data), ulong.MaxValue),
            "header-empty" => Build("", data),
            "invalid-json" => Build("{\"w\": {\"dtype\": F32}}", data),
            "trailing-comma" => Build($"{{{Good},}}", data),
            "json-array" => Build("[1, 2, 3]", data),
            "deep-nesting" => Build(new string('[', 200) + new string(']', 200), data),
            "invalid-utf8" => Build("{\"w\xff\": {}}", data, latin1: true),
            "entry-not-object" => Build($"{{{Good}, \"t\": 7}}", data),
            "missing-dtype" => Build("{\"t\": {\"shape\": [2, 2], \"data_offsets\": [0, 16]}}", data),
            "unknown-dtype" => Build("{\"t\": {\"dtype\": \"Q4\", \"shape\": [2, 2], \"data_offsets\": [0, 16]}}", data),
            "missing-shape" => Build("{\"t\": {\"dtype\": \"F32\", \"data_offsets\": [0, 16]}}", data),
            "negative-dim" => Build("{\"t\": {\"dtype\": \"F32\", \"shape\": [2, -2], \"data_offsets\": [0, 16]}}", data),
            "fractional-dim" => Build("{\"t\": {\"dtype\": \"F32\", \"shape\": [1.5], \"data_offsets\": [0, 16]}}", data),
            "huge-dim" => Build("{\"t\": {\"dtype\": \"F32\", \"shape\": [1e20], \"data_offsets\": [0, 16]}}", data),
            "string-dim" => Build("{\"t\": {\"dtype\": \"F32\", \"shape\": [\"4\"], \"data_offsets\": [0, 16]}}", data),
            "shape-overflow" => Build("{\"t\": {\"dtype\": \"F32\", \"shape\": [2147483647, 2147483647, 2147483647, 2147483647, 2147483647], \"data_offsets\": [0, 16]}}", data),
            "offsets-missing" => Build("{\"t\": {\"dtype\": \"F32\", \"shape\": [4]}}", data),
            "offsets-three" => Build("{\"t\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 8, 16]}}", data),
            "offsets-negative" => Build("{\"t\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [-4, 0]}}", data),
            "offsets-past-buffer" => Build("{\"t\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [16, 32]}}", data),
            "offsets-huge" => Build("{\"t\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 9223372036854775807]}}", data),
            "end-before-begin" => Build("{\"t\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [8, 0]}}", data),
            "length-mismatch" => Build("{\"t\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [0, 12]}}", data),
            "truncated-data" => Build($"{{{Good}}}", new byte[10]),
            "duplicate-name" => Build($"{{{Good}, {Good}}}", data),
            "metadata-not-strings" => Build($"{{\"__metadata__\": {{\"epoch\": 3}}, {Good}}}", data),
            "metadata-array" => Build($"{{\"__metadata__\": [], {Good}}}", data),
            _ => throw new ArgumentException(name),
        };
        string path = Path.Combine(dir, name + ".safetensors");
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<CheckpointFormatException>(() => SafeTensorsFile.Read(path));
        Assert.That(e!.Message, Does.StartWith(path + ": ").And.Contain(fragment));
    }

    [Test]
    public void UnsortedOffsets_AreAccepted_OverlapsGapsAndTrailingBytes_AreNot()
    {
        var data = new byte[16];
        BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(8), 7f);
        var st = SafeTensorsFile.Parse(Build("""
            {"b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]},
             "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
             "z": {"dtype": "F32", "shape": [0], "data_offsets": [16, 16]}}
            """, data), "odd.safetensors");
        Assert.That(st.Names, Is.EqualTo(new[] { "b", "a", "z" }));
        Assert.That(st.GetFloat32("b"), Is.EqualTo(new[] { 7f, 0f }));
        Assert.That(st.GetFloat32("z"), Is.Empty);

        // The reference implementation's rule (InvalidOffset, MetadataIncompleteBuffer): tensors tile the
        // buffer. Aliased tensors would let a small file expand in memory; uncovered bytes hide a payload.
        var overlap = Assert.Throws<CheckpointFormatException>(() => SafeTensorsFile.Parse(Build("""
            {"b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]},
             "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}
            """, data), "overlap.safetensors"));
        Assert.That(overlap!.Message, Is.EqualTo("overlap.safetensors: tensor 'b': data_offsets [8, 16] overlap tensor 'a', which ends at 16"));
        var gap = Assert.Throws<CheckpointFormatException>(() => SafeTensorsFile.Parse(Build("""
            {"b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}, "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}
            """, data), "gap.safetensors"));
        Assert.That(gap!.Message, Does.Contain("tensor 'b': data_offsets [8, 12] leave a gap after tensor 'a', which ends at 4"));
        var trailing = Assert.Throws<CheckpointFormatException>(() => SafeTensorsFile.Parse(Build("""
            {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
            """, data), "trailing.safetensors"));
        Assert.That(trailing!.Message, Does.Contain("the tensors cover 8 bytes of the 16-byte data buffer"));
    }

    [Test]
    public void SeededMutations_EitherLoadOrThrowCheckpointFormatException()
    {
        byte[] original = File.ReadAllBytes(FixtureCheckpoint);
        int headerEnd = 8 + (int)BinaryPrimitives.ReadUInt64LittleEndian(original);
        var rng = new Random(1234567);
        int loaded = 0, rejected = 0;
        for (int m = 0; m < 300; m++)
        {
            byte[] bytes;
            string what;
            switch (m % 4)
            {
                case 0:
                    int length = m % 8 == 0 ? rng.Next(headerEnd + 64) : rng.Next(original.Length);
                    bytes = original[..length];
                    what = $"truncate to {length}";
                    break;
                case 1:
                    bytes = (byte[])original.Clone();
                    int at = rng.Next(headerEnd);
                    bytes[at] = (byte)rng.Next(256);
                    what = $"set header byte {at} to {bytes[at]}";
                    break;
                case 2:
                    // Make a digit inside the JSON a different digit: offsets and shapes go wrong but stay JSON.
                    bytes = (byte[])original.Clone();
                    int pos = 8 + rng.Next(headerEnd - 8);
                    while (pos < headerEnd && !char.IsAsciiDigit((char)bytes[pos])) pos++;
                    if (pos < headerEnd) bytes[pos] = (byte)('0' + rng.Next(10));
                    what = $"change digit at {pos}";
                    break;
                default:
                    bytes = (byte[])original.Clone();
                    int flips = 1 + rng.Next(8);
                    what = "flip bits at";
                    for (int k = 0; k < flips; k++)
                    {
                        int i = k == 0 && m % 8 == 3 ? rng.Next(8) : rng.Next(bytes.Length); // sometimes the length prefix, else anywhere
                        bytes[i] ^= (byte)(1 << rng.Next(8));
                        what += " " + i;
                    }
                    break;
            }
            try
            {
                SafeTensorsFile st;
                if (m % 30 == 0)
                {
                    string path = Path.Combine(dir, "mutant.safetensors");
                    File.WriteAllBytes(path, bytes);
                    st = SafeTensorsFile.Read(path);
                }
                else st = SafeTensorsFile.Parse(bytes, "mutant.safetensors");
                foreach (var name in st.Names) _ = st.GetFloat32(name, st.ShapeOf(name));
                loaded++;
            }
            catch (CheckpointFormatException e)
            {
                Assert.That(e.Message, Does.Contain("mutant.safetensors: "), what);
                rejected++;
            }
            catch (Exception e)
            {
                Assert.Fail($"mutation {m} ({what}) threw {e.GetType().Name}: {e.Message}");
            }
        }
        TestContext.Out.WriteLine($"safetensors mutations: {loaded} loaded, {rejected} rejected");
        Assert.That(rejected, Is.GreaterThan(100));
    }

    /// <summary>u64 header length, the JSON, then the data buffer.</summary>
    private static byte[] Build(string json, byte[] data, bool latin1 = false)
    {
        var header = latin1 ? Encoding.Latin1.GetBytes(json) : Encoding.UTF8.GetBytes(json);
        var bytes = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)header.Length);
        header.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + header.Length);
        return bytes;
    }

    private static byte[] WithLength(byte[] bytes, ulong headerLength)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, headerLength);
        return bytes;
    }
}

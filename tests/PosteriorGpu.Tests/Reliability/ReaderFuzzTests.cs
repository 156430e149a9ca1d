using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using NUnit.Framework;
using PosteriorGpu.Models.IO;
using PosteriorGpu.Models.UNet;

namespace PosteriorGpu.Tests.Reliability;

/// <summary>
/// Hostile files: thousands of seeded mutants of valid files per reader (truncated, bit-flipped, lying
/// lengths, offsets and shapes, swapped dtypes, huge sizes, empty, random). Each must read, or fail
/// with the reader's documented exception naming the file, without allocating more than the file's
/// size (plus a fixed slack) and without hanging. To fuzz a new reader, add a target to
/// <see cref="Targets"/>: seed files, a read that uses every value, and what the mutator should know.
/// </summary>
public partial class ReaderFuzzTests
{
    private static readonly Dictionary<string, Func<FuzzTarget>> Targets = new()
    {
        ["safetensors"] = SafeTensorsTarget,
        ["safetensors-diffusers-header"] = SafeTensorsFixtureTarget,
        ["npy"] = NpyTarget,
        ["config.json"] = ConfigTarget,
        ["unet-folder"] = UNetFolderTarget,
        ["mnist-idx"] = MnistIdxTarget,
        ["png-input"] = PngInputTarget,
    };

    private static IEnumerable<string> TargetNames => Targets.Keys;

    [TestCaseSource(nameof(TargetNames))]
    public void EveryMutant_ReadsOrFailsWithADocumentedError(string reader)
    {
        var target = Targets[reader]();
        FuzzReport report;
        try { report = FuzzRunner.Run(target); }
        finally
        {
            // Targets that need real files make them in a temporary folder of their own.
            if (target.NameRoot.StartsWith(Path.GetTempPath(), StringComparison.Ordinal) && Directory.Exists(target.NameRoot))
                Directory.Delete(target.NameRoot, recursive: true);
        }
        // The mutants must exercise the reader, not only its first check.
        Assert.That(report.Rejected, Is.GreaterThan(report.Tried / 2), "most mutants should be rejected");
        Assert.That(report.DistinctErrors, Is.GreaterThan(20), "mutants should reach many different checks");
    }

    [Test]
    public void AConfigClaimingABillionLayers_FailsAtTheFirstMissingTensor()
    {
        // Found by the fuzzer (case seed 77003094): the blocks sized their arrays from layers_per_block,
        // so this config allocated 16 GB of references before looking at the weights.
        string source = Fixtures.Path("diffusers-unet-tiny");
        string folder = Directory.CreateTempSubdirectory("unet-layers-").FullName;
        try
        {
            File.CreateSymbolicLink(Path.Combine(folder, UNet2DModel.WeightsFileName), Path.Combine(source, UNet2DModel.WeightsFileName));
            foreach (int layers in new[] { 1 << 30, int.MaxValue })
            {
                string config = File.ReadAllText(Path.Combine(source, "config.json")).Replace("\"layers_per_block\": 1", $"\"layers_per_block\": {layers}");
                File.WriteAllText(Path.Combine(folder, "config.json"), config);
                long live = TestDevices.Cpu.LiveBuffers;
                long before = GC.GetAllocatedBytesForCurrentThread();
                var ex = Assert.Throws<CheckpointFormatException>(() => UNet2DModel.Load(TestDevices.Cpu, folder));
                long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
                Assert.That(ex!.Message, Does.Contain("missing tensor 'down_blocks.0.resnets.1."));
                Assert.That(allocated, Is.LessThan(32L << 20), "allocation bounded by the weights, not by the claim");
                Assert.That(TestDevices.Cpu.LiveBuffers, Is.EqualTo(live));
            }
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Test]
    public void TheMutatorIsReproducible()
    {
        var target = NpyTarget();
        for (int seed = 0; seed < 50; seed++)
        {
            var a = Mutator.Mutate(target.Seeds[0], target.Format, seed);
            var b = Mutator.Mutate(target.Seeds[0], target.Format, seed);
            Assert.That(b.Bytes, Is.EqualTo(a.Bytes));
            Assert.That(b.Description, Is.EqualTo(a.Description));
        }
        Assert.That(Mutator.Mutate(target.Seeds[0], target.Format, 1).Bytes, Is.Not.EqualTo(target.Seeds[0]));
    }

    // ---- safetensors ----

    private static readonly string[] SafeTensorsTokens =
        ["F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "U16", "U32", "U64", "BOOL", "F8_E4M3", "F8_E5M2",
         "dtype", "shape", "data_offsets", "__metadata__", "format"];

    private static FuzzFormat SafeTensorsFormat => new()
    {
        Header = b => b.Length >= 8 ? (8, (int)Math.Min(BinaryPrimitives.ReadUInt64LittleEndian(b), (ulong)(b.Length - 8))) : null,
        TextHeader = true,
        SetHeaderLength = (b, n) => { if (b.Length >= 8) BinaryPrimitives.WriteUInt64LittleEndian(b, (ulong)n); },
        IntegerFields = _ => [new IntegerField(0, 8), new IntegerField(0, 4), new IntegerField(4, 4)],
        Tokens = SafeTensorsTokens,
    };

    private static void ReadSafeTensors(byte[] bytes, string name) => ReadSafeTensors(bytes, name, convert: true);

    private static void ReadSafeTensors(byte[] bytes, string name, bool convert)
    {
        var file = SafeTensorsFile.Parse(bytes, name);
        foreach (var info in file.Values)
        {
            if (convert && info.DType is "F32" or "F16" or "BF16" or "F64")
            {
                var values = file.GetFloat32(info.Name);
                if (values.Length != info.ElementCount) throw new InvalidOperationException($"{info.Name}: {values.Length} values for {info.ElementCount} elements");
            }
            else if (file.GetBytes(info.Name).Length != info.End - info.Begin)
                throw new InvalidOperationException($"{info.Name}: wrong byte count");
        }
        _ = file.Metadata.Count;
        // The format's own rule: the tensors tile the data buffer exactly (no aliasing, no hidden bytes).
        long end = 0;
        foreach (var info in file.Values.OrderBy(v => v.Begin).ThenBy(v => v.End))
        {
            if (info.Begin != end) throw new InvalidOperationException($"accepted {info.Name} at [{info.Begin}, {info.End}) after a tensor ending at {end}");
            end = info.End;
        }
        long buffer = bytes.Length - 8 - (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        if (end != buffer) throw new InvalidOperationException($"accepted a file whose tensors cover {end} of its {buffer} data bytes");
    }

    /// <summary>Small files covering every float dtype, integer dtypes, metadata, scalars and empty tensors.</summary>
    private static FuzzTarget SafeTensorsTarget()
    {
        var rng = new Random(5);
        byte[] Data(int n) { var b = new byte[n]; rng.NextBytes(b); return b; }
        var seeds = new List<byte[]>
        {
            SafeTensors([("w", "F32", [2, 3], Data(24)), ("b", "F32", [3], Data(12))], new() { ["format"] = "pt" }),
            SafeTensors([("h", "F16", [4, 1, 2], Data(16)), ("bf", "BF16", [5], Data(10)), ("d", "F64", [2], Data(16))], null),
            SafeTensors([("scalar", "F32", [], Data(4)), ("empty", "F32", [0, 7], []), ("i", "I64", [2], Data(16)), ("u", "U8", [3], Data(3))],
                new() { ["a"] = "b", ["c"] = "" }),
        };
        return new FuzzTarget("safetensors", seeds, ReadSafeTensors) { Count = 4000, Format = SafeTensorsFormat };
    }

    /// <summary>The header of the real diffusers checkpoint (144 tensors, metadata) over small data: every dimension
    /// capped at 2, so that each mutant copies kilobytes, not the 2.8 MB file.</summary>
    private static FuzzTarget SafeTensorsFixtureTarget()
    {
        var fixture = SafeTensorsFile.Read(Fixtures.File("diffusers-unet-tiny", "diffusion_pytorch_model.safetensors"));
        var rng = new Random(7);
        var tensors = fixture.Values.Select(t =>
        {
            var shape = t.Shape.Select(d => Math.Min(d, 2)).ToArray();
            var data = new byte[shape.Aggregate(4, (a, d) => a * d)];
            rng.NextBytes(data);
            return (t.Name, t.DType, shape, data);
        });
        var seed = SafeTensors(tensors, fixture.Metadata.ToDictionary());
        return new FuzzTarget("safetensors-diffusers-header", [seed], ReadSafeTensors) { Count = 1000, Format = SafeTensorsFormat };
    }

    /// <summary>A safetensors file as the format specifies it (header padded with spaces to 8 bytes, data contiguous).</summary>
    public static byte[] SafeTensors(IEnumerable<(string Name, string DType, int[] Shape, byte[] Data)> tensors, Dictionary<string, string>? metadata)
    {
        var json = new MemoryStream();
        var data = new MemoryStream();
        using (var w = new Utf8JsonWriter(json))
        {
            w.WriteStartObject();
            if (metadata is not null)
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata) w.WriteString(k, v);
                w.WriteEndObject();
            }
            foreach (var (name, dtype, shape, bytes) in tensors)
            {
                w.WriteStartObject(name);
                w.WriteString("dtype", dtype);
                w.WriteStartArray("shape");
                foreach (int d in shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(data.Length);
                data.Write(bytes);
                w.WriteNumberValue(data.Length);
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        while (json.Length % 8 != 0) json.WriteByte((byte)' ');
        var result = new byte[8 + json.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(result, (ulong)json.Length);
        json.ToArray().CopyTo(result, 8);
        data.ToArray().CopyTo(result, 8 + json.Length);
        return result;
    }

    // ---- .npy ----

    private static FuzzTarget NpyTarget()
    {
        var rng = new Random(6);
        byte[] Data(int n) { var b = new byte[n]; rng.NextBytes(b); return b; }
        var seeds = new List<byte[]>
        {
            NpyFile(1, "<f4", "(2, 3)", Data(24)),
            NpyFile(1, "<i8", "(3,)", Data(24)),
            NpyFile(1, "|u1", "(2, 2, 2)", Data(8)),
            NpyFile(2, ">f8", "(2,)", Data(16)),
            NpyFile(3, "<f2", "()", Data(2)),
            NpyFile(1, "<i4", "(0, 5)", []),
        };
        seeds.Add(File.ReadAllBytes(Fixtures.File("diffusers-unet-tiny", "t.npy")));
        var format = new FuzzFormat
        {
            Header = b => b.Length < 10 ? null : b[6] == 1
                ? (10, Math.Min(BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(8)), b.Length - 10))
                : b.Length < 12 ? null : (12, (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(8)), (uint)(b.Length - 12))),
            TextHeader = true,
            SetHeaderLength = (b, n) =>
            {
                if (b.Length >= 10 && b[6] == 1) BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(8), (ushort)n);
                else if (b.Length >= 12) BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(8), (uint)n);
            },
            IntegerFields = b => [new IntegerField(6, 1), new IntegerField(7, 1), new IntegerField(8, 2), new IntegerField(8, 4)],
            Tokens = ["<f4", "<f8", "<f2", "<i8", "<i4", "|u1", "|i1", ">f4", ">f8", "<c8", "<U4", "|b1", "|O", "<u2", "True", "False",
                      "descr", "shape", "fortran_order"],
        };
        return new FuzzTarget("npy", seeds, (bytes, name) =>
        {
            var a = Npy.Parse(bytes, name);
            if (a.ToFloat32().Length != a.Length || a.ToFloat64().Length != a.Length) throw new InvalidOperationException("length");
            if (!a.IsFloatingPoint) _ = a.ToInt64();
        }) { Count = 4000, Format = format };
    }

    /// <summary>A .npy file of format version <paramref name="major"/>.0 with a numpy-style padded header.</summary>
    public static byte[] NpyFile(int major, string descr, string shape, byte[] data)
    {
        string dict = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}";
        int prefix = major == 1 ? 10 : 12;
        int total = (prefix + dict.Length + 1 + 63) / 64 * 64;
        string header = dict.PadRight(total - prefix - 1) + "\n";
        var bytes = new byte[prefix + header.Length + data.Length];
        new byte[] { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y' }.CopyTo(bytes, 0);
        bytes[6] = (byte)major;
        if (major == 1) BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(8), (ushort)header.Length);
        else BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(8), (uint)header.Length);
        Encoding.ASCII.GetBytes(header).CopyTo(bytes, prefix);
        data.CopyTo(bytes, prefix + header.Length);
        return bytes;
    }

    // ---- config.json ----

    private static readonly string[] ConfigTokens =
        ["DownBlock2D", "AttnDownBlock2D", "UpBlock2D", "AttnUpBlock2D", "UNetMidBlock2D", "CrossAttnDownBlock2D", "UNet2DModel",
         "silu", "swish", "gelu", "positional", "fourier", "conv", "default", "scale_shift", "null", "true", "false",
         "block_out_channels", "norm_num_groups", "attention_head_dim", "sample_size", "layers_per_block", "in_channels"];

    private static FuzzFormat ConfigFormat => new() { TextHeader = true, Tokens = ConfigTokens };

    private static FuzzTarget ConfigTarget()
    {
        var fixture = File.ReadAllBytes(Fixtures.File("diffusers-unet-tiny", "config.json"));
        var defaults = Encoding.UTF8.GetBytes(new UNet2DConfig { SampleSize = 32, BlockOutChannels = [32, 64, 64, 128], NumClassEmbeds = 10 }.ToJson());
        return new FuzzTarget("config.json", [fixture, defaults, "{}"u8.ToArray()], (bytes, name) =>
        {
            var config = UNet2DConfig.Parse(Encoding.UTF8.GetString(bytes), name);
            // What parses must be valid and survive a round trip.
            config.Validate();
            if (!UNet2DConfig.Parse(config.ToJson(), name).Equals(config)) throw new InvalidOperationException("round trip changed the config");
            _ = config.TimeEmbedDim;
        })
        {
            Count = 4000,
            Format = ConfigFormat,
            // The text is decoded to UTF-16 (two bytes per character) before parsing.
            AllocationBound = size => 3 * size + FuzzRunner.AllocationSlack,
        };
    }

    /// <summary>A model folder whose config.json lies about the weights beside it: the load must fail with a
    /// documented error and leave no device buffer behind.</summary>
    private static FuzzTarget UNetFolderTarget()
    {
        string source = Fixtures.Path("diffusers-unet-tiny");
        var weights = Path.Combine(source, UNet2DModel.WeightsFileName);
        var device = TestDevices.Cpu;
        string root = Directory.CreateTempSubdirectory("unet-fuzz-").FullName;
        return new FuzzTarget("unet-folder", [File.ReadAllBytes(Path.Combine(source, "config.json"))], (bytes, folder) =>
        {
            // The name is a real folder here, so that the message (naming config.json or the weights in it) names it.
            Directory.CreateDirectory(folder);
            File.CreateSymbolicLink(Path.Combine(folder, UNet2DModel.WeightsFileName), weights);
            File.WriteAllBytes(Path.Combine(folder, "config.json"), bytes);
            long live = device.LiveBuffers;
            try
            {
                using var model = UNet2DModel.Load(device, folder);
            }
            finally
            {
                Directory.Delete(folder, recursive: true);
                if (device.LiveBuffers != live) throw new InvalidOperationException($"the load leaked {device.LiveBuffers - live} device buffers");
            }
        })
        {
            Count = 200,
            NameRoot = root,
            Format = ConfigFormat,
            CaseTime = TimeSpan.FromMilliseconds(200),
            // The weights are read (bytes, then floats, then the copy to the device): bounded by the weights file, not by the config's claims.
            AllocationBound = _ => 3 * new FileInfo(weights).Length + FuzzRunner.AllocationSlack,
        };
    }
}

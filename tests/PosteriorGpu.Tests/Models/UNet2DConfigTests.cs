using System.Text.Json;
using NUnit.Framework;
using PosteriorGpu.Models.IO;
using PosteriorGpu.Models.UNet;

namespace PosteriorGpu.Tests.Models;

public class UNet2DConfigTests
{
    private static string FixtureConfig => Fixtures.File("diffusers-unet-tiny", "config.json");

    [Test]
    public void FixtureConfig_ParsesWithItsValues()
    {
        var c = UNet2DConfig.Load(FixtureConfig);
        Assert.Multiple(() =>
        {
            Assert.That(c.SampleSize, Is.EqualTo(16));
            Assert.That(c.SampleWidth, Is.Null);
            Assert.That((c.InChannels, c.OutChannels), Is.EqualTo((1, 1)));
            Assert.That(c.CenterInputSample, Is.False);
            Assert.That(c.TimeEmbeddingType, Is.EqualTo("positional"));
            Assert.That(c.TimeEmbeddingDim, Is.Null);
            Assert.That(c.TimeEmbedDim, Is.EqualTo(128));
            Assert.That(c.FlipSinToCos, Is.True);
            Assert.That(c.FreqShift, Is.EqualTo(0));
            Assert.That(c.DownBlockTypes, Is.EqualTo(new[] { "DownBlock2D", "AttnDownBlock2D" }));
            Assert.That(c.UpBlockTypes, Is.EqualTo(new[] { "AttnUpBlock2D", "UpBlock2D" }));
            Assert.That(c.MidBlockType, Is.EqualTo("UNetMidBlock2D"));
            Assert.That(c.HasMidBlock, Is.True);
            Assert.That(c.BlockOutChannels, Is.EqualTo(new[] { 32, 64 }));
            Assert.That(c.LayersPerBlock, Is.EqualTo(1));
            Assert.That(c.MidBlockScaleFactor, Is.EqualTo(1));
            Assert.That(c.DownsamplePadding, Is.EqualTo(1));
            Assert.That((c.DownsampleType, c.UpsampleType), Is.EqualTo(("conv", "conv")));
            Assert.That(c.Dropout, Is.EqualTo(0));
            Assert.That(c.ActFn, Is.EqualTo("silu"));
            Assert.That(c.AttentionHeadDim, Is.EqualTo(8));
            Assert.That((c.AttentionHeads(64), c.AttentionHeadSize(64)), Is.EqualTo((8, 8)));
            Assert.That(c.NormNumGroups, Is.EqualTo(8));
            Assert.That(c.AttnNormNumGroups, Is.Null);
            Assert.That(c.MidAttentionNormGroups, Is.EqualTo(8));
            Assert.That(c.NormEps, Is.EqualTo(1e-5));
            Assert.That(c.ResnetTimeScaleShift, Is.EqualTo("default"));
            Assert.That(c.AddAttention, Is.True);
            Assert.That(c.ClassEmbedType, Is.Null);
            Assert.That(c.NumClassEmbeds, Is.Null);
            Assert.That(c.NumTrainTimesteps, Is.Null);
            Assert.That(c.IgnoredKeys, Is.Empty);
        });
    }

    [Test]
    public void MissingKeys_TakeDiffusersDefaults()
    {
        var c = UNet2DConfig.Parse("{}", "empty.json");
        Assert.That(c, Is.EqualTo(new UNet2DConfig()));
        Assert.That(c.SampleSize, Is.Null);
        Assert.That((c.InChannels, c.OutChannels, c.LayersPerBlock, c.NormNumGroups, c.AttentionHeadDim), Is.EqualTo((3, 3, 2, 32, (int?)8)));
        Assert.That(c.BlockOutChannels, Is.EqualTo(new[] { 224, 448, 672, 896 }));
        Assert.That(c.DownBlockTypes, Is.EqualTo(new[] { "DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D" }));
        Assert.That(c.UpBlockTypes, Is.EqualTo(new[] { "AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D" }));
        Assert.That((c.MidBlockType, c.ResnetTimeScaleShift, c.ActFn, c.NormEps, c.FlipSinToCos, c.AddAttention),
            Is.EqualTo(("UNetMidBlock2D", "default", "silu", 1e-5, true, true)));
        Assert.That(c.TimeEmbedDim, Is.EqualTo(896));
    }

    [Test]
    public void ToJson_WritesTheFixtureConfigBack()
    {
        var c = UNet2DConfig.Load(FixtureConfig);
        using var ours = JsonDocument.Parse(c.ToJson());
        using var theirs = JsonDocument.Parse(File.ReadAllText(FixtureConfig));
        var ourKeys = ours.RootElement.EnumerateObject().Select(p => p.Name).ToList();
        Assert.That(ourKeys, Is.EquivalentTo(theirs.RootElement.EnumerateObject().Select(p => p.Name)));
        Assert.That(ourKeys, Is.Ordered.Using((IComparer<string>)StringComparer.Ordinal));
        foreach (var p in theirs.RootElement.EnumerateObject())
        {
            if (p.Name == "_diffusers_version") continue;
            Assert.That(Normalize(ours.RootElement.GetProperty(p.Name)), Is.EqualTo(Normalize(p.Value)), p.Name);
        }
        Assert.That(UNet2DConfig.Parse(c.ToJson(), "again.json"), Is.EqualTo(c));
    }

    [Test]
    public void SaveAndLoad_RoundTripNonDefaultValues()
    {
        var c = new UNet2DConfig
        {
            SampleSize = 32, SampleWidth = 64, InChannels = 2, OutChannels = 4, CenterInputSample = true,
            TimeEmbeddingDim = 96, FlipSinToCos = false, FreqShift = 1, DownBlockTypes = ["AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
            UpBlockTypes = ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D"], MidBlockType = null, BlockOutChannels = [16, 32, 48],
            LayersPerBlock = 3, MidBlockScaleFactor = 1.4142, DownsamplePadding = 0, Dropout = 0.1, ActFn = "swish",
            AttentionHeadDim = null, NormNumGroups = 4, AttnNormNumGroups = 2, NormEps = 1e-6, ResnetTimeScaleShift = "scale_shift",
            AddAttention = false, NumClassEmbeds = 10, NumTrainTimesteps = 1000,
        };
        string path = Path.Combine(Path.GetTempPath(), $"unet-config-{Guid.NewGuid():N}.json");
        try
        {
            c.Save(path);
            var back = UNet2DConfig.Load(path);
            Assert.That(back, Is.EqualTo(c));
            Assert.That((back.SampleSize, back.SampleWidth, back.MidBlockType, back.TimeEmbedDim), Is.EqualTo(((int?)32, (int?)64, (string?)null, 96)));
            Assert.That((back.AttentionHeads(48), back.AttentionHeadSize(48)), Is.EqualTo((1, 48)));
            Assert.That(back.MidBlockScaleFactor, Is.EqualTo(1.4142));
            Assert.That(File.ReadAllText(path), Does.Contain("\"sample_size\": [\n    32,\n    64\n  ]").Or.Contain("\"sample_size\": ["));
        }
        finally { File.Delete(path); }
        Assert.That(new UNet2DConfig { ResnetTimeScaleShift = "scale_shift" }.MidAttentionNormGroups, Is.Null);
        Assert.That(new UNet2DConfig { ResnetTimeScaleShift = "scale_shift", AttnNormNumGroups = 4 }.MidAttentionNormGroups, Is.EqualTo(4));
    }

    [Test]
    public void ParsingDetails_SquarePairs_UNetResPrefix_IntegralFloats_UnknownKeys()
    {
        var c = UNet2DConfig.Parse("""
            {"sample_size": [32, 32], "down_block_types": ["UNetResDownBlock2D", "AttnDownBlock2D"], "up_block_types": ["AttnUpBlock2D", "UpBlock2D"],
             "block_out_channels": [32.0, 64], "attention_legacy_order": false, "_name_or_path": "x", "dropout": 0}
            """, "misc.json");
        Assert.That((c.SampleSize, c.SampleWidth), Is.EqualTo(((int?)32, (int?)null)));
        Assert.That(c.DownBlockTypes[0], Is.EqualTo("DownBlock2D"));
        Assert.That(c.BlockOutChannels, Is.EqualTo(new[] { 32, 64 }));
        Assert.That(c.IgnoredKeys, Is.EqualTo(new[] { "attention_legacy_order" }));
    }

    [TestCase("act_fn", "\"gelu\"", "\"silu\"")]
    [TestCase("time_embedding_type", "\"fourier\"", "\"positional\"")]
    [TestCase("time_embedding_type", "\"learned\"", "\"positional\"")]
    [TestCase("down_block_types", "[\"SkipDownBlock2D\", \"AttnDownBlock2D\", \"AttnDownBlock2D\", \"AttnDownBlock2D\"]", "\"DownBlock2D\"")]
    [TestCase("up_block_types", "[\"AttnUpBlock2D\", \"CrossAttnUpBlock2D\", \"AttnUpBlock2D\", \"UpBlock2D\"]", "\"AttnUpBlock2D\"")]
    [TestCase("mid_block_type", "\"UNetMidBlock2DCrossAttn\"", "\"UNetMidBlock2D\"")]
    [TestCase("class_embed_type", "\"timestep\"", "null")]
    [TestCase("class_embed_type", "\"identity\"", "null")]
    [TestCase("resnet_time_scale_shift", "\"spatial\"", "\"scale_shift\"")]
    [TestCase("downsample_type", "\"resnet\"", "\"conv\"")]
    [TestCase("upsample_type", "\"resnet\"", "\"conv\"")]
    [TestCase("_class_name", "\"UNet2DConditionModel\"", "\"UNet2DModel\"")]
    public void UnsupportedValue_NamesFileKeyValueAndSupported(string key, string value, string supported)
    {
        var e = Assert.Throws<CheckpointFormatException>(() => UNet2DConfig.Parse($"{{\"{key}\": {value}}}", "weird/config.json"));
        Assert.That(e!.Message, Does.StartWith("weird/config.json: key '" + key + "'").And.Contain(supported));
        string shown = value.StartsWith('[') ? value.Split('"')[1] : value.Trim('"');
        Assert.That(e.Message, Does.Contain(shown));
    }

    [TestCase("{\"block_out_channels\": [32, 64]}", "same length")]
    [TestCase("{\"down_block_types\": [\"DownBlock2D\"], \"up_block_types\": [\"UpBlock2D\", \"UpBlock2D\"], \"block_out_channels\": [32]}", "same length")]
    [TestCase("{\"norm_num_groups\": 5}", "key 'norm_num_groups': 5 does not divide")]
    [TestCase("{\"attention_head_dim\": 5}", "key 'attention_head_dim': 5 does not divide the 896 channels of up block 0")]
    [TestCase("{\"attn_norm_num_groups\": 5}", "key 'attn_norm_num_groups': 5")]
    [TestCase("{\"sample_size\": 20}", "key 'sample_size': 20 must be a positive multiple of 2^(len(block_out_channels)-1) = 8")]
    [TestCase("{\"sample_size\": [16, 16, 16]}", "key 'sample_size'")]
    [TestCase("{\"in_channels\": \"1\"}", "key 'in_channels': must be an integer >= 1 but is \"1\"")]
    [TestCase("{\"layers_per_block\": 1.5}", "key 'layers_per_block'")]
    [TestCase("{\"layers_per_block\": 0}", "key 'layers_per_block'")]
    [TestCase("{\"block_out_channels\": 32}", "key 'block_out_channels': must be a list")]
    [TestCase("{\"block_out_channels\": []}", "key 'block_out_channels'")]
    [TestCase("{\"norm_eps\": -1}", "key 'norm_eps'")]
    [TestCase("{\"flip_sin_to_cos\": 1}", "key 'flip_sin_to_cos': must be true or false")]
    [TestCase("{\"norm_num_groups\": null}", "key 'norm_num_groups'")]
    [TestCase("{\"act_fn\": \"silu\", \"act_fn\": \"silu\"}", "key 'act_fn': appears twice")]
    [TestCase("{\"in_channels\": 1,}", "not valid JSON")]
    [TestCase("[]", "must be a JSON object")]
    [TestCase("", "not valid JSON")]
    public void InvalidOrInconsistentConfig_IsAClearError(string json, string fragment)
    {
        var e = Assert.Throws<CheckpointFormatException>(() => UNet2DConfig.Parse(json, "bad.json"));
        Assert.That(e!.Message, Does.StartWith("bad.json: ").And.Contain(fragment));
    }

    [Test]
    public void Validate_RejectsProgrammaticConfigsWithArgumentException()
    {
        var e = Assert.Throws<ArgumentException>(() => new UNet2DConfig { BlockOutChannels = [32, 64] }.Validate());
        Assert.That(e!.Message, Does.Contain("block_out_channels"));
        Assert.Throws<ArgumentException>(() => new UNet2DConfig { ActFn = "gelu" }.Validate());
        Assert.DoesNotThrow(() => new UNet2DConfig().Validate());
    }

    private static string Normalize(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Number => e.GetDouble().ToString("R", System.Globalization.CultureInfo.InvariantCulture),
        JsonValueKind.Array => "[" + string.Join(",", e.EnumerateArray().Select(Normalize)) + "]",
        _ => e.GetRawText(),
    };
}

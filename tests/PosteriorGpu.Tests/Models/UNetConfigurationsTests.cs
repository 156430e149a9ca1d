using NUnit.Framework;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.IO;
using PosteriorGpu.Models.UNet;

namespace PosteriorGpu.Tests.Models;

/// <summary>
/// UNet2DModel against the independent host reference (<see cref="ReferenceUNet"/>) for many
/// configurations, with random weights whose names the reference invents from diffusers' module
/// paths: a wrong wiring, a wrong name or a wrong shape each fail here.
/// </summary>
public class UNetConfigurationsTests
{
    private static readonly UNet2DConfig Small = new()
    {
        SampleSize = 8,
        InChannels = 1,
        OutChannels = 1,
        BlockOutChannels = [8, 16],
        LayersPerBlock = 1,
        NormNumGroups = 4,
        AttentionHeadDim = 4,
        DownBlockTypes = ["DownBlock2D", "AttnDownBlock2D"],
        UpBlockTypes = ["AttnUpBlock2D", "UpBlock2D"],
    };

    private static IEnumerable<TestCaseData> Configurations()
    {
        yield return new TestCaseData(Small).SetArgDisplayNames("fixture-like");
        yield return new TestCaseData(Small with { ResnetTimeScaleShift = "scale_shift" }).SetArgDisplayNames("scale_shift");
        yield return new TestCaseData(Small with { ResnetTimeScaleShift = "scale_shift", AttnNormNumGroups = 2 }).SetArgDisplayNames("scale_shift+attn_norm_num_groups");
        yield return new TestCaseData(Small with { AttentionHeadDim = null }).SetArgDisplayNames("one-head");
        yield return new TestCaseData(Small with { AttentionHeadDim = 2 }).SetArgDisplayNames("eight-heads");
        yield return new TestCaseData(Small with { MidBlockType = null }).SetArgDisplayNames("no-mid-block");
        yield return new TestCaseData(Small with { AddAttention = false }).SetArgDisplayNames("mid-without-attention");
        yield return new TestCaseData(Small with
        {
            DownsamplePadding = 0,
            BlockOutChannels = [8, 16, 16],
            LayersPerBlock = 2,
            DownBlockTypes = ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D"],
            UpBlockTypes = ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
        }).SetArgDisplayNames("3-blocks-downsample_padding-0");
        yield return new TestCaseData(Small with { FlipSinToCos = false, FreqShift = 1, CenterInputSample = true, MidBlockScaleFactor = 1.414 })
            .SetArgDisplayNames("cifar10-style-embedding+center+mid-scale");
        yield return new TestCaseData(Small with { NumClassEmbeds = 3, TimeEmbeddingDim = 24 }).SetArgDisplayNames("class-conditional");
        yield return new TestCaseData(Small with { InChannels = 3, OutChannels = 2, NormNumGroups = 2 }).SetArgDisplayNames("3-in-2-out-2-groups");
    }

    /// <summary>Writes config.json and random weights named by the reference; returns the folder.</summary>
    private static string WriteCheckpoint(UNet2DConfig config, ReferenceUNet.WeightSource weights)
    {
        string folder = Path.Combine(Path.GetTempPath(), "posteriorgpu-unet-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        config.Save(Path.Combine(folder, "config.json"));
        SafeTensorsWriter.Write(Path.Combine(folder, UNet2DModel.WeightsFileName),
            weights.Tensors.Select(kv => (kv.Key, kv.Value.Shape, kv.Value.Data)));
        return folder;
    }

    private static (float[] X, float[] T, int[]? Labels) Inputs(UNet2DConfig config, int n)
    {
        int s = config.SampleSize!.Value;
        var x = TestData.Random(n * config.InChannels * s * s, 42);
        float[] t = n == 1 ? [250f] : Enumerable.Range(0, n).Select(i => (float)(i * 613 % 1000)).ToArray();
        int[]? labels = config.NumClassEmbeds is int k ? Enumerable.Range(0, n).Select(i => (i + 1) % k).ToArray() : null;
        return (x, t, labels);
    }

    [TestCaseSource(nameof(Configurations))]
    public void MatchesReferencePath(UNet2DConfig config)
    {
        const int n = 2;
        int s = config.SampleSize!.Value;
        var weights = new ReferenceUNet.WeightSource(7);
        var (x, t, labels) = Inputs(config, n);
        var expected = new ReferenceUNet(config, weights).Forward(x, n, s, s, t, labels);
        string folder = WriteCheckpoint(config, weights);
        try
        {
            var dev = TestDevices.Cpu;
            using var model = UNet2DModel.Load(dev, folder);
            using var tx = Tensor.FromHost(dev, x, n, config.InChannels, s, s);
            using var eps = Tensor.Empty(dev, n, config.OutChannels, s, s);
            model.Forward(tx, t, labels, eps);
            TestData.AssertClose(eps.ToHost(), expected, 1e-4, "unet vs reference path");
        }
        finally
        {
            Directory.Delete(folder, true);
        }
    }

    [Test]
    public void ReferencePath_ItselfReproducesDiffusersOnTheFixture()
    {
        // Anchors the reference to diffusers: with the fixture's weights it must give eps.npy.
        string folder = Fixtures.Path("diffusers-unet-tiny");
        var config = UNet2DConfig.Load(Path.Combine(folder, "config.json"));
        var file = SafeTensorsFile.Read(Path.Combine(folder, UNet2DModel.WeightsFileName));
        var weights = new ReferenceUNet.WeightSource(0);
        foreach (var name in file.Names) weights.Tensors[name] = (file.ShapeOf(name), file.GetFloat32(name));
        var x = Npy.Read(Path.Combine(folder, "x.npy"));
        var t = Npy.Read(Path.Combine(folder, "t.npy")).ToInt64().Select(v => (float)v).ToArray();
        var expected = Npy.Read(Path.Combine(folder, "eps.npy")).ToFloat32();
        int count = weights.Tensors.Count;
        var got = new ReferenceUNet(config, weights).Forward(x.ToFloat32(), x.Shape[0], x.Shape[2], x.Shape[3], t, null);
        Assert.That(weights.Tensors.Count, Is.EqualTo(count), "the reference asked for a tensor the checkpoint lacks");
        TestData.AssertClose(got, expected, 1e-4, "reference path vs diffusers' eps.npy");
    }

    [Test]
    public void CheckpointProblems_AreClearErrors()
    {
        var config = Small;
        var weights = new ReferenceUNet.WeightSource(3);
        var (x, t, _) = Inputs(config, 1);
        new ReferenceUNet(config, weights).Forward(x, 1, 8, 8, t, null);
        var dev = TestDevices.Cpu;

        void Expect(Action<Dictionary<string, (int[] Shape, float[] Data)>> corrupt, params string[] fragments)
        {
            var copy = weights.Tensors.ToDictionary(kv => kv.Key, kv => kv.Value);
            corrupt(copy);
            var source = new ReferenceUNet.WeightSource(0);
            foreach (var kv in copy) source.Tensors[kv.Key] = kv.Value;
            string folder = WriteCheckpoint(config, source);
            try
            {
                var ex = Assert.Throws<CheckpointFormatException>(() => UNet2DModel.Load(dev, folder).Dispose());
                foreach (var f in fragments) Assert.That(ex!.Message, Does.Contain(f));
                Assert.That(ex!.Message, Does.Contain(UNet2DModel.WeightsFileName));
            }
            finally
            {
                Directory.Delete(folder, true);
            }
        }

        Expect(d => d.Remove("mid_block.resnets.1.conv2.weight"), "missing tensor", "mid_block.resnets.1.conv2.weight");
        Expect(d => d["conv_in.weight"] = ([8, 1, 1, 1], new float[8]), "conv_in.weight", "expected shape [8, 1, 3, 3]", "[8, 1, 1, 1]");
        Expect(d => d["down_blocks.0.resnets.0.conv_shortcut.weight"] = ([8, 8, 1, 1], new float[64]), "not used", "conv_shortcut");
    }

    [Test]
    public void FailedLoad_FreesTheWeightsAlreadyOnTheDevice()
    {
        var weights = new ReferenceUNet.WeightSource(11);
        var (x, t, _) = Inputs(Small, 1);
        new ReferenceUNet(Small, weights).Forward(x, 1, 8, 8, t, null);
        weights.Tensors.Remove("conv_out.bias");   // the last tensor the model loads
        string folder = WriteCheckpoint(Small, weights);
        try
        {
            var dev = TestDevices.Cpu;
            long live = dev.LiveBuffers;
            Assert.Throws<CheckpointFormatException>(() => UNet2DModel.Load(dev, folder).Dispose());
            Assert.That(dev.LiveBuffers, Is.EqualTo(live));
        }
        finally
        {
            Directory.Delete(folder, true);
        }
    }

    [Test]
    public void LegacyAttentionNames_LoadLikeDiffusers()
    {
        // Checkpoints from before diffusers 0.14 call the attention weights query/key/value/proj_attn.
        var weights = new ReferenceUNet.WeightSource(12);
        var (x, t, _) = Inputs(Small, 1);
        var expected = new ReferenceUNet(Small, weights).Forward(x, 1, 8, 8, t, null);
        var renamed = new ReferenceUNet.WeightSource(0);
        foreach (var (name, value) in weights.Tensors)
            renamed.Tensors[name.Replace(".to_q.", ".query.").Replace(".to_k.", ".key.").Replace(".to_v.", ".value.").Replace(".to_out.0.", ".proj_attn.")] = value;
        Assert.That(renamed.Tensors.Keys, Has.Some.Contains(".proj_attn."));
        string folder = WriteCheckpoint(Small, renamed);
        try
        {
            var dev = TestDevices.Cpu;
            using var model = UNet2DModel.Load(dev, folder);
            using var tx = Tensor.FromHost(dev, x, 1, 1, 8, 8);
            using var eps = Tensor.Empty(dev, 1, 1, 8, 8);
            model.Forward(tx, t, null, eps);
            TestData.AssertClose(eps.ToHost(), expected, 1e-4, "legacy-named checkpoint vs reference");
        }
        finally
        {
            Directory.Delete(folder, true);
        }
    }

    [Test]
    public void ClassLabels_RequiredExactlyForClassConditionalModels()
    {
        var conditional = Small with { NumClassEmbeds = 3 };
        foreach (var (config, labels, fragment) in new[]
                 {
                     (conditional, (int[]?)null, "class-conditional"),
                     (conditional, new[] { 3 }, "class label"),
                     (Small, new[] { 1 }, "no class embedding"),
                 })
        {
            var weights = new ReferenceUNet.WeightSource(5);
            var (x, t, ok) = Inputs(config, 1);
            new ReferenceUNet(config, weights).Forward(x, 1, 8, 8, t, ok);
            string folder = WriteCheckpoint(config, weights);
            try
            {
                var dev = TestDevices.Cpu;
                using var model = UNet2DModel.Load(dev, folder);
                using var tx = Tensor.FromHost(dev, x, 1, 1, 8, 8);
                using var eps = Tensor.Empty(dev, 1, 1, 8, 8);
                var ex = Assert.Catch<ArgumentException>(() => model.Forward(tx, t, labels, eps));
                Assert.That(ex!.Message, Does.Contain(fragment));
            }
            finally
            {
                Directory.Delete(folder, true);
            }
        }
    }
}

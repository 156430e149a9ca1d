using NUnit.Framework;
using PosteriorGpu.Models.IO;
using PosteriorGpu.Models.UNet;
using PosteriorGpu.Tests.Models;

namespace PosteriorGpu.Tests.Cli;

/// <summary>Diffusers-format checkpoints with random weights (names from <see cref="ReferenceUNet"/>'s
/// recording pass), for tests and timings of commands that need a model of a given size.</summary>
public sealed class RandomUNet
{
    /// <summary>A 1-channel 32 x 32 U-Net of about 1.6 M parameters (the size of a small MNIST model).</summary>
    public static readonly UNet2DConfig Mnist32 = new()
    {
        SampleSize = 32,
        InChannels = 1,
        OutChannels = 1,
        BlockOutChannels = [32, 64, 64],
        LayersPerBlock = 2,
        NormNumGroups = 8,
        AttentionHeadDim = 8,
        DownBlockTypes = ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D"],
        UpBlockTypes = ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
    };

    /// <summary>A tiny 1-channel 32 x 32 U-Net for fast end-to-end tests.</summary>
    public static readonly UNet2DConfig Tiny32 = new()
    {
        SampleSize = 32,
        InChannels = 1,
        OutChannels = 1,
        BlockOutChannels = [8, 16],
        LayersPerBlock = 1,
        NormNumGroups = 4,
        AttentionHeadDim = 4,
        DownBlockTypes = ["DownBlock2D", "DownBlock2D"],
        UpBlockTypes = ["UpBlock2D", "UpBlock2D"],
    };

    /// <summary>Writes config.json and random weights into <paramref name="folder"/>; returns the parameter count.
    /// <paramref name="edit"/>, when given, may change each named tensor's values before they are written (a broken model).</summary>
    public static long Write(UNet2DConfig config, string folder, int seed = 7, Action<string, float[]>? edit = null)
    {
        Directory.CreateDirectory(folder);
        var weights = new ReferenceUNet.WeightSource(seed);
        // One host forward pass on a tiny batch makes the recording source invent every named tensor.
        int s = config.SampleSize!.Value;
        new ReferenceUNet(config, weights).Forward(new float[config.InChannels * s * s], 1, s, s, [500f], null);
        if (edit is not null)
            foreach (var (name, tensor) in weights.Tensors) edit(name, tensor.Data);
        config.Save(Path.Combine(folder, "config.json"));
        SafeTensorsWriter.Write(Path.Combine(folder, UNet2DModel.WeightsFileName),
            weights.Tensors.Select(kv => (kv.Key, kv.Value.Shape, kv.Value.Data)));
        return weights.Tensors.Values.Sum(t => (long)t.Data.Length);
    }

    /// <summary>Writes the timing model to $POSTERIORGPU_RANDOM_MODEL (run by hand with --filter).</summary>
    [Test, Explicit("writes a model for timings")]
    public void WriteTimingModel()
    {
        string folder = Environment.GetEnvironmentVariable("POSTERIORGPU_RANDOM_MODEL") ?? Path.Combine(Path.GetTempPath(), "posteriorgpu-random-mnist32");
        long n = Write(Mnist32, folder);
        TestContext.Out.WriteLine($"wrote {folder}: {n} parameters");
    }
}

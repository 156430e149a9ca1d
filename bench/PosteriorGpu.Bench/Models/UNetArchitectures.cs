using PosteriorGpu.Models.IO;
using PosteriorGpu.Models.UNet;

namespace PosteriorGpu.Bench.Models;

/// <summary>
/// The U-Net configurations the benchmarks run, built in code, with a writer for random-weight
/// checkpoints (config.json + safetensors, diffusers' parameter names) and an analytic count of
/// parameters and forward FLOPs.
/// </summary>
public static class UNetArchitectures
{
    /// <summary>"S32": 32x32x3, block_out_channels 64/128/128, attention at 16x16 (about 6.5 M parameters).</summary>
    public static readonly UNet2DConfig S32 = new()
    {
        SampleSize = 32,
        InChannels = 3,
        OutChannels = 3,
        BlockOutChannels = [64, 128, 128],
        LayersPerBlock = 2,
        NormNumGroups = 32,
        DownBlockTypes = ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D"],
        UpBlockTypes = ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
    };

    /// <summary>The architecture of google/ddpm-cifar10-32 (Ho et al.'s CIFAR-10 model as diffusers
    /// ships it): block_out_channels 128/256/256/256, one-head attention at 16x16, downsample_padding
    /// 0, [sin, cos] embedding with freq_shift 1 (about 35.7 M parameters).</summary>
    public static readonly UNet2DConfig Cifar10 = new()
    {
        SampleSize = 32,
        InChannels = 3,
        OutChannels = 3,
        BlockOutChannels = [128, 256, 256, 256],
        LayersPerBlock = 2,
        NormNumGroups = 32,
        NormEps = 1e-6,
        AttentionHeadDim = null,
        DownsamplePadding = 0,
        FlipSinToCos = false,
        FreqShift = 1,
        DownBlockTypes = ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
        UpBlockTypes = ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D"],
    };

    /// <summary>The names the benchmarks and the PyTorch peer use.</summary>
    public static readonly IReadOnlyList<string> Names = ["S32", "cifar10"];

    /// <summary>A configuration by name.</summary>
    public static UNet2DConfig ByName(string name) => name switch
    {
        "S32" => S32,
        "cifar10" => Cifar10,
        _ => throw new ArgumentException($"unknown U-Net '{name}'; expected one of {string.Join(", ", Names)}"),
    };

    /// <summary>One parameter tensor of the architecture: diffusers' name and shape.</summary>
    public readonly record struct Parameter(string Name, int[] Shape)
    {
        /// <summary>Number of values.</summary>
        public long Count => Shape.Aggregate(1L, (a, b) => a * b);
    }

    /// <summary>Every parameter of UNet2DModel for <paramref name="c"/>, named as diffusers names them (the
    /// model's own layout, so the benchmarks never wire the architecture a second time).</summary>
    public static IEnumerable<Parameter> Parameters(UNet2DConfig c) =>
        UNet2DModel.ParameterLayout(c).Select(p => new Parameter(p.Name, p.Shape));

    /// <summary>Total parameter count.</summary>
    public static long ParameterCount(UNet2DConfig c) => Parameters(c).Sum(p => p.Count);

    /// <summary>
    /// Floating-point operations of one forward pass per image at the config's sample size: every
    /// convolution, linear layer and attention product (2 per multiply-add); normalisations,
    /// activations and copies, a few per element, are left out.
    /// </summary>
    public static double ForwardFlops(UNet2DConfig c)
    {
        int size = c.SampleSize ?? throw new ArgumentException("the config has no sample_size");
        double flops = 0;
        // Convolutions: the output resolution of each, from the name (which block, up or down).
        int levels = c.BlockOutChannels.Length;
        foreach (var p in Parameters(c).Where(p => p.Shape.Length == 4))
        {
            int side = size >> Level(p.Name, levels);
            int cout = p.Shape[0], cin = p.Shape[1], k = p.Shape[2];
            flops += 2.0 * cout * cin * k * k * side * side;
        }
        foreach (var p in Parameters(c).Where(p => p.Shape.Length == 2 && p.Name.EndsWith(".weight") && p.Name != "class_embedding.weight"))
        {
            // Attention projections act on every position; the embedding MLP and time projections once.
            int rows = p.Name.Contains(".attentions.") ? (size >> Level(p.Name, levels)) * (size >> Level(p.Name, levels)) : 1;
            flops += 2.0 * rows * p.Shape[0] * p.Shape[1];
            if (p.Name.EndsWith(".to_q.weight"))
            {
                double positions = rows;
                flops += 2 * 2.0 * positions * positions * p.Shape[0];   // q k^T and the weighted sum of v
            }
        }
        return flops;
    }

    /// <summary>How many times the input is halved where the named parameter acts.</summary>
    private static int Level(string name, int levels)
    {
        string[] parts = name.Split('.');
        if (parts[0] == "down_blocks")
            return int.Parse(parts[1]) + (parts[2] == "downsamplers" ? 1 : 0);
        if (parts[0] == "up_blocks")
            return levels - 1 - int.Parse(parts[1]) - (parts[2] == "upsamplers" ? 1 : 0);
        if (parts[0] == "mid_block") return levels - 1;
        return 0;   // conv_in, conv_out, conv_norm_out
    }

    /// <summary>
    /// Writes config.json and random weights (seeded) for <paramref name="c"/> into <paramref name="folder"/>:
    /// uniform weights scaled by 1/sqrt(fan-in) so activations stay O(1) through the depth, small
    /// biases, GroupNorm scales near 1.
    /// </summary>
    public static void WriteRandomCheckpoint(UNet2DConfig c, string folder, int seed)
    {
        Directory.CreateDirectory(folder);
        var rng = new Random(seed);
        var tensors = new List<(string, int[], float[])>();
        foreach (var p in Parameters(c))
        {
            var data = new float[p.Count];
            bool norm = p.Name.Contains("norm") && p.Shape.Length == 1;
            bool scale = norm && p.Name.EndsWith(".weight");
            double fanIn = p.Shape.Skip(1).Aggregate(1.0, (a, b) => a * b);
            double bound = p.Shape.Length > 1 ? Math.Sqrt(3.0 / fanIn) : 0.05;
            for (int i = 0; i < data.Length; i++)
            {
                double u = 2 * rng.NextDouble() - 1;
                data[i] = (float)(scale ? 1 + 0.1 * u : bound * u);
            }
            tensors.Add((p.Name, p.Shape, data));
        }
        c.Save(Path.Combine(folder, "config.json"));
        SafeTensorsWriter.Write(Path.Combine(folder, UNet2DModel.WeightsFileName), tensors);
    }

    /// <summary>A fresh temporary folder holding a random checkpoint of <paramref name="c"/>; delete it when done.</summary>
    public static string TemporaryCheckpoint(UNet2DConfig c, int seed = 1)
    {
        string folder = Path.Combine(Path.GetTempPath(), "posteriorgpu-bench-" + Guid.NewGuid().ToString("N"));
        WriteRandomCheckpoint(c, folder, seed);
        return folder;
    }
}

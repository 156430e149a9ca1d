using PosteriorGpu.Kernels.Activations;
using PosteriorGpu.Kernels.Conv;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Embedding;
using PosteriorGpu.Kernels.Norm;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.IO;

namespace PosteriorGpu.Models.UNet;

/// <summary>
/// diffusers' UNet2DModel (Ho et al. 2020's DDPM U-Net as diffusers configures it), every layer one
/// of our kernels. Loads a diffusers checkpoint folder (config.json +
/// diffusion_pytorch_model.safetensors) and predicts epsilon. Activations come from a pool owned by
/// the model, so repeated calls with one batch size allocate no device memory after the first.
/// Holds device memory: dispose it. Not thread-safe.
/// </summary>
public sealed class UNet2DModel : IScoreModel, IDisposable
{
    /// <summary>The weights file diffusers writes in a model folder.</summary>
    public const string WeightsFileName = "diffusion_pytorch_model.safetensors";

    private readonly TensorPool pool;
    private readonly Conv2dLayer convIn;
    private readonly LinearLayer timeLinear1, timeLinear2;
    private readonly Tensor? classEmbedding;
    private readonly DownBlock[] downBlocks;
    private readonly MidBlock? midBlock;
    private readonly UpBlock[] upBlocks;
    private readonly GroupNormLayer normOut;
    private readonly Conv2dLayer convOut;
    private readonly List<Tensor> skips = new();
    private readonly int timeEmbedDim;

    private UNet2DModel(GpuDevice device, UNet2DConfig config, WeightLoader w)
    {
        Device = device;
        Config = config;
        pool = new TensorPool(device);
        var c = config;
        int ch0 = c.BlockOutChannels[0];
        timeEmbedDim = c.TimeEmbedDim;
        convIn = new Conv2dLayer(w, "conv_in", c.InChannels, ch0, 3, Conv2dParams.Same(1, 1));
        timeLinear1 = new LinearLayer(w, "time_embedding.linear_1", ch0, timeEmbedDim);
        timeLinear2 = new LinearLayer(w, "time_embedding.linear_2", timeEmbedDim, timeEmbedDim);
        if (c.NumClassEmbeds is { } classes) classEmbedding = w.Load("class_embedding.weight", classes, timeEmbedDim);

        int blocks = c.BlockOutChannels.Length;
        downBlocks = new DownBlock[blocks];
        int output = ch0;
        for (int i = 0; i < blocks; i++)
        {
            int input = output;
            output = c.BlockOutChannels[i];
            downBlocks[i] = new DownBlock(w, $"down_blocks.{i}", c, i, input, output, timeEmbedDim,
                c.DownBlockTypes[i] == "AttnDownBlock2D", addDownsample: i < blocks - 1);
        }
        if (c.MidBlockType is not null) midBlock = new MidBlock(w, c, c.BlockOutChannels[^1], timeEmbedDim);
        upBlocks = new UpBlock[blocks];
        var reversed = c.BlockOutChannels.Reverse().ToArray();
        output = reversed[0];
        for (int i = 0; i < blocks; i++)
        {
            int prev = output;
            output = reversed[i];
            int input = reversed[Math.Min(i + 1, blocks - 1)];
            upBlocks[i] = new UpBlock(w, $"up_blocks.{i}", c, input, prev, output, timeEmbedDim,
                c.UpBlockTypes[i] == "AttnUpBlock2D", addUpsample: i < blocks - 1);
        }
        normOut = new GroupNormLayer(w, "conv_norm_out", ch0, c.NormNumGroups, (float)c.NormEps);
        convOut = new Conv2dLayer(w, "conv_out", ch0, c.OutChannels, 3, Conv2dParams.Same(1, 1));
        w.ThrowIfUnused();
    }

    /// <summary>The architecture, as read from config.json.</summary>
    public UNet2DConfig Config { get; }

    /// <inheritdoc/>
    public GpuDevice Device { get; }

    /// <inheritdoc/>
    public int Channels => Config.InChannels;

    /// <summary>Image height from config.json's sample_size (0 when the config leaves it open).</summary>
    public int Height => Config.SampleSize ?? 0;

    /// <summary>Image width from config.json's sample_size (0 when the config leaves it open).</summary>
    public int Width => Config.SampleWidth ?? Config.SampleSize ?? 0;

    /// <summary>Class labels used by <see cref="PredictEpsilon"/> for class-conditional models (one per
    /// batch item, or one for all); ignored when the model has no class embedding.</summary>
    public int[]? ClassLabels { get; set; }

    /// <summary>Device buffers the activation pool holds (constant after the first call per batch size).</summary>
    public int PoolAllocations => pool.Allocations;

    /// <summary>Loads config.json and diffusion_pytorch_model.safetensors from a diffusers model folder.</summary>
    /// <exception cref="FileNotFoundException">A file is missing.</exception>
    /// <exception cref="CheckpointFormatException">The config or weights are malformed or do not match.</exception>
    public static UNet2DModel Load(GpuDevice device, string folder)
    {
        string configPath = Path.Combine(folder, "config.json");
        string weightsPath = Path.Combine(folder, WeightsFileName);
        if (!File.Exists(configPath)) throw new FileNotFoundException($"{folder}: no config.json in the model folder", configPath);
        if (!File.Exists(weightsPath)) throw new FileNotFoundException($"{folder}: no {WeightsFileName} in the model folder", weightsPath);
        var config = UNet2DConfig.Load(configPath);
        var weights = SafeTensorsFile.Read(weightsPath);
        var loader = new WeightLoader(weights, device, weightsPath);
        try
        {
            return new UNet2DModel(device, config, loader);
        }
        catch
        {
            // A missing, misshapen or unused tensor found halfway must not leak what was already on the device.
            loader.DisposeLoaded();
            throw;
        }
    }

    /// <inheritdoc/>
    public void PredictEpsilon(Tensor x, ReadOnlySpan<float> timesteps, Tensor epsilon) =>
        Forward(x, timesteps, ClassLabels, epsilon);

    /// <summary>Runs the network: x [N, in_channels, H, W], one timestep per item (or one for all),
    /// optional class labels, output [N, out_channels, H, W].</summary>
    public void Forward(Tensor x, ReadOnlySpan<float> timesteps, ReadOnlySpan<int> classLabels, Tensor output)
    {
        var c = Config;
        Shape.RequireRank("unet", x, "x", 4);
        if (x.C != c.InChannels)
            throw new ArgumentException($"unet: the model takes {c.InChannels} channel(s) but x has shape {Shape.Format(x.Shape)}");
        int down = 1 << (c.BlockOutChannels.Length - 1);
        if (x.H % down != 0 || x.W % down != 0)
            throw new ArgumentException($"unet: height and width must be multiples of {down} for {c.BlockOutChannels.Length} blocks but x has shape {Shape.Format(x.Shape)}");
        Shape.Require("unet", output, "output", x.N, c.OutChannels, x.H, x.W);
        int n = x.N;
        if (timesteps.Length != n && timesteps.Length != 1)
            throw new ArgumentException($"unet: {timesteps.Length} timesteps for a batch of {n}; give one per item or one for all");

        using var tEmb = TimeEmbedding(timesteps, classLabels, n);
        // Every resnet applies SiLU to the embedding before its projection: do it once here.
        Silu.Run(tEmb, tEmb);

        Tensor h;
        if (c.CenterInputSample)
        {
            using var centred = pool.Rent(x.Shape);
            Affine.Run(x, 2f, -1f, centred);
            h = convIn.Forward(centred, pool);
        }
        else
        {
            h = convIn.Forward(x, pool);
        }
        skips.Clear();
        skips.Add(h);
        foreach (var block in downBlocks) h = block.Forward(h, tEmb, pool, skips);
        if (midBlock is not null)
        {
            var m = midBlock.Forward(h, tEmb, pool);
            // h is also the newest skip unless the mid block exists; it stays alive for the up path.
            h = m;
        }
        foreach (var block in upBlocks) h = block.Forward(h, tEmb, pool, skips);
        using (h)
        {
            using var normed = normOut.Forward(h, pool, silu: true);
            convOut.ForwardInto(normed, output);
        }
    }

    private float[] hostTimesteps = [];
    private float[] hostLabels = [];

    /// <summary>silu-free time embedding: linear_2(silu(linear_1(sinusoidal(t)))) (+ class embedding).</summary>
    private Tensor TimeEmbedding(ReadOnlySpan<float> timesteps, ReadOnlySpan<int> classLabels, int n)
    {
        var c = Config;
        if (hostTimesteps.Length != n) hostTimesteps = new float[n];
        for (int i = 0; i < n; i++) hostTimesteps[i] = timesteps[timesteps.Length == 1 ? 0 : i];
        using var t = pool.Rent(n);
        t.CopyFrom(hostTimesteps);
        using var sinusoid = pool.Rent(n, c.BlockOutChannels[0]);
        TimestepEmbedding.Run(t, c.BlockOutChannels[0], c.FlipSinToCos, (float)c.FreqShift, sinusoid);
        using var hidden = timeLinear1.Forward(sinusoid, pool);
        Silu.Run(hidden, hidden);
        var emb = timeLinear2.Forward(hidden, pool);
        if (classEmbedding is not null)
        {
            if (classLabels.IsEmpty)
            {
                emb.Dispose();
                throw new ArgumentException("unet: this model is class-conditional (num_class_embeds is set); give class labels");
            }
            if (classLabels.Length != n && classLabels.Length != 1)
            {
                emb.Dispose();
                throw new ArgumentException($"unet: {classLabels.Length} class labels for a batch of {n}; give one per item or one for all");
            }
            int classes = classEmbedding.Shape[0];
            if (hostLabels.Length != n) hostLabels = new float[n];
            for (int i = 0; i < n; i++)
            {
                int label = classLabels[classLabels.Length == 1 ? 0 : i];
                if (label < 0 || label >= classes)
                {
                    emb.Dispose();
                    throw new ArgumentOutOfRangeException(nameof(classLabels), label, $"unet: class label must be in [0, {classes})");
                }
                hostLabels[i] = label;
            }
            using var labels = pool.Rent(n);
            labels.CopyFrom(hostLabels);
            EmbeddingAdd.Run(classEmbedding, labels, emb);
        }
        else if (!classLabels.IsEmpty)
        {
            emb.Dispose();
            throw new ArgumentException("unet: class labels were given but the model has no class embedding (num_class_embeds is null)");
        }
        return emb;
    }

    /// <summary>Frees the weights and the activation pool.</summary>
    public void Dispose()
    {
        foreach (var s in skips) s.Dispose();
        skips.Clear();
        convIn.Dispose();
        timeLinear1.Dispose();
        timeLinear2.Dispose();
        classEmbedding?.Dispose();
        foreach (var b in downBlocks) b.Dispose();
        midBlock?.Dispose();
        foreach (var b in upBlocks) b.Dispose();
        normOut.Dispose();
        convOut.Dispose();
        pool.Dispose();
    }
}

using PosteriorGpu.Kernels.Activations;
using PosteriorGpu.Kernels.Conv;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Embedding;
using PosteriorGpu.Kernels.Layout;
using PosteriorGpu.Kernels.Resample;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.IO;
using PosteriorGpu.Models.UNet;

namespace PosteriorGpu.Models.Training;

/// <summary>
/// diffusers' UNet2DModel with a backward pass: the network to train, and a score model whose
/// epsilon can be differentiated with respect to its input (DPS). Same architecture, parameter
/// names and forward kernels as <see cref="UNet2DModel"/>, so a checkpoint saved from here loads
/// there (and in diffusers) and gives the same output.
/// </summary>
/// <remarks>
/// Supports the configurations of the DDPM U-Net family: positional time embedding, resnet
/// time_scale_shift "default", DownBlock2D / AttnDownBlock2D, UpBlock2D / AttnUpBlock2D, an optional
/// UNetMidBlock2D; no class conditioning and no input centring (a clear NotSupportedException
/// otherwise). A forward pass keeps every activation its backward pass needs until the next forward
/// pass. Holds device memory: dispose it. Not thread-safe.
/// </remarks>
public sealed class DifferentiableUNet : IDifferentiableScoreModel, IDisposable
{
    private readonly TensorPool pool;
    private readonly Tape tape = new();
    private readonly TrainConv convIn, convOut;
    private readonly TrainLinear timeLinear1, timeLinear2;
    private readonly TrainGroupNorm normOut;
    private readonly List<Step> down = new(), mid = new(), up = new();
    private readonly int skipCount;

    /// <summary>One stage of the network: a convolution (conv_in, a downsampler, an upsampler's conv
    /// after nearest 2x upsampling) or a resnet optionally followed by attention; up-path resnets first
    /// concatenate a skip.</summary>
    private sealed class Step
    {
        public TrainConv? Conv;
        public bool Upsample;
        public TrainResnet? Resnet;
        public TrainAttention? Attention;
        public int Skip = -1;
        // Activations of the last forward pass.
        public Tensor Input = null!, ConvInput = null!, ResnetOutput = null!, Output = null!;
    }

    // Activations and the time embedding of the last forward pass.
    private Tensor sinusoid = null!, hidden = null!, temb = null!, tembSilu = null!, lastHidden = null!, normed = null!;
    private readonly Tensor[] skips;

    private DifferentiableUNet(GpuDevice device, UNet2DConfig config, int seed)
    {
        Check(config);
        Device = device;
        Config = config;
        pool = new TensorPool(device);
        Parameters = new ParameterStore();
        var s = Parameters;
        var rng = new Random(seed);
        var c = config;
        int ch0 = c.BlockOutChannels[0], temb = c.TimeEmbedDim, groups = c.NormNumGroups;
        float eps = (float)c.NormEps;
        convIn = new TrainConv(s, rng, "conv_in", c.InChannels, ch0, 3, Conv2dParams.Same(1, 1));
        timeLinear1 = new TrainLinear(s, rng, "time_embedding.linear_1", ch0, temb);
        timeLinear2 = new TrainLinear(s, rng, "time_embedding.linear_2", temb, temb);

        int blocks = c.BlockOutChannels.Length;
        down.Add(new Step { Conv = convIn });
        int output = ch0;
        for (int i = 0; i < blocks; i++)
        {
            int input = output;
            output = c.BlockOutChannels[i];
            bool attention = c.DownBlockTypes[i] == "AttnDownBlock2D";
            for (int j = 0; j < c.LayersPerBlock; j++)
            {
                string prefix = $"down_blocks.{i}";
                down.Add(new Step
                {
                    Resnet = new TrainResnet(s, rng, $"{prefix}.resnets.{j}", j == 0 ? input : output, output, temb, groups, eps, 1.0),
                    Attention = attention
                        ? new TrainAttention(s, rng, $"{prefix}.attentions.{j}", output, c.AttentionHeadSize(output), groups, eps, 1.0)
                        : null,
                });
            }
            if (i < blocks - 1)
            {
                var p = c.DownsamplePadding == 0 ? new Conv2dParams(2, 0, 0, 1, 1) : Conv2dParams.Same(2, c.DownsamplePadding);
                down.Add(new Step { Conv = new TrainConv(s, rng, $"down_blocks.{i}.downsamplers.0.conv", output, output, 3, p) });
            }
        }
        skipCount = down.Count;
        skips = new Tensor[skipCount];

        if (c.MidBlockType is not null)
        {
            int ch = c.BlockOutChannels[^1];
            mid.Add(new Step
            {
                Resnet = new TrainResnet(s, rng, "mid_block.resnets.0", ch, ch, temb, groups, eps, c.MidBlockScaleFactor),
                Attention = c.AddAttention
                    ? new TrainAttention(s, rng, "mid_block.attentions.0", ch, c.AttentionHeadSize(ch), c.MidAttentionNormGroups, eps, c.MidBlockScaleFactor)
                    : null,
            });
            mid.Add(new Step { Resnet = new TrainResnet(s, rng, "mid_block.resnets.1", ch, ch, temb, groups, eps, c.MidBlockScaleFactor) });
        }

        var reversed = c.BlockOutChannels.Reverse().ToArray();
        output = reversed[0];
        int skip = skipCount;
        for (int i = 0; i < blocks; i++)
        {
            int prev = output;
            output = reversed[i];
            int input = reversed[Math.Min(i + 1, blocks - 1)];
            bool attention = c.UpBlockTypes[i] == "AttnUpBlock2D";
            int layers = c.LayersPerBlock + 1;
            for (int j = 0; j < layers; j++)
            {
                int skipChannels = j == layers - 1 ? input : output;
                int inChannels = j == 0 ? prev : output;
                string prefix = $"up_blocks.{i}";
                up.Add(new Step
                {
                    Skip = --skip,
                    Resnet = new TrainResnet(s, rng, $"{prefix}.resnets.{j}", inChannels + skipChannels, output, temb, groups, eps, 1.0),
                    Attention = attention
                        ? new TrainAttention(s, rng, $"{prefix}.attentions.{j}", output, c.AttentionHeadSize(output), groups, eps, 1.0)
                        : null,
                });
            }
            if (i < blocks - 1)
                up.Add(new Step { Upsample = true, Conv = new TrainConv(s, rng, $"up_blocks.{i}.upsamplers.0.conv", output, output, 3, Conv2dParams.Same(1, 1)) });
        }
        normOut = new TrainGroupNorm(s, "conv_norm_out", ch0, groups, eps);
        convOut = new TrainConv(s, rng, "conv_out", ch0, c.OutChannels, 3, Conv2dParams.Same(1, 1));
        Parameters.Materialize(device);
    }

    /// <summary>The architecture.</summary>
    public UNet2DConfig Config { get; }

    /// <summary>Every weight (flat, with diffusers names) and its gradient.</summary>
    public ParameterStore Parameters { get; }

    /// <inheritdoc/>
    public GpuDevice Device { get; }

    /// <inheritdoc/>
    public int Channels => Config.InChannels;

    /// <inheritdoc/>
    public int Height => Config.SampleSize ?? 0;

    /// <inheritdoc/>
    public int Width => Config.SampleWidth ?? Config.SampleSize ?? 0;

    /// <summary>A network with PyTorch's default initialisation drawn from <paramref name="seed"/>.</summary>
    /// <exception cref="NotSupportedException">The configuration uses a feature this class does not train.</exception>
    public static DifferentiableUNet Create(GpuDevice device, UNet2DConfig config, int seed = 0) => new(device, config, seed);

    /// <summary>Loads a diffusers model folder (config.json + diffusion_pytorch_model.safetensors).</summary>
    /// <exception cref="FileNotFoundException">A file is missing.</exception>
    /// <exception cref="CheckpointFormatException">The weights do not match the configuration.</exception>
    public static DifferentiableUNet Load(GpuDevice device, string folder)
    {
        string configPath = Path.Combine(folder, "config.json");
        string weightsPath = Path.Combine(folder, UNet2DModel.WeightsFileName);
        if (!File.Exists(configPath)) throw new FileNotFoundException($"{folder}: no config.json in the model folder", configPath);
        if (!File.Exists(weightsPath)) throw new FileNotFoundException($"{folder}: no {UNet2DModel.WeightsFileName} in the model folder", weightsPath);
        var net = new DifferentiableUNet(device, UNet2DConfig.Load(configPath), 0);
        try
        {
            var file = SafeTensorsFile.Read(weightsPath);
            var extra = file.Names.Where(n => !net.Parameters.Parameters.Any(p => p.Name == n)).ToList();
            if (extra.Count > 0)
                throw new CheckpointFormatException(weightsPath, $"{extra.Count} tensor(s) are not used by the architecture (first: {extra[0]})");
            net.Parameters.Values.CopyFrom(net.Parameters.Gather(file));
            return net;
        }
        catch
        {
            net.Dispose();
            throw;
        }
    }

    /// <summary>Writes config.json and the weights (the current ones, or <paramref name="flatWeights"/>,
    /// e.g. an EMA) as a diffusers model folder.</summary>
    public void Save(string folder, float[]? flatWeights = null, bool float16 = false)
    {
        Directory.CreateDirectory(folder);
        Config.Save(Path.Combine(folder, "config.json"));
        SafeTensorsWriter.Write(Path.Combine(folder, UNet2DModel.WeightsFileName),
            Parameters.Split(flatWeights ?? Parameters.Values.ToHost()), new Dictionary<string, string> { ["format"] = "pt" }, float16);
    }

    private static void Check(UNet2DConfig c)
    {
        string? why = c.TimeEmbeddingType != "positional" ? $"time_embedding_type {c.TimeEmbeddingType}"
            : c.ResnetTimeScaleShift != "default" ? $"resnet_time_scale_shift {c.ResnetTimeScaleShift}"
            : c.NumClassEmbeds is not null || c.ClassEmbedType is not null ? "class conditioning"
            : c.CenterInputSample ? "center_input_sample" : null;
        if (why is not null) throw new NotSupportedException($"DifferentiableUNet does not support {why}; use UNet2DModel for inference");
    }

    /// <inheritdoc/>
    public void PredictEpsilon(Tensor x, ReadOnlySpan<float> timesteps, Tensor epsilon) => Forward(x, timesteps, epsilon);

    /// <inheritdoc/>
    public void EpsilonVjp(Tensor x, ReadOnlySpan<float> timesteps, Tensor cotangent, Tensor epsilon, Tensor gradient)
    {
        Forward(x, timesteps, epsilon);
        Backward(cotangent, gradient);
    }

    /// <summary>Runs the network on x [N, in_channels, H, W] with one timestep per item (or one for all),
    /// keeping what <see cref="Backward"/> needs.</summary>
    public void Forward(Tensor x, ReadOnlySpan<float> timesteps, Tensor output)
    {
        var c = Config;
        Shape.RequireRank("unet", x, "x", 4);
        if (x.C != c.InChannels)
            throw new ArgumentException($"unet: the model takes {c.InChannels} channel(s) but x has shape {Shape.Format(x.Shape)}");
        int factor = 1 << (c.BlockOutChannels.Length - 1);
        if (x.H % factor != 0 || x.W % factor != 0)
            throw new ArgumentException($"unet: height and width must be multiples of {factor} but x has shape {Shape.Format(x.Shape)}");
        Shape.Require("unet", output, "output", x.N, c.OutChannels, x.H, x.W);
        int n = x.N;
        if (timesteps.Length != n && timesteps.Length != 1)
            throw new ArgumentException($"unet: {timesteps.Length} timesteps for a batch of {n}; give one per item or one for all");
        tape.Clear();

        var hostT = new float[n];
        for (int i = 0; i < n; i++) hostT[i] = timesteps[timesteps.Length == 1 ? 0 : i];
        using (var t = pool.Rent(n))
        {
            t.CopyFrom(hostT);
            sinusoid = tape.Keep(pool.Rent(n, c.BlockOutChannels[0]));
            TimestepEmbedding.Run(t, c.BlockOutChannels[0], c.FlipSinToCos, (float)c.FreqShift, sinusoid);
        }
        hidden = tape.Keep(timeLinear1.Forward(sinusoid, pool));
        var hiddenSilu = tape.Keep(pool.Rent(hidden.Shape));
        Silu.Run(hidden, hiddenSilu);
        temb = tape.Keep(timeLinear2.Forward(hiddenSilu, pool));
        tembSilu = tape.Keep(pool.Rent(temb.Shape));
        Silu.Run(temb, tembSilu);

        Tensor h = x;
        for (int i = 0; i < down.Count; i++) skips[i] = h = Run(down[i], h);
        foreach (var step in mid) h = Run(step, h);
        foreach (var step in up) h = Run(step, h);
        lastHidden = h;
        normed = tape.Keep(normOut.Forward(h, pool, silu: true));
        convOut.ForwardInto(normed, output);
    }

    private Tensor Run(Step s, Tensor h)
    {
        s.Input = h;
        if (s.Skip >= 0)
        {
            var skip = skips[s.Skip];
            h = tape.Keep(pool.Rent(h.N, h.C + skip.C, h.H, h.W));
            ConcatChannels.Run(s.Input, skip, h);
        }
        if (s.Conv is not null)
        {
            if (s.Upsample)
            {
                var upsampled = tape.Keep(pool.Rent(h.N, h.C, 2 * h.H, 2 * h.W));
                Upsample2x.Run(h, upsampled);
                h = upsampled;
            }
            s.ConvInput = h;
            return s.Output = tape.Keep(s.Conv.Forward(h, pool));
        }
        s.ConvInput = h;
        s.ResnetOutput = s.Resnet!.Forward(h, tembSilu, pool, tape);
        s.Output = s.Attention is null ? s.ResnetOutput : s.Attention.Forward(s.ResnetOutput, pool, tape);
        return s.Output;
    }

    /// <summary>
    /// Backpropagates dL/d(output) of the last <see cref="Forward"/> call: writes every parameter's
    /// gradient (overwriting) and, when <paramref name="inputGradient"/> is given, dL/dx into it.
    /// </summary>
    public void Backward(Tensor dOutput, Tensor? inputGradient = null)
    {
        if (normed is null) throw new InvalidOperationException("unet: Backward needs a Forward pass first");
        Shape.Require("unet backward", dOutput, "dOutput", lastHidden.N, Config.OutChannels, lastHidden.H, lastHidden.W);
        var dSkips = new Tensor?[skipCount];
        var held = new List<Tensor>();
        try
        {
            using var dTembSilu = pool.RentZeros(tembSilu.Shape);
            using var dNormed = pool.Rent(normed.Shape);
            convOut.Backward(normed, dOutput, dNormed, false);
            var dH = pool.Rent(lastHidden.Shape);
            held.Add(dH);
            normOut.Backward(lastHidden, silu: true, dNormed, dH, false);

            for (int i = up.Count - 1; i >= 0; i--)
            {
                var s = up[i];
                var dIn = pool.Rent(s.Input.Shape);
                held.Add(dIn);
                if (s.Skip >= 0)
                {
                    var dCat = Back(s, dH, dTembSilu);
                    var dSkip = pool.Rent(skips[s.Skip].Shape);
                    held.Add(dSkip);
                    dSkips[s.Skip] = dSkip;
                    SplitChannels.Run(dCat, dIn, false, dSkip, false);
                    dCat.Dispose();
                }
                else
                {
                    using var dUp = Back(s, dH, dTembSilu);
                    Upsample2xBackward.Run(dUp, dIn);
                }
                dH = dIn;
            }
            for (int i = mid.Count - 1; i >= 0; i--)
            {
                var dIn = pool.Rent(mid[i].Input.Shape);
                held.Add(dIn);
                BackThrough(mid[i], dH, dIn, false, dTembSilu);
                dH = dIn;
            }
            // The mid block's input (or, without one, the up path's input) is also the newest skip.
            Kernels.Elementwise.Axpby.Run(1f, dH, 1f, dSkips[skipCount - 1]!);
            for (int i = skipCount - 1; i >= 1; i--) BackThrough(down[i], dSkips[i]!, dSkips[i - 1]!, true, dTembSilu);
            convIn.Backward(down[0].Input, dSkips[0]!, inputGradient, false);

            // Time embedding: temb_silu = silu(linear_2(silu(linear_1(sinusoid)))).
            using var dTemb = pool.Rent(temb.Shape);
            SiluBackward.Run(temb, dTembSilu, dTemb);
            using var dHiddenSilu = pool.Rent(hidden.Shape);
            var hiddenSilu = pool.Rent(hidden.Shape);
            held.Add(hiddenSilu);
            Silu.Run(hidden, hiddenSilu);
            timeLinear2.Backward(hiddenSilu, dTemb, dHiddenSilu, false);
            SiluBackward.Run(hidden, dHiddenSilu, dHiddenSilu);
            timeLinear1.Backward(sinusoid, dHiddenSilu, null, false);
        }
        finally
        {
            foreach (var t in held) t.Dispose();
        }
    }

    /// <summary>Backpropagates dOut through the step's conv or resnet (+attention) to the tensor that
    /// step consumed (after concatenation / upsampling); returns a rented gradient of ConvInput.</summary>
    private Tensor Back(Step s, Tensor dOut, Tensor dTembSilu)
    {
        var dx = pool.Rent(s.ConvInput.Shape);
        BackThrough(s, dOut, dx, false, dTembSilu);
        return dx;
    }

    private void BackThrough(Step s, Tensor dOut, Tensor dx, bool accumulate, Tensor dTembSilu)
    {
        if (s.Conv is not null)
        {
            s.Conv.Backward(s.ConvInput, dOut, dx, accumulate);
            return;
        }
        if (s.Attention is null)
        {
            s.Resnet!.Backward(dOut, dx, accumulate, tembSilu, dTembSilu, pool);
            return;
        }
        using var dR = pool.Rent(s.ResnetOutput.Shape);
        s.Attention.Backward(dOut, dR, false, pool);
        s.Resnet!.Backward(dR, dx, accumulate, tembSilu, dTembSilu, pool);
    }

    /// <summary>Frees the weights, gradients and activations.</summary>
    public void Dispose()
    {
        tape.Clear();
        Parameters.Dispose();
        pool.Dispose();
    }
}

using PosteriorGpu.Kernels.Activations;
using PosteriorGpu.Kernels.Conv;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Embedding;
using PosteriorGpu.Kernels.Gemm;
using PosteriorGpu.Kernels.Layout;
using PosteriorGpu.Kernels.Resample;
using PosteriorGpu.Kernels.Norm;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.IO;

namespace PosteriorGpu.Models.UNet;

/// <summary>
/// diffusers' UNet2DModel (Ho et al. 2020's DDPM U-Net as diffusers configures it), every layer one of
/// our kernels: one layer stack over one <see cref="ParameterStore"/>, run forward for inference and,
/// when made with gradients, backward for training and for DPS's vector-Jacobian product.
/// </summary>
/// <remarks>
/// <see cref="Load"/> reads a diffusers checkpoint folder (config.json + diffusion_pytorch_model.safetensors);
/// <see cref="Create"/> makes a freshly initialised network to train; <see cref="Save"/> writes a folder
/// that both (and diffusers) read back. Gradients are a mode, as in llm.c where forward and backward share
/// one parameter struct: without gradients (the default of <see cref="Load"/>) a forward pass keeps no
/// activations and takes every buffer from a pool owned by the model, so repeated calls with one batch
/// size allocate no device memory after the first; with gradients (<see cref="GradientsEnabled"/>) a
/// forward pass keeps what <see cref="Backward"/> needs until the next pass. Both modes run the same
/// kernels in the same order and give bitwise-equal outputs. Inference supports every configuration
/// <see cref="UNet2DConfig"/> accepts; so does the backward pass (class conditioning included, with
/// <see cref="ClassLabels"/>) except resnet_time_scale_shift "scale_shift", for which asking for gradients is a
/// NotSupportedException naming the field. Holds device memory: dispose it. Not thread-safe.
/// </remarks>
public sealed class UNet2DModel : IDeviceTimestepDifferentiableScoreModel, IDisposable
{
    /// <summary>The weights file diffusers writes in a model folder.</summary>
    public const string WeightsFileName = "diffusion_pytorch_model.safetensors";

    private readonly TensorPool pool;
    private readonly Tape tape = new();
    private readonly UNetLayers layers;
    private readonly Tensor[] skips;
    // consumerOfSkip[i]: the up step that concatenates skip i (-1: none); concatenations[j]: up step j's buffer this pass
    // when it is written in place (batch 1, outside training), else null.
    private readonly int[] consumerOfSkip;
    private readonly Tensor?[] concatenations;
    // Per down stage: its output's per-channel statistics, saved by its last launch when the output goes straight into a
    // concatenation, so that the launch writing the concatenation's other part makes the whole one's GroupNorm table.
    private readonly ChannelStatistics?[] skipStatistics;
    private bool gradientsEnabled;

    // Activations of the last forward pass that the backward pass reads (kept only when recording).
    private Tensor? centred;
    private Tensor sinusoid = null!, hidden = null!, hiddenSilu = null!, temb = null!, tembSilu = null!, lastHidden = null!, normed = null!;
    private float[] hostTimesteps = [];
    private float[] hostLabels = [];

    private UNet2DModel(GpuDevice device, UNet2DConfig config, ParameterSource source, bool withGradients)
    {
        if (withGradients) RequireDifferentiable(config);
        Device = device;
        Config = config;
        Parameters = new ParameterStore(source);
        layers = new UNetLayers(config, Parameters);
        skips = new Tensor[layers.Down.Count];
        consumerOfSkip = Enumerable.Range(0, skips.Length).Select(i => layers.Up.FindIndex(s => s.Skip == i)).ToArray();
        concatenations = new Tensor?[layers.Up.Count];
        skipStatistics = new ChannelStatistics?[layers.Down.Count];
        // Reports unused checkpoint tensors before anything reaches the device.
        Parameters.Materialize(device, withGradients);
        pool = new TensorPool(device);
        gradientsEnabled = withGradients;
        resnets = layers.Down.Concat(layers.Mid).Concat(layers.Up).Select(s => s.Resnet).OfType<ResnetBlock2D>().ToArray();
        if (resnets.Length > 0)
            timeProjections = new GroupedLinearPlan(device, config.TimeEmbedDim, resnets.Select(r => new GroupedLinearPlan.Layer(
                r.TimeProjection.Weight.Offset, r.TimeProjection.Bias.Offset, r.TimeProjection.Out)).ToArray());
    }

    /// <summary>Whether a batch-1 pass outside training writes the up path's concatenations in place (default); off, each
    /// is a concat launch, as at larger batches: the tests compare the two bitwise.</summary>
    internal bool ElidesConcatenations { get; set; } = true;

    // Every resnet's time_emb_proj in one launch: the plan (made once) and, per batch size, the output and each block's view.
    private readonly ResnetBlock2D[] resnets;
    private readonly GroupedLinearPlan? timeProjections;
    private Tensor? projectedTime;

    /// <summary>The architecture, as read from config.json.</summary>
    public UNet2DConfig Config { get; }

    /// <summary>Every weight (flat, with diffusers names) and, with gradients, its gradient.</summary>
    public ParameterStore Parameters { get; }

    /// <inheritdoc/>
    public GpuDevice Device { get; }

    /// <inheritdoc/>
    public int Channels => Config.InChannels;

    /// <summary>Image height from config.json's sample_size (0 when the config leaves it open).</summary>
    public int Height => Config.SampleSize ?? 0;

    /// <summary>Image width from config.json's sample_size (0 when the config leaves it open).</summary>
    public int Width => Config.SampleWidth ?? Config.SampleSize ?? 0;

    /// <summary>Class labels used by <see cref="PredictEpsilon(Tensor, ReadOnlySpan{float}, Tensor)"/> and <see cref="EpsilonVjp(Tensor, ReadOnlySpan{float}, Tensor, Tensor, Tensor)"/> for class-conditional
    /// models (one per batch item, or one for all); must stay null when the model has no class embedding.</summary>
    public int[]? ClassLabels { get; set; }

    /// <summary>True when the model was made with gradients (a gradient buffer and a backward pass): it can
    /// train and give <see cref="EpsilonVjp(Tensor, ReadOnlySpan{float}, Tensor, Tensor, Tensor)"/>. A model loaded without gradients cannot.</summary>
    public bool CanDifferentiate => Parameters.HasGradients;

    /// <summary>
    /// Whether <see cref="Forward"/> and <see cref="PredictEpsilon(Tensor, ReadOnlySpan{float}, Tensor)"/> keep the activations a
    /// <see cref="Backward"/> pass needs (true by default when the model has gradients). Set it false on
    /// a model with gradients to run pure inference, as with torch.no_grad(): no activations are kept and
    /// the pool's buffers are reused. <see cref="EpsilonVjp(Tensor, ReadOnlySpan{float}, Tensor, Tensor, Tensor)"/> records regardless.
    /// </summary>
    /// <exception cref="InvalidOperationException">Set to true on a model without gradients.</exception>
    public bool GradientsEnabled
    {
        get => gradientsEnabled;
        set
        {
            if (value && !CanDifferentiate) throw NoGradients("enable gradients");
            gradientsEnabled = value;
            // The kept activations are useless once no backward pass can follow: give them back now.
            if (!value) tape.Clear();
        }
    }

    /// <summary>Device buffers the activation pool holds (constant after the first call per batch size and mode).</summary>
    public int PoolAllocations => pool.Allocations;

    /// <summary>Loads config.json and diffusion_pytorch_model.safetensors from a diffusers model folder,
    /// for inference or, <paramref name="withGradients"/>, to train or differentiate (more device memory:
    /// a gradient per weight and the activations of the last forward pass).</summary>
    /// <exception cref="FileNotFoundException">A file is missing.</exception>
    /// <exception cref="CheckpointFormatException">The config or weights are malformed or do not match.</exception>
    /// <exception cref="NotSupportedException"><paramref name="withGradients"/> and a configuration the backward
    /// pass does not support (the message names the config.json field).</exception>
    public static UNet2DModel Load(GpuDevice device, string folder, bool withGradients = false)
    {
        ArgumentNullException.ThrowIfNull(device);
        string configPath = Path.Combine(folder, "config.json");
        string weightsPath = Path.Combine(folder, WeightsFileName);
        if (!File.Exists(configPath)) throw new FileNotFoundException($"{folder}: no config.json in the model folder", configPath);
        if (!File.Exists(weightsPath)) throw new FileNotFoundException($"{folder}: no {WeightsFileName} in the model folder", weightsPath);
        var config = UNet2DConfig.Load(configPath);
        if (withGradients) RequireDifferentiable(config);
        var weights = SafeTensorsFile.Read(weightsPath);
        // Nothing reaches the device until every tensor is found, shaped right and used, so a failed load
        // leaves no device memory behind.
        return new UNet2DModel(device, config, new WeightLoader(weights, weightsPath), withGradients);
    }

    /// <summary>A network of <paramref name="config"/> with PyTorch's default initialisation drawn from
    /// <paramref name="seed"/> (the start of training), with gradients unless told otherwise.</summary>
    /// <exception cref="ArgumentException">The configuration is inconsistent or unsupported (<see cref="UNet2DConfig.Validate"/>).</exception>
    /// <exception cref="NotSupportedException"><paramref name="withGradients"/> and a configuration the backward
    /// pass does not support (the message names the config field).</exception>
    public static UNet2DModel Create(GpuDevice device, UNet2DConfig config, int seed = 0, bool withGradients = true)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        return new UNet2DModel(device, config, new RandomParameters(seed), withGradients);
    }

    /// <summary>The name and shape of every weight tensor of <paramref name="config"/>, in the order the model
    /// registers them (diffusers' module order), without a device or any weights: for writing checkpoints of a
    /// given architecture and counting its parameters and operations.</summary>
    /// <exception cref="ArgumentException">The configuration is inconsistent or unsupported (<see cref="UNet2DConfig.Validate"/>).</exception>
    public static IReadOnlyList<(string Name, int[] Shape)> ParameterLayout(UNet2DConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        var store = new ParameterStore(new LayoutOnly());
        _ = new UNetLayers(config, store);
        return store.Parameters.Select(p => (p.Name, p.Shape)).ToList();
    }

    /// <summary>Writes config.json and the weights (the current ones, or <paramref name="flatWeights"/>,
    /// e.g. an EMA, in <see cref="Parameters"/>' order) as a diffusers model folder.</summary>
    public void Save(string folder, float[]? flatWeights = null, bool float16 = false)
    {
        Directory.CreateDirectory(folder);
        Config.Save(Path.Combine(folder, "config.json"));
        SafeTensorsWriter.Write(Path.Combine(folder, WeightsFileName),
            Parameters.Split(flatWeights ?? Parameters.Values.ToHost()), new Dictionary<string, string> { ["format"] = "pt" }, float16);
    }

    private static void RequireDifferentiable(UNet2DConfig c)
    {
        string? field = c.ResnetTimeScaleShift != "default" ? $"resnet_time_scale_shift \"{c.ResnetTimeScaleShift}\""
            : c.ClassEmbedType is not null ? $"class_embed_type \"{c.ClassEmbedType}\""
            : c.TimeEmbeddingType != "positional" ? $"time_embedding_type \"{c.TimeEmbeddingType}\""
            : null;
        if (field is not null)
            throw new NotSupportedException(
                $"unet: the backward pass does not support config field {field}; load the model without gradients (withGradients: false) for inference");
    }

    private static InvalidOperationException NoGradients(string what) => new(
        $"unet: cannot {what}: the model was made without gradients; load it with UNet2DModel.Load(device, folder, withGradients: true) " +
        "(or DiffusionModel.Load(..., withGradients: true)) to train or differentiate it");

    /// <inheritdoc/>
    public void PredictEpsilon(Tensor x, ReadOnlySpan<float> timesteps, Tensor epsilon) =>
        Forward(x, timesteps, ClassLabels, epsilon);

    /// <inheritdoc/>
    public void PredictEpsilon(Tensor x, Tensor timesteps, Tensor epsilon)
    {
        Shape.RequireSameDevice("unet", x, timesteps);
        Shape.Require("unet", timesteps, "timesteps", x.N);
        Run(x, [], ClassLabels, epsilon, gradientsEnabled, timesteps);
    }

    /// <inheritdoc/>
    /// <exception cref="InvalidOperationException">The model was made without gradients.</exception>
    public void EpsilonVjp(Tensor x, ReadOnlySpan<float> timesteps, Tensor cotangent, Tensor epsilon, Tensor gradient)
    {
        if (!CanDifferentiate) throw NoGradients("differentiate epsilon (EpsilonVjp, used by DPS)");
        Run(x, timesteps, ClassLabels, epsilon, record: true);
        Backward(cotangent, gradient);
    }

    /// <inheritdoc/>
    /// <exception cref="InvalidOperationException">The model was made without gradients.</exception>
    public void EpsilonVjp(Tensor x, Tensor timesteps, Tensor cotangent, Tensor epsilon, Tensor gradient)
    {
        if (!CanDifferentiate) throw NoGradients("differentiate epsilon (EpsilonVjp, used by DPS)");
        Shape.RequireSameDevice("unet", x, timesteps);
        Shape.Require("unet", timesteps, "timesteps", x.N);
        Run(x, [], ClassLabels, epsilon, record: true, timesteps);
        Backward(cotangent, gradient);
    }

    /// <summary>Runs the network: x [N, in_channels, H, W], one timestep per item (or one for all),
    /// optional class labels, output [N, out_channels, H, W]. Keeps what <see cref="Backward"/> needs when
    /// <see cref="GradientsEnabled"/>.</summary>
    public void Forward(Tensor x, ReadOnlySpan<float> timesteps, ReadOnlySpan<int> classLabels, Tensor output) =>
        Run(x, timesteps, classLabels, output, gradientsEnabled);

    /// <summary>The pass; <paramref name="deviceTimesteps"/> ([N], read on the device), when given, replaces <paramref name="timesteps"/>.</summary>
    private void Run(Tensor x, ReadOnlySpan<float> timesteps, ReadOnlySpan<int> classLabels, Tensor output, bool record,
        Tensor? deviceTimesteps = null)
    {
        var c = Config;
        Shape.RequireRank("unet", x, "x", 4);
        if (x.C != c.InChannels)
            throw new ArgumentException($"unet: the model takes {c.InChannels} channel(s) but x has shape {Shape.Format(x.Shape)}");
        int factor = 1 << (c.BlockOutChannels.Length - 1);
        if (x.H % factor != 0 || x.W % factor != 0)
            throw new ArgumentException($"unet: height and width must be multiples of {factor} for {c.BlockOutChannels.Length} blocks but x has shape {Shape.Format(x.Shape)}");
        Shape.Require("unet", output, "output", x.N, c.OutChannels, x.H, x.W);
        int n = x.N;
        if (deviceTimesteps is null) ScoreModelTimesteps.Require(timesteps, n, "unet");
        CheckClassLabels(classLabels, n);

        tape.Begin(record);
        try
        {
            TimeEmbedding(timesteps, deviceTimesteps, classLabels, n);

            Tensor h = x;
            bool owned = false;   // whether h is this pass's to release (not the caller's x, not a skip)
            centred = null;
            if (c.CenterInputSample)
            {
                centred = tape.Keep(pool.Rent(x.Shape));
                Affine.Run(x, 2f, -1f, centred);
                h = centred;
                owned = true;
            }
            // At batch 1 outside training a concatenation's two parts are contiguous channel ranges: the layers that
            // produce them write there (the skip when it is made, the running tensor just before the up step), and the
            // up step consumes the buffer without a concat launch or copy.
            bool elide = n == 1 && !record && ElidesConcatenations;
            Array.Clear(concatenations);
            PreparedGroupNorm? prepared = null;   // the running tensor's next norm, prepared by the stage that made it
            for (int i = 0; i < layers.Down.Count; i++)
            {
                Tensor? into = null;
                // Up step 0's running tensor is the mid block's output; without a mid block it is this skip itself.
                int j = consumerOfSkip[i];
                if (elide && j >= 0 && (j > 0 || layers.Mid.Count > 0))
                {
                    var shape = layers.Down[i].OutputShape(1, h.H, h.W);
                    var cat = concatenations[j] = pool.Rent(1, layers.Up[j].ConsumedChannels, shape[2], shape[3]);
                    into = cat.SliceChannels(cat.C - shape[1], shape[1]);
                }
                // Each stage may prepare the next one's norm1 table over its output (no table launch there), and saves the
                // statistics of an output that goes straight into a concatenation.
                OutputNorm next = i + 1 < layers.Down.Count ? layers.Down[i + 1].InputNorm : layers.Mid.Count > 0 ? layers.Mid[0].InputNorm : null;
                if (into is not null) next = next with { Save = skipStatistics[i] ??= new ChannelStatistics(Device) };
                skips[i] = h = layers.Down[i].Forward(h, owned, skips, tembSilu, pool, tape, into, prepared: prepared, next: next);
                prepared = layers.Down[i].PreparedOutputNorm;
                owned = false;   // every down output is a skip, released by the up step that consumes it
            }
            Tensor? Head(int next) => next < layers.Up.Count && concatenations[next] is { } cat
                ? cat.SliceChannels(0, cat.C - skips[layers.Up[next].Skip].C) : null;
            for (int i = 0; i < layers.Mid.Count; i++)
            {
                var next = i + 1 < layers.Mid.Count ? layers.Mid[i + 1].InputNorm : TowardConcatenation(0);
                h = layers.Mid[i].Forward(h, owned, skips, tembSilu, pool, tape, i == layers.Mid.Count - 1 ? Head(0) : null,
                    prepared: prepared, next: next);
                prepared = layers.Mid[i].PreparedOutputNorm;
                owned = true;
            }
            for (int j = 0; j < layers.Up.Count; j++)
            {
                // The last stage may prepare conv_norm_out's table (conv_out then normalises while it loads).
                var next = j + 1 >= layers.Up.Count ? record ? null : layers.NormOut
                    : layers.Up[j + 1].Skip >= 0 ? TowardConcatenation(j + 1) : layers.Up[j + 1].InputNorm;
                h = layers.Up[j].Forward(h, owned, skips, tembSilu, pool, tape, Head(j + 1), concatenations[j], prepared, next);
                prepared = layers.Up[j].PreparedOutputNorm;
                owned = true;
            }
            lastHidden = h;
            if (!record && Conv2dNormalized.Serves(h))
            {
                // Outside training on the GEMM core: conv_norm_out (+SiLU) normalised while conv_out loads; no normalised tensor.
                layers.ConvOut.ForwardNormalized(h, layers.NormOut, silu: true, pool, out _, into: output, prepared: prepared);
                tape.Release(h);
            }
            else
            {
                normed = tape.Keep(layers.NormOut.Forward(h, pool, silu: true));
                tape.Release(h);
                layers.ConvOut.ForwardInto(normed, output);
                tape.Release(normed);
            }
            tape.Release(tembSilu);
        }
        catch
        {
            // A pass that failed halfway (a kernel error, out of device memory) leaves nothing to differentiate.
            tape.Clear();
            throw;
        }
    }

    /// <summary>What the stage before up step j asks of its output when that goes into the first part of j's in-place
    /// concatenation: the table of j's norm1 over the whole, from the skip's saved statistics (none where they were not saved:
    /// up step j then computes its table itself).</summary>
    private OutputNorm TowardConcatenation(int j)
    {
        var step = layers.Up[j];
        if (concatenations[j] is not { } cat || step.ConcatenationNorm is not { } norm) return default;
        if (skipStatistics[step.Skip] is not { } saved || !ReferenceEquals(saved.Of, skips[step.Skip])) return default;
        return new OutputNorm(norm.Parameters) { Concatenation = cat, Following = saved };
    }

    private void CheckClassLabels(ReadOnlySpan<int> classLabels, int n)
    {
        if (layers.ClassEmbedding is null)
        {
            if (!classLabels.IsEmpty)
                throw new ArgumentException("unet: class labels were given but the model has no class embedding (num_class_embeds is null)");
            return;
        }
        if (classLabels.IsEmpty)
            throw new ArgumentException("unet: this model is class-conditional (num_class_embeds is set); give class labels");
        if (classLabels.Length != n && classLabels.Length != 1)
            throw new ArgumentException($"unet: {classLabels.Length} class labels for a batch of {n}; give one per item or one for all");
        int classes = layers.ClassEmbedding.Shape[0];
        foreach (int label in classLabels)
            if (label < 0 || label >= classes)
                throw new ArgumentOutOfRangeException(nameof(classLabels), label, $"unet: class label must be in [0, {classes})");
    }

    /// <summary>temb = linear_2(silu(linear_1(sinusoidal(t)))) (+ class embedding) and tembSilu = silu(temb), which
    /// every resnet applies before its projection, so it is computed once here. Without recording, the three are one
    /// launch (<see cref="TimestepMlp"/>, with the last SiLU too unless a class embedding is added to temb before it) and
    /// tembSilu is temb; recording, each is its own launch and the tape keeps what the backward pass needs.</summary>
    private void TimeEmbedding(ReadOnlySpan<float> timesteps, Tensor? deviceTimesteps, ReadOnlySpan<int> classLabels, int n)
    {
        var c = Config;
        int dim = c.BlockOutChannels[0];
        bool fuseTembSilu = !tape.Recording && layers.ClassEmbedding is null;
        if (!tape.Recording && TimestepMlp.IsFused(Device) && TimestepMlp.Serves(dim, c.TimeEmbedDim))
        {
            // Outside training the sinusoid, linear_1 + SiLU and linear_2 (+ SiLU) are one launch (no hidden tensors kept).
            temb = pool.Rent(n, c.TimeEmbedDim);
            var (w1, b1, w2, b2) = (layers.TimeLinear1.Weight.Value, layers.TimeLinear1.Bias.Value, layers.TimeLinear2.Weight.Value,
                layers.TimeLinear2.Bias.Value);
            if (deviceTimesteps is not null)
                TimestepMlp.Run(deviceTimesteps, dim, c.FlipSinToCos, (float)c.FreqShift, w1, b1, w2, b2, fuseTembSilu, temb);
            else if (AllEqual(timesteps))
                TimestepMlp.Run(timesteps[0], dim, c.FlipSinToCos, (float)c.FreqShift, w1, b1, w2, b2, fuseTembSilu, temb);
            else
            {
                using var t = DeviceTimesteps(timesteps, n);
                TimestepMlp.Run(t, dim, c.FlipSinToCos, (float)c.FreqShift, w1, b1, w2, b2, fuseTembSilu, temb);
            }
            FinishTimeEmbedding(classLabels, n, fuseTembSilu);
            return;
        }
        sinusoid = tape.Keep(pool.Rent(n, dim));
        if (deviceTimesteps is not null)
            TimestepEmbedding.Run(deviceTimesteps, dim, c.FlipSinToCos, (float)c.FreqShift, sinusoid);
        else if (AllEqual(timesteps))
        {
            // A sampler step's case: the timestep travels as a kernel argument, so the pass copies nothing from the host.
            TimestepEmbedding.Run(timesteps[0], dim, c.FlipSinToCos, (float)c.FreqShift, sinusoid);
        }
        else
        {
            using var t = DeviceTimesteps(timesteps, n);
            TimestepEmbedding.Run(t, dim, c.FlipSinToCos, (float)c.FreqShift, sinusoid);
        }
        if (tape.Recording)
        {
            hidden = tape.Keep(layers.TimeLinear1.Forward(sinusoid, pool));
            hiddenSilu = tape.Keep(pool.Rent(hidden.Shape));
            Silu.Run(hidden, hiddenSilu);
        }
        else
        {
            // The backward pass is not coming: the SiLU goes into linear_1's launch.
            hidden = hiddenSilu = layers.TimeLinear1.Forward(sinusoid, pool, silu: true);
        }
        tape.Release(sinusoid);
        temb = tape.Keep(layers.TimeLinear2.Forward(hiddenSilu, pool, silu: fuseTembSilu));
        tape.Release(hiddenSilu);
        FinishTimeEmbedding(classLabels, n, fuseTembSilu);
    }

    /// <summary>The timesteps as a rented device tensor [n] (one host copy: the per-item case).</summary>
    private Tensor DeviceTimesteps(ReadOnlySpan<float> timesteps, int n)
    {
        if (hostTimesteps.Length != n) hostTimesteps = new float[n];
        for (int i = 0; i < n; i++) hostTimesteps[i] = ScoreModelTimesteps.Of(timesteps, i);
        var t = pool.Rent(n);
        t.CopyFrom(hostTimesteps);
        return t;
    }

    /// <summary>After temb: the class embedding, tembSilu (unless the launch before applied the SiLU) and the projections.</summary>
    private void FinishTimeEmbedding(ReadOnlySpan<int> classLabels, int n, bool fuseTembSilu)
    {
        if (layers.ClassEmbedding is not null)
        {
            if (hostLabels.Length != n) hostLabels = new float[n];
            for (int i = 0; i < n; i++) hostLabels[i] = classLabels[classLabels.Length == 1 ? 0 : i];
            using var labels = pool.Rent(n);
            labels.CopyFrom(hostLabels);
            EmbeddingAdd.Run(layers.ClassEmbedding.Value, labels, temb);
        }
        tembSilu = tape.Recording ? tape.Keep(pool.Rent(temb.Shape)) : temb;
        if (!fuseTembSilu) Silu.Run(temb, tembSilu);   // else linear_2 stored silu(temb), the only form the resnets read
        ProjectTime(n);
    }

    /// <summary>time_emb_proj(tembSilu) of every resnet in one GroupedLinear launch; each resnet reads its block as a view.
    /// The buffer and views are made when the batch size changes, so repeated passes allocate nothing.</summary>
    private void ProjectTime(int n)
    {
        if (timeProjections is null) return;
        if (projectedTime is null || projectedTime.Length != n * timeProjections.TotalRows)
        {
            projectedTime?.Dispose();
            projectedTime = null;
            projectedTime = Tensor.Empty(Device, n * timeProjections.TotalRows);
            for (int g = 0; g < resnets.Length; g++)
            {
                int rows = timeProjections.Layers[g].Rows;
                resnets[g].ProjectedTime = projectedTime.SliceBatch(timeProjections.OutputOffset(g, n), n * rows).Reshape(n, rows);
            }
        }
        GroupedLinear.Run(timeProjections, tembSilu, Parameters.Values, projectedTime);
    }

    /// <summary>True when every value is the same (bitwise, so NaN and -0 take the per-item path, which gives the same result).</summary>
    private static bool AllEqual(ReadOnlySpan<float> values)
    {
        for (int i = 1; i < values.Length; i++)
            if (BitConverter.SingleToInt32Bits(values[i]) != BitConverter.SingleToInt32Bits(values[0])) return false;
        return true;
    }

    /// <summary>
    /// Backpropagates dL/d(output) of the last <see cref="Forward"/> pass (made with gradients enabled):
    /// writes every parameter's gradient into <see cref="ParameterStore.Gradients"/> (overwriting) and, when
    /// <paramref name="inputGradient"/> is given, dL/dx into it.
    /// </summary>
    /// <exception cref="InvalidOperationException">The model has no gradients, or the last forward pass kept
    /// no activations (gradients were disabled, or there was none).</exception>
    public void Backward(Tensor dOutput, Tensor? inputGradient = null)
    {
        if (!CanDifferentiate) throw NoGradients("run a backward pass");
        if (!tape.Recording) throw new InvalidOperationException("unet: Backward needs a Forward pass with GradientsEnabled first");
        Shape.Require("unet backward", dOutput, "dOutput", lastHidden.N, Config.OutChannels, lastHidden.H, lastHidden.W);
        var dSkips = new Tensor?[skips.Length];
        var held = new List<Tensor>();
        try
        {
            using var dTembSilu = pool.RentZeros(tembSilu.Shape);
            using var dNormed = pool.Rent(normed.Shape);
            layers.ConvOut.Backward(normed, dOutput, dNormed, false);
            var dH = pool.Rent(lastHidden.Shape);
            held.Add(dH);
            layers.NormOut.Backward(lastHidden, silu: true, dNormed, dH, false);

            for (int i = layers.Up.Count - 1; i >= 0; i--)
            {
                var s = layers.Up[i];
                var dIn = pool.Rent(s.Input.Shape);
                held.Add(dIn);
                if (s.Skip >= 0)
                {
                    var dCat = s.BackToConsumed(dH, tembSilu, dTembSilu, pool);
                    var dSkip = pool.Rent(skips[s.Skip].Shape);
                    held.Add(dSkip);
                    dSkips[s.Skip] = dSkip;
                    SplitChannels.Run(dCat, dIn, false, dSkip, false);
                    dCat.Dispose();
                }
                else
                {
                    using var dUp = s.BackToConsumed(dH, tembSilu, dTembSilu, pool);
                    Upsample2xBackward.Run(dUp, dIn);
                }
                dH = dIn;
            }
            for (int i = layers.Mid.Count - 1; i >= 0; i--)
            {
                var dIn = pool.Rent(layers.Mid[i].Input.Shape);
                held.Add(dIn);
                layers.Mid[i].Backward(dH, dIn, false, tembSilu, dTembSilu, pool);
                dH = dIn;
            }
            // The mid block's input (or, without one, the up path's input) is also the newest skip.
            Axpby.Run(1f, dH, 1f, dSkips[^1]!);
            for (int i = skips.Length - 1; i >= 1; i--) layers.Down[i].Backward(dSkips[i]!, dSkips[i - 1]!, true, tembSilu, dTembSilu, pool);
            layers.ConvIn.Backward(layers.Down[0].Input, dSkips[0]!, inputGradient, false);
            // center_input_sample: conv_in saw 2 x - 1.
            if (centred is not null && inputGradient is not null) Affine.Run(inputGradient, 2f, 0f, inputGradient);

            // Time embedding: tembSilu = silu(linear_2(silu(linear_1(sinusoid))) + class_embedding[label]).
            using var dTemb = pool.Rent(temb.Shape);
            SiluBackward.Run(temb, dTembSilu, dTemb);
            if (layers.ClassEmbedding is { } table)
            {
                // nn.Embedding's backward: each item's dTemb is added to its label's row, a scatter-add written as
                // one row update per item (a few launches per batch) so that repeated labels accumulate.
                var dTable = table.Gradient!;
                dTable.Clear();
                for (int i = 0; i < dTemb.N; i++)
                    Axpby.Run(1f, dTemb.SliceBatch(i, 1), 1f, dTable.SliceBatch((int)hostLabels[i], 1));
            }
            using var dHiddenSilu = pool.Rent(hidden.Shape);
            layers.TimeLinear2.Backward(hiddenSilu, dTemb, dHiddenSilu, false);
            SiluBackward.Run(hidden, dHiddenSilu, dHiddenSilu);
            layers.TimeLinear1.Backward(sinusoid, dHiddenSilu, null, false);
        }
        finally
        {
            foreach (var t in held) t.Dispose();
        }
    }

    /// <summary>Frees the weights, gradients and the activation pool.</summary>
    public void Dispose()
    {
        tape.Clear();
        projectedTime?.Dispose();
        timeProjections?.Dispose();
        foreach (var saved in skipStatistics) saved?.Dispose();
        Parameters.Dispose();
        pool.Dispose();
    }
}

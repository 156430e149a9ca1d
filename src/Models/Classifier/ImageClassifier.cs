using PosteriorGpu.Kernels.Activations;
using PosteriorGpu.Kernels.Conv;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.IO;
using PosteriorGpu.Models.UNet;

namespace PosteriorGpu.Models.Classifier;

/// <summary>
/// A small convolutional image classifier built from the project's kernels (see
/// <see cref="ClassifierConfig"/>): conv 3x3 stride 2 -> GroupNorm+SiLU, repeated, then
/// flatten -> linear -> SiLU (the penultimate <see cref="Features"/>) -> linear (logits). Trained by
/// <see cref="ClassifierTrainer"/>; its features give a Frechet distance between image sets.
/// A model folder holds config.json and model.safetensors. Holds device memory: dispose it. Not thread-safe.
/// </summary>
public sealed class ImageClassifier : IDisposable
{
    /// <summary>The weights file of a classifier folder.</summary>
    public const string WeightsFileName = "model.safetensors";

    /// <summary>The config file of a classifier folder.</summary>
    public const string ConfigFileName = "config.json";

    private const float NormEpsilon = 1e-5f;

    private readonly Conv2dLayer[] convs;
    private readonly GroupNormLayer[] norms;
    private readonly LinearLayer features, head;
    private readonly TensorPool pool;
    // The activations of the last forward pass (pooled: the next pass of the same batch size reuses
    // their buffers): each convolution's output before and after GroupNorm+SiLU, the feature layer
    // before and after SiLU, and the logits; the input is referenced for the first weight gradient.
    private readonly Tensor[] convOut, normOut;
    private Tensor? input, featurePre, featureOut, logits;

    private ImageClassifier(GpuDevice device, ClassifierConfig config, ParameterSource source, bool withGradients)
    {
        config.Validate();
        Device = device;
        Config = config;
        Parameters = new ParameterStore(source);
        int layers = config.ConvChannels.Length, cin = config.InChannels;
        convs = new Conv2dLayer[layers];
        norms = new GroupNormLayer[layers];
        for (int i = 0; i < layers; i++)
        {
            int cout = config.ConvChannels[i];
            convs[i] = new Conv2dLayer(Parameters, $"convs.{i}", cin, cout, 3, Conv2dParams.Same(2, 1));
            norms[i] = new GroupNormLayer(Parameters, $"norms.{i}", cout, config.NormNumGroups, NormEpsilon);
            cin = cout;
        }
        features = new LinearLayer(Parameters, "features", config.FlatFeatures, config.Features);
        head = new LinearLayer(Parameters, "head", config.Features, config.NumClasses);
        convOut = new Tensor[layers];
        normOut = new Tensor[layers];
        Parameters.Materialize(device, withGradients);
        pool = new TensorPool(device);
    }

    /// <summary>The device the weights live on.</summary>
    public GpuDevice Device { get; }

    /// <summary>The architecture.</summary>
    public ClassifierConfig Config { get; }

    /// <summary>The weights (and, when made with gradients, their gradients) in one flat buffer.</summary>
    public ParameterStore Parameters { get; }

    /// <summary>A freshly initialised network (PyTorch's default initialisation from <paramref name="seed"/>).</summary>
    public static ImageClassifier Create(GpuDevice device, ClassifierConfig config, int seed, bool withGradients) =>
        new(device, config, new RandomParameters(seed), withGradients);

    /// <summary>Loads a classifier folder (config.json and model.safetensors).</summary>
    /// <exception cref="FileNotFoundException">A file of the folder is missing.</exception>
    /// <exception cref="CheckpointFormatException">The config is invalid or the weights do not match it.</exception>
    public static ImageClassifier Load(GpuDevice device, string folder, bool withGradients = false)
    {
        string configPath = Path.Combine(folder, ConfigFileName), weightsPath = Path.Combine(folder, WeightsFileName);
        if (!File.Exists(configPath)) throw new FileNotFoundException($"classifier folder {folder}: no {ConfigFileName}", configPath);
        if (!File.Exists(weightsPath)) throw new FileNotFoundException($"classifier folder {folder}: no {WeightsFileName}", weightsPath);
        var config = ClassifierConfig.Load(configPath);
        return new ImageClassifier(device, config, new WeightLoader(SafeTensorsFile.Read(weightsPath), weightsPath), withGradients);
    }

    /// <summary>Writes config.json and model.safetensors (the given flat weights, else the current ones).</summary>
    public void Save(string folder, float[]? flatWeights = null, IReadOnlyDictionary<string, string>? metadata = null)
    {
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, ConfigFileName), Config.ToJson());
        SafeTensorsWriter.Write(Path.Combine(folder, WeightsFileName), Parameters.Split(flatWeights ?? Parameters.Values.ToHost()),
            metadata ?? new Dictionary<string, string>());
    }

    /// <summary>
    /// The forward pass of images [N, C, H, W]; returns the logits [N, classes], owned by the network and
    /// valid until the next call. The activations (and a reference to <paramref name="images"/>, which
    /// must stay unchanged) are kept, so <see cref="Backward"/> may follow.
    /// </summary>
    /// <exception cref="ArgumentException">The images do not have the configured channels and size.</exception>
    public Tensor Forward(Tensor images)
    {
        var c = Config;
        if (images.Rank != 4 || images.C != c.InChannels || images.H != c.ImageSize || images.W != c.ImageSize)
            throw new ArgumentException($"classifier: expected images [N, {c.InChannels}, {c.ImageSize}, {c.ImageSize}] but got {Shape.Format(images.Shape)}");
        ReleaseActivations();
        input = images;
        var x = images;
        for (int i = 0; i < convs.Length; i++)
        {
            convOut[i] = convs[i].Forward(x, pool);
            normOut[i] = norms[i].Forward(convOut[i], pool, silu: true);
            x = normOut[i];
        }
        using (var flat = x.Reshape(images.N, c.FlatFeatures)) featurePre = features.Forward(flat, pool);
        featureOut = pool.Rent(featurePre.Shape);
        Silu.Run(featurePre, featureOut);
        logits = head.Forward(featureOut, pool);
        return logits;
    }

    /// <summary>The penultimate features [N, features] of the last <see cref="Forward"/> (SiLU applied);
    /// owned by the network and valid until the next call.</summary>
    public Tensor Features => featureOut ?? throw new InvalidOperationException("classifier: no forward pass has run yet");

    /// <summary>
    /// Gradients of the parameters (overwritten) from dLoss/dLogits of the last <see cref="Forward"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">The network was made without gradients, or no forward pass ran.</exception>
    /// <exception cref="ArgumentException">dLogits does not match the logits.</exception>
    public void Backward(Tensor dLogits)
    {
        if (!Parameters.HasGradients) throw new InvalidOperationException("classifier: made without gradients (withGradients: false)");
        if (logits is null) throw new InvalidOperationException("classifier: Backward needs a Forward pass first");
        Shape.RequireSame("classifier backward", logits, "logits", dLogits, "dLogits");
        int n = logits.Shape[0], last = convs.Length - 1;
        using var dFeatureOut = pool.Rent(featureOut!.Shape);
        using var dFeaturePre = pool.Rent(featurePre!.Shape);
        head.Backward(featureOut, dLogits, dFeatureOut, accumulateDx: false);
        SiluBackward.Run(featurePre, dFeatureOut, dFeaturePre);
        var dNorm = pool.Rent(normOut[last].Shape);
        using (var flat = normOut[last].Reshape(n, Config.FlatFeatures))
        using (var dFlat = dNorm.Reshape(n, Config.FlatFeatures))
            features.Backward(flat, dFeaturePre, dFlat, accumulateDx: false);
        for (int i = last; i >= 0; i--)
        {
            using var dConv = pool.Rent(convOut[i].Shape);
            norms[i].Backward(convOut[i], silu: true, dNorm, dConv, accumulateDx: false);
            dNorm.Dispose();
            if (i > 0)
            {
                dNorm = pool.Rent(normOut[i - 1].Shape);
                convs[i].Backward(normOut[i - 1], dConv, dNorm, accumulateDx: false);
            }
            else convs[i].Backward(input!, dConv, null, accumulateDx: false);
        }
    }

    private void ReleaseActivations()
    {
        for (int i = 0; i < convOut.Length; i++)
        {
            convOut[i]?.Dispose();
            normOut[i]?.Dispose();
        }
        featurePre?.Dispose();
        featureOut?.Dispose();
        logits?.Dispose();
        featurePre = featureOut = logits = input = null;
    }

    /// <summary>Frees the weights and activations.</summary>
    public void Dispose()
    {
        ReleaseActivations();
        pool.Dispose();
        Parameters.Dispose();
    }
}

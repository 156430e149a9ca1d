using System.Text.Json;
using System.Text.Json.Serialization;
using PosteriorGpu.Models.IO;

namespace PosteriorGpu.Models.Classifier;

/// <summary>
/// The architecture of an <see cref="ImageClassifier"/> (config.json of a classifier folder): stride-2
/// 3x3 convolutions, each followed by GroupNorm and SiLU, then a fully connected feature layer with
/// SiLU (the penultimate features that a Frechet distance compares) and a linear head over the classes.
/// </summary>
public sealed record ClassifierConfig
{
    /// <summary>Input height and width (square images).</summary>
    [JsonPropertyName("image_size")] public int ImageSize { get; init; } = 32;
    /// <summary>Input channels.</summary>
    [JsonPropertyName("in_channels")] public int InChannels { get; init; } = 1;
    /// <summary>Output channels of each stride-2 convolution (the resolution halves at each).</summary>
    [JsonPropertyName("conv_channels")] public int[] ConvChannels { get; init; } = [16, 32, 64];
    /// <summary>GroupNorm groups after every convolution (must divide each of <see cref="ConvChannels"/>).</summary>
    [JsonPropertyName("norm_num_groups")] public int NormNumGroups { get; init; } = 8;
    /// <summary>Width of the penultimate (feature) layer.</summary>
    [JsonPropertyName("features")] public int Features { get; init; } = 128;
    /// <summary>Number of classes.</summary>
    [JsonPropertyName("num_classes")] public int NumClasses { get; init; } = 10;

    /// <summary>Height (and width) of the last convolution's output.</summary>
    [JsonIgnore] public int FinalSize => ImageSize >> ConvChannels.Length;

    /// <summary>Inputs of the feature layer: the last convolution's output, flattened.</summary>
    [JsonIgnore] public int FlatFeatures => ConvChannels[^1] * FinalSize * FinalSize;

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    /// <summary>Checks every field; <paramref name="source"/> names the file in the message.</summary>
    /// <exception cref="CheckpointFormatException">A field is out of range.</exception>
    public void Validate(string source = "classifier config")
    {
        void Fail(string field, object value, string expected) =>
            throw new CheckpointFormatException(source, $"{field} = {value}: expected {expected}");
        if (InChannels < 1) Fail("in_channels", InChannels, "at least 1");
        var channels = ConvChannels ?? [];
        if (channels.Length == 0 || channels.Length > 8) Fail("conv_channels", channels.Length, "1 to 8 convolutions");
        if (ImageSize < 2 || ImageSize % (1 << channels.Length) != 0)
            Fail("image_size", ImageSize, $"a positive multiple of {1 << channels.Length} (one halving per convolution)");
        if (NormNumGroups < 1) Fail("norm_num_groups", NormNumGroups, "at least 1");
        foreach (int c in channels)
            if (c < 1 || c % NormNumGroups != 0)
                Fail("conv_channels", string.Join(",", channels), $"positive multiples of norm_num_groups = {NormNumGroups}");
        if (Features < 1) Fail("features", Features, "at least 1");
        if (NumClasses < 2) Fail("num_classes", NumClasses, "at least 2");
    }

    /// <summary>The JSON form written to config.json.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>Reads and validates config.json.</summary>
    /// <exception cref="CheckpointFormatException">The file is not valid JSON or a field is out of range.</exception>
    public static ClassifierConfig Load(string path)
    {
        ClassifierConfig? c;
        try
        {
            c = JsonSerializer.Deserialize<ClassifierConfig>(File.ReadAllText(path), Json);
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException(path, $"not a classifier config: {e.Message}");
        }
        if (c is null) throw new CheckpointFormatException(path, "the file holds null, expected a classifier config object");
        c.Validate(path);
        return c;
    }

    /// <summary>Equal when the JSON forms are.</summary>
    public bool Equals(ClassifierConfig? other) => other is not null && ToJson() == other.ToJson();

    /// <inheritdoc/>
    public override int GetHashCode() => ToJson().GetHashCode(StringComparison.Ordinal);
}

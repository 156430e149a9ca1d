namespace PosteriorGpu.Models.Classifier;

/// <summary>Images [Count, C, H, W] (scaled to [-1, 1], back to back on the host) with one class label each.</summary>
public sealed class LabelledImages
{
    /// <summary>Wraps <paramref name="images"/> and <paramref name="labels"/> (not copied).</summary>
    /// <exception cref="ArgumentException">The lengths disagree or a label is not below <paramref name="classes"/>.</exception>
    public LabelledImages(float[] images, byte[] labels, int channels, int height, int width, int classes)
    {
        ItemLength = channels * height * width;
        if (ItemLength < 1 || images.Length != (long)labels.Length * ItemLength || labels.Length == 0)
            throw new ArgumentException($"labelled images: {images.Length} values and {labels.Length} labels are not {labels.Length} images of {channels}x{height}x{width}");
        int bad = Array.FindIndex(labels, l => l >= classes);
        if (bad >= 0) throw new ArgumentException($"labelled images: label {labels[bad]} at index {bad} is not below the {classes} classes");
        Images = images;
        Labels = labels;
        Channels = channels;
        Height = height;
        Width = width;
    }

    /// <summary>The images, row-major.</summary>
    public float[] Images { get; }

    /// <summary>The class of each image.</summary>
    public byte[] Labels { get; }

    /// <summary>Number of images.</summary>
    public int Count => Labels.Length;

    /// <summary>Channels per image.</summary>
    public int Channels { get; }

    /// <summary>Image height.</summary>
    public int Height { get; }

    /// <summary>Image width.</summary>
    public int Width { get; }

    /// <summary>Values per image.</summary>
    public int ItemLength { get; }
}

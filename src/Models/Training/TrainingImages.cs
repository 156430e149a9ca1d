namespace PosteriorGpu.Models.Training;

/// <summary>A training set held on the host: <see cref="Count"/> images [C, H, W], scaled to [-1, 1], back to back.</summary>
public sealed class TrainingImages
{
    /// <summary>Wraps <paramref name="data"/> (not copied).</summary>
    /// <exception cref="ArgumentException">The data does not hold a whole number of images.</exception>
    public TrainingImages(float[] data, int channels, int height, int width)
    {
        if (channels < 1 || height < 1 || width < 1) throw new ArgumentException("training images: channels, height and width must be positive");
        int item = channels * height * width;
        if (data.Length == 0 || data.Length % item != 0)
            throw new ArgumentException($"training images: {data.Length} values are not a whole number (> 0) of {channels}x{height}x{width} images");
        Data = data;
        Channels = channels;
        Height = height;
        Width = width;
        Count = data.Length / item;
    }

    /// <summary>The images, [Count, C, H, W] row-major.</summary>
    public float[] Data { get; }

    /// <summary>Number of images.</summary>
    public int Count { get; }

    /// <summary>Channels per image.</summary>
    public int Channels { get; }

    /// <summary>Image height.</summary>
    public int Height { get; }

    /// <summary>Image width.</summary>
    public int Width { get; }

    /// <summary>Values per image.</summary>
    public int ItemLength => Channels * Height * Width;
}

using PosteriorGpu.Models.IO;

namespace PosteriorGpu.Models.Data;

/// <summary>MNIST-style images from an IDX file (u8, [N, H, W] with H, W at most 32; MNIST's are 28 x 28),
/// served as float32 [k, 1, 32, 32] host arrays for a diffusion model: each image is centred on a 32 x 32
/// canvas (MNIST: 2 pixels each side, the padding that makes the U-Net's three 2x downsamplings exact)
/// and its values are mapped from 0..255 to [-1, 1], padding included (0 becomes -1, the background).
/// The bytes stay as read (47 MB for the training set); floats are made per batch.</summary>
public sealed class MnistImages
{
    /// <summary>Side of the padded images.</summary>
    public const int Size = 32;

    /// <summary>Floats per padded image (1 x 32 x 32).</summary>
    public const int ImageLength = Size * Size;

    private readonly byte[] pixels;
    private readonly int top, left;

    private MnistImages(string fileName, byte[] pixels, int count, int height, int width)
    {
        FileName = fileName;
        this.pixels = pixels;
        Count = count;
        SourceHeight = height;
        SourceWidth = width;
        top = (Size - height) / 2;
        left = (Size - width) / 2;
    }

    /// <summary>The IDX file the images came from.</summary>
    public string FileName { get; }

    /// <summary>Number of images.</summary>
    public int Count { get; }

    /// <summary>Height of the images in the file (28 for MNIST).</summary>
    public int SourceHeight { get; }

    /// <summary>Width of the images in the file (28 for MNIST).</summary>
    public int SourceWidth { get; }

    /// <summary>Reads an images file such as t10k-images-idx3-ubyte.</summary>
    /// <exception cref="CheckpointFormatException">Malformed IDX, or not u8 [N, H, W] with H, W in 1..32.</exception>
    public static MnistImages Load(string path) => FromIdx(Idx.Read(path));

    /// <summary>Wraps an IDX array that holds u8 images [N, H, W].</summary>
    /// <exception cref="CheckpointFormatException">The array is not u8 [N, H, W] with H, W in 1..32.</exception>
    public static MnistImages FromIdx(IdxArray array)
    {
        if (array.Type != IdxType.UInt8 || array.Shape.Length != 3)
            throw new CheckpointFormatException(array.FileName,
                $"expected MNIST images (u8, 3 dimensions [N, 28, 28]), found {array.Type.Name} {Idx.Format(array.Shape)}" +
                (array.Shape.Length == 1 ? " (is this a labels file?)" : ""));
        int h = array.Shape[1], w = array.Shape[2];
        if (h is < 1 or > Size || w is < 1 or > Size)
            throw new CheckpointFormatException(array.FileName, $"images of {h} x {w} pixels do not fit the {Size} x {Size} canvas");
        return new MnistImages(array.FileName, array.Data, array.Shape[0], h, w);
    }

    /// <summary>Maps a pixel byte to [-1, 1]: 0 to -1, 255 to 1.</summary>
    public static float Scale(byte value) => value / 127.5f - 1f;

    /// <summary>Writes image <paramref name="index"/>, padded and scaled, into <paramref name="destination"/>
    /// (its first <see cref="ImageLength"/> floats, row-major).</summary>
    public void CopyImage(int index, Span<float> destination)
    {
        if ((uint)index >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(index), $"image {index} of {Count}");
        if (destination.Length < ImageLength) throw new ArgumentException($"needs {ImageLength} floats", nameof(destination));
        var image = destination[..ImageLength];
        image.Fill(-1f);
        var source = pixels.AsSpan(index * SourceHeight * SourceWidth, SourceHeight * SourceWidth);
        for (int y = 0; y < SourceHeight; y++)
        {
            var row = source.Slice(y * SourceWidth, SourceWidth);
            var target = image.Slice((top + y) * Size + left, SourceWidth);
            for (int x = 0; x < row.Length; x++) target[x] = Scale(row[x]);
        }
    }

    /// <summary>The images at <paramref name="indices"/> as a float32 [k, 1, 32, 32] array (a training batch).</summary>
    public float[] Gather(ReadOnlySpan<int> indices)
    {
        var result = new float[indices.Length * ImageLength];
        for (int i = 0; i < indices.Length; i++) CopyImage(indices[i], result.AsSpan(i * ImageLength));
        return result;
    }

    /// <summary>Images <paramref name="start"/> .. <paramref name="start"/> + <paramref name="count"/> - 1 as [count, 1, 32, 32].</summary>
    public float[] ToArray(int start, int count)
    {
        if (start < 0 || count < 0 || start > Count - count)
            throw new ArgumentOutOfRangeException(nameof(count), $"images {start}..{start + count - 1} of {Count}");
        var result = new float[count * ImageLength];
        for (int i = 0; i < count; i++) CopyImage(start + i, result.AsSpan(i * ImageLength));
        return result;
    }

    /// <summary>Reads a labels file such as t10k-labels-idx1-ubyte (u8 [N]).</summary>
    /// <exception cref="CheckpointFormatException">Malformed IDX, or not u8 with one dimension.</exception>
    public static byte[] LoadLabels(string path)
    {
        var array = Idx.Read(path);
        if (array.Type != IdxType.UInt8 || array.Shape.Length != 1)
            throw new CheckpointFormatException(path, $"expected MNIST labels (u8, one dimension [N]), found {array.Type.Name} {Idx.Format(array.Shape)}");
        return array.Data;
    }
}

using SkiaSharp;

namespace PosteriorGpu.Cli;

/// <summary>Writes a batch of images [N, C, H, W] (values in [-1, 1], as diffusion models produce)
/// as one PNG grid: grey for one channel, RGB for three (other channel counts show channel 0).</summary>
internal static class PngGrid
{
    /// <summary>Tiles the images row-major, <paramref name="columns"/> per row, with a 2-pixel gap.</summary>
    public static void Write(string path, ReadOnlySpan<float> images, int[] shape, int columns = 8)
    {
        if (shape.Length != 4) throw new ArgumentException($"{path}: a PNG grid needs [N, C, H, W] images but got {shape.Length} dimensions");
        int n = shape[0], c = shape[1], h = shape[2], w = shape[3];
        if (n == 0) throw new ArgumentException($"{path}: no images to write");
        columns = Math.Clamp(columns, 1, n);
        int rows = (n + columns - 1) / columns, gap = 2;
        int width = columns * w + (columns + 1) * gap, height = rows * h + (rows + 1) * gap;
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        bitmap.Erase(new SKColor(32, 32, 32));
        for (int i = 0; i < n; i++)
        {
            int left = gap + (i % columns) * (w + gap), top = gap + (i / columns) * (h + gap);
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                {
                    int at = ((i * c) * h + y) * w + x, plane = h * w;
                    byte r = ToByte(images[at]);
                    byte g = c == 3 ? ToByte(images[at + plane]) : r, b = c == 3 ? ToByte(images[at + 2 * plane]) : r;
                    bitmap.SetPixel(left + x, top + y, new SKColor(r, g, b));
                }
        }
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        File.WriteAllBytes(path, data.ToArray());
    }

    /// <summary>[-1, 1] to [0, 255], clamped; NaN shows as black.</summary>
    public static byte ToByte(float v) => float.IsNaN(v) ? (byte)0 : (byte)Math.Round(Math.Clamp((v + 1) * 127.5f, 0f, 255f));
}

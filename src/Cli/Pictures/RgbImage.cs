using SkiaSharp;

namespace PosteriorGpu.Cli;

/// <summary>An 8-bit RGB picture in memory (row-major), written as PNG through SkiaSharp.</summary>
internal sealed class RgbImage(int width, int height)
{
    private readonly byte[] pixels = new byte[width * height * 3];

    /// <summary>Width in pixels.</summary>
    public int Width { get; } = width;

    /// <summary>Height in pixels.</summary>
    public int Height { get; } = height;

    /// <summary>The pixel at (x, y).</summary>
    public (byte R, byte G, byte B) this[int x, int y]
    {
        get
        {
            int at = (y * Width + x) * 3;
            return (pixels[at], pixels[at + 1], pixels[at + 2]);
        }
        set
        {
            if ((uint)x >= (uint)Width || (uint)y >= (uint)Height) return;
            int at = (y * Width + x) * 3;
            (pixels[at], pixels[at + 1], pixels[at + 2]) = value;
        }
    }

    /// <summary>Fills a rectangle (clipped to the picture).</summary>
    public void Fill(int left, int top, int w, int h, (byte R, byte G, byte B) colour)
    {
        for (int y = Math.Max(0, top); y < Math.Min(Height, top + h); y++)
            for (int x = Math.Max(0, left); x < Math.Min(Width, left + w); x++)
                this[x, y] = colour;
    }

    /// <summary>Writes the picture as a PNG file.</summary>
    public void WritePng(string path)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(Width, Height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        var rgba = new byte[Width * Height * 4];
        for (int i = 0; i < Width * Height; i++)
        {
            rgba[4 * i] = pixels[3 * i];
            rgba[4 * i + 1] = pixels[3 * i + 1];
            rgba[4 * i + 2] = pixels[3 * i + 2];
            rgba[4 * i + 3] = 255;
        }
        System.Runtime.InteropServices.Marshal.Copy(rgba, 0, bitmap.GetPixels(), rgba.Length);
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        File.WriteAllBytes(path, data.ToArray());
    }
}

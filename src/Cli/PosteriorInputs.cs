using PosteriorGpu.Models.IO;
using SkiaSharp;

namespace PosteriorGpu.Cli;

/// <summary>
/// The ground-truth images of `posteriorgpu posterior`, as [N, C, H, W] floats in [-1, 1] at the model's
/// size. Sources:
/// - none: the committed MNIST test digits (data/mnist-test-digits.npy);
/// - a .npy of [N, C, H, W], [N, H, W] (one channel) or [H, W]: float values must lie in [-1, 1];
///   uint8 values 0..255 are mapped to [-1, 1]; the size must be the model's;
/// - one or more PNG (or JPEG, ...) files of at most 4096 x 4096 pixels, separated by commas: each is
///   composited over black, centre-cropped to the model's aspect ratio, resized to the model's size
///   (Mitchell cubic), made grey (Rec. 601 luma) for a one-channel model or kept RGB for three, and mapped
///   from 0..255 to [-1, 1]. MNIST digits are white on black: give --invert for a dark digit on a light
///   background.
/// </summary>
internal static class PosteriorInputs
{
    /// <summary>Loads the images; <paramref name="source"/> null means the default digits.</summary>
    /// <exception cref="FileNotFoundException">A file is missing.</exception>
    /// <exception cref="CheckpointFormatException">A .npy is malformed or does not fit the model, or a picture
    /// is not one SkiaSharp decodes, is truncated or corrupt, or has more than <see cref="MaxPixels"/> pixels.</exception>
    public static (float[] Images, int Count, string Source) Load(string? source, int c, int h, int w, bool invert)
    {
        if (source is null)
        {
            string path = DefaultPaths.Find(DefaultPaths.Digits)
                ?? throw new FileNotFoundException($"the default inputs {DefaultPaths.Digits} were not found (looked in " +
                    $"{string.Join(", ", DefaultPaths.Candidates(DefaultPaths.Digits).Take(2))} and above); give --input");
            var (images, count) = FromNpy(path, c, h, w);
            return (Invert(images, invert), count, path);
        }
        if (source.EndsWith(".npy", StringComparison.OrdinalIgnoreCase))
        {
            if (!File.Exists(source)) throw new FileNotFoundException($"input images {source} not found (--input)", source);
            var (images, count) = FromNpy(source, c, h, w);
            return (Invert(images, invert), count, source);
        }
        var files = source.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var all = new float[files.Length * c * h * w];
        for (int i = 0; i < files.Length; i++)
            FromPicture(files[i], c, h, w, invert).CopyTo(all, i * c * h * w);
        return (all, files.Length, source);
    }

    private static float[] Invert(float[] images, bool invert)
    {
        if (invert) for (int i = 0; i < images.Length; i++) images[i] = -images[i];
        return images;
    }

    private static (float[] Images, int Count) FromNpy(string path, int c, int h, int w)
    {
        var a = Npy.Read(path);
        int[] s = a.Shape;
        int[] shape = s.Length switch
        {
            4 => s,
            3 => [s[0], 1, s[1], s[2]],
            2 => [1, 1, s[0], s[1]],
            _ => throw new CheckpointFormatException(path, $"expected images [N, C, H, W], [N, H, W] or [H, W] but got shape [{string.Join(", ", s)}]"),
        };
        if (shape[1] != c || shape[2] != h || shape[3] != w)
            throw new CheckpointFormatException(path,
                $"images of {shape[1]} x {shape[2]} x {shape[3]} (C x H x W) do not fit the model, which takes {c} x {h} x {w}");
        if (shape[0] == 0) throw new CheckpointFormatException(path, "holds no images");
        float[] data;
        if (a.DType == "|u1")
            data = a.ToInt64().Select(v => v / 127.5f - 1f).ToArray();
        else if (a.IsFloatingPoint)
        {
            data = a.ToFloat32();
            foreach (float v in data)
                if (!(v >= -1.001f && v <= 1.001f))
                    throw new CheckpointFormatException(path,
                        $"holds the value {v}; images must lie in [-1, 1] (map [0, 1] data with 2 x - 1, or save uint8 0..255)");
        }
        else throw new CheckpointFormatException(path, $"dtype {a.DType} is not an image type; save float32 in [-1, 1] or uint8");
        return (data, shape[0]);
    }

    private static float[] FromPicture(string path, int c, int h, int w, bool invert)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"input images: {path} not found (--input)", path);
        if (c is not (1 or 3))
            throw new CheckpointFormatException(path, $"the model takes {c} channels; pictures fit 1- or 3-channel models only (give a .npy)");
        using var decoded = Decode(path);
        // Centre-crop to the model's aspect ratio, then resize.
        double aspect = (double)w / h;
        int cw = decoded.Width, ch = decoded.Height;
        if ((double)cw / ch > aspect) cw = Math.Max(1, (int)Math.Round(ch * aspect));
        else ch = Math.Max(1, (int)Math.Round(cw / aspect));
        var crop = SKRectI.Create((decoded.Width - cw) / 2, (decoded.Height - ch) / 2, cw, ch);
        using var target = new SKBitmap(new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Premul));
        using (var canvas = new SKCanvas(target))
        {
            canvas.Clear(SKColors.Black);
            using var image = SKImage.FromBitmap(decoded);
            canvas.DrawImage(image, SKRect.Create(crop.Left, crop.Top, crop.Width, crop.Height), SKRect.Create(0, 0, w, h),
                new SKSamplingOptions(SKCubicResampler.Mitchell), null);
        }
        var result = new float[c * h * w];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                var p = target.GetPixel(x, y);
                if (c == 1)
                    result[y * w + x] = Scale(0.299 * p.Red + 0.587 * p.Green + 0.114 * p.Blue, invert);
                else
                {
                    result[y * w + x] = Scale(p.Red, invert);
                    result[(h + y) * w + x] = Scale(p.Green, invert);
                    result[(2 * h + y) * w + x] = Scale(p.Blue, invert);
                }
            }
        return result;
    }

    /// <summary>Most pixels a picture may have: its size is read from the header and checked before the pixels
    /// (4 bytes each, outside the managed heap) are allocated, so a header claiming 100000 x 100000 costs nothing.</summary>
    public const long MaxPixels = 4096L * 4096;

    /// <summary>Decodes as SKBitmap.Decode does (premultiplied, no colour space), but a malformed, truncated
    /// or oversized picture is a <see cref="CheckpointFormatException"/> naming the file, never a null or a
    /// partly decoded image.</summary>
    private static SKBitmap Decode(string path)
    {
        using var codec = SKCodec.Create(path, out var opened)
            ?? throw new CheckpointFormatException(path, $"not an image SkiaSharp can decode (expected PNG, JPEG, ...; {opened})");
        var info = codec.Info;
        if (info.Width <= 0 || info.Height <= 0 || (long)info.Width * info.Height > MaxPixels)
            throw new CheckpointFormatException(path, $"the picture is {info.Width} x {info.Height} pixels; at most {MaxPixels} pixels are read (4096 x 4096)");
        if (info.AlphaType == SKAlphaType.Unpremul) info.AlphaType = SKAlphaType.Premul;
        info.ColorSpace = null;
        var bitmap = new SKBitmap(info);
        try
        {
            if (bitmap.GetPixels() == IntPtr.Zero)
                throw new CheckpointFormatException(path, $"no memory for the {info.Width} x {info.Height} picture");
            var result = codec.GetPixels(bitmap.Info, bitmap.GetPixels());
            if (result != SKCodecResult.Success)
                throw new CheckpointFormatException(path, $"could not decode the pixels of the {info.Width} x {info.Height} {codec.EncodedFormat} picture ({result}: truncated or corrupt image data)");
            return bitmap;
        }
        catch
        {
            bitmap.Dispose();
            throw;
        }
    }

    private static float Scale(double value, bool invert) => (float)((invert ? 255 - value : value) / 127.5 - 1);
}

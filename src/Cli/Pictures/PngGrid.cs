namespace PosteriorGpu.Cli;

/// <summary>Writes a batch of images [N, C, H, W] (values in [-1, 1], as diffusion models produce) as one labelled,
/// upscaled PNG grid (<see cref="LabelledGrid"/>): a title, the column number over each column and the index of each
/// row's first image beside it.</summary>
internal static class PngGrid
{
    /// <summary>Tiles the images row-major, <paramref name="columns"/> per row, under <paramref name="title"/>.</summary>
    public static void Write(string path, ReadOnlySpan<float> images, int[] shape, string? title, int columns = 8)
    {
        if (shape.Length != 4) throw new ArgumentException($"{path}: a PNG grid needs [N, C, H, W] images but got {shape.Length} dimensions");
        int n = shape[0], c = shape[1], h = shape[2], w = shape[3], d = c * h * w;
        if (n == 0) throw new ArgumentException($"{path}: no images to write");
        columns = Math.Clamp(columns, 1, n);
        var grid = new LabelledGrid(c, h, w)
        {
            Title = title,
            Columns = [.. Enumerable.Range(0, columns).Select(i => new GridColumn($"+{i}"))],
        };
        for (int first = 0; first < n; first += columns)
        {
            var cells = new float[]?[columns];
            for (int j = 0; j < columns && first + j < n; j++) cells[j] = images.Slice((first + j) * d, d).ToArray();
            grid.AddRow($"#{first}", cells);
        }
        grid.WritePng(path);
    }

    /// <summary>[-1, 1] to [0, 255], clamped; NaN shows as black.</summary>
    public static byte ToByte(float v) => float.IsNaN(v) ? (byte)0 : (byte)Math.Round(Math.Clamp((v + 1) * 127.5f, 0f, 255f));
}

using System.Globalization;

namespace PosteriorGpu.Cli;

/// <summary>One column of a <see cref="LabelledGrid"/>: its header, and the values shown as black and white
/// (images in [-1, 1] by default; a standard deviation from 0 to its largest value, with a legend under the column).</summary>
/// <param name="Header">The column's title.</param>
/// <param name="Black">The value drawn black.</param>
/// <param name="White">The value drawn white.</param>
/// <param name="Legend">Draw a black-to-white bar under the column labelled with both values.</param>
internal sealed record GridColumn(string Header, float Black = -1, float White = 1, bool Legend = false);

/// <summary>
/// A picture of images a person can read: a title, a header over each column, a label left of each row, each image
/// upscaled by a whole number (pixels stay square and sharp) to about <see cref="TargetCellSize"/> pixels, and a legend
/// under a column whose values are not images (e.g. a standard deviation). Text is drawn with <see cref="BitmapFont"/>.
/// Grey for one channel, RGB for three (other channel counts show channel 0).
/// </summary>
internal sealed class LabelledGrid(int channels, int height, int width)
{
    /// <summary>Small images are upscaled until their longer side reaches about this many pixels.</summary>
    public const int TargetCellSize = 128;

    /// <summary>Largest upscaling factor.</summary>
    public const int MaxScale = 8;

    /// <summary>Background and text colours.</summary>
    public static readonly (byte, byte, byte) Background = (32, 32, 32), Ink = (235, 235, 235);

    private const int Gap = 4;

    private readonly List<(string Label, float[]?[] Cells)> rows = [];

    /// <summary>A line over the grid (null: none).</summary>
    public string? Title { get; init; }

    /// <summary>The columns, left to right.</summary>
    public required IReadOnlyList<GridColumn> Columns { get; init; }

    /// <summary>The upscaling factor: the whole number that brings the longer side nearest <see cref="TargetCellSize"/>
    /// (1 for images already that large).</summary>
    public int Scale { get; init; } = AutoScale(height, width);

    /// <summary>The factor for images of <paramref name="h"/> x <paramref name="w"/>.</summary>
    public static int AutoScale(int h, int w) => Math.Clamp((int)Math.Round((double)TargetCellSize / Math.Max(1, Math.Max(h, w))), 1, MaxScale);

    /// <summary>Adds a row: its label and one image [C, H, W] per column (null leaves the cell empty).</summary>
    public void AddRow(string label, params float[]?[] cells)
    {
        if (cells.Length != Columns.Count) throw new ArgumentException($"a row needs {Columns.Count} cells but got {cells.Length}");
        rows.Add((label, cells));
    }

    /// <summary>Draws the grid.</summary>
    public RgbImage Render()
    {
        int cw = width * Scale, ch = height * Scale;
        int headerScale = Columns.Any(c => BitmapFont.Width(c.Header, 2) <= cw) ? 2 : 1;
        int labelScale = ch >= 2 * BitmapFont.Height(2) ? 2 : 1;
        int labelWidth = rows.Count == 0 ? 0 : rows.Max(r => BitmapFont.Width(r.Label, labelScale)) + 2 * Gap;
        int titleHeight = Title is null ? 0 : BitmapFont.Height(2) + 2 * Gap;
        int headerHeight = BitmapFont.Height(headerScale) + 2 * Gap;
        bool legends = Columns.Any(c => c.Legend);
        int legendHeight = legends ? 10 + Gap + BitmapFont.Height(1) + 2 * Gap : 0;
        int gridWidth = labelWidth + Columns.Count * (cw + Gap) + Gap;
        int widthPx = Math.Max(gridWidth, Title is null ? 0 : BitmapFont.Width(Title, 2) + 2 * Gap);
        int heightPx = titleHeight + headerHeight + rows.Count * (ch + Gap) + legendHeight + Gap;
        var image = new RgbImage(widthPx, heightPx);
        image.Fill(0, 0, widthPx, heightPx, Background);

        if (Title is not null) BitmapFont.Draw(image, Title, Gap, Gap, 2, Ink);
        int Left(int col) => labelWidth + Gap + col * (cw + Gap);
        for (int col = 0; col < Columns.Count; col++)
        {
            string text = Columns[col].Header;
            int scale = BitmapFont.Width(text, headerScale) <= cw ? headerScale : 1;
            BitmapFont.Draw(image, text, Left(col) + Math.Max(0, (cw - BitmapFont.Width(text, scale)) / 2), titleHeight + Gap, scale, Ink);
        }
        int top = titleHeight + headerHeight;
        foreach (var (label, cells) in rows)
        {
            BitmapFont.Draw(image, label, Gap, top + (ch - BitmapFont.Height(labelScale)) / 2, labelScale, Ink);
            for (int col = 0; col < Columns.Count; col++)
                if (cells[col] is { } cell) DrawCell(image, cell, Columns[col], Left(col), top);
            top += ch + Gap;
        }
        if (legends)
            for (int col = 0; col < Columns.Count; col++)
            {
                var c = Columns[col];
                if (!c.Legend) continue;
                for (int x = 0; x < cw; x++)
                {
                    byte v = (byte)Math.Round(255.0 * x / Math.Max(1, cw - 1));
                    image.Fill(Left(col) + x, top, 1, 10, (v, v, v));
                }
                int textTop = top + 10 + Gap;
                string low = Number(c.Black), high = Number(c.White);
                BitmapFont.Draw(image, low, Left(col), textTop, 1, Ink);
                BitmapFont.Draw(image, high, Left(col) + cw - BitmapFont.Width(high, 1), textTop, 1, Ink);
            }
        return image;
    }

    /// <summary>Draws and writes the grid as PNG.</summary>
    public void WritePng(string path) => Render().WritePng(path);

    /// <summary>A legend value: three significant digits.</summary>
    public static string Number(float v) => v.ToString("G3", CultureInfo.InvariantCulture);

    private void DrawCell(RgbImage image, float[] cell, GridColumn column, int left, int top)
    {
        int plane = height * width;
        if (cell.Length < channels * plane) throw new ArgumentException($"a cell needs {channels * plane} values but got {cell.Length}");
        float span = column.White - column.Black;
        byte Byte(float v) => float.IsNaN(v) ? (byte)0
            : (byte)Math.Round(Math.Clamp((v - column.Black) / (span == 0 ? 1 : span), 0f, 1f) * 255f);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                int at = y * width + x;
                byte r = Byte(cell[at]);
                byte g = channels == 3 ? Byte(cell[at + plane]) : r, b = channels == 3 ? Byte(cell[at + 2 * plane]) : r;
                image.Fill(left + x * Scale, top + y * Scale, Scale, Scale, (r, g, b));
            }
    }
}

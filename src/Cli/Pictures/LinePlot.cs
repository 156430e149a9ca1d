using System.Globalization;

namespace PosteriorGpu.Cli;

/// <summary>One curve of a <see cref="LinePlot"/>: points joined by lines, each marked by a square.</summary>
internal sealed record PlotSeries(string Name, IReadOnlyList<double> X, IReadOnlyList<double> Y, (byte R, byte G, byte B) Colour);

/// <summary>A horizontal dashed line across a <see cref="LinePlot"/> (a baseline such as DPS alone).</summary>
internal sealed record PlotBaseline(string Name, double Y, (byte R, byte G, byte B) Colour);

/// <summary>
/// A small line chart drawn into an <see cref="RgbImage"/> with the project's <see cref="BitmapFont"/>, for the study
/// figures (no plotting library or system font needed): a framed panel, the title above, the x axis linear or
/// logarithmic, the axis ranges written at the ends, the series as lines with square markers, the baselines dashed,
/// and a legend under the panel.
/// </summary>
internal sealed class LinePlot
{
    /// <summary>Inner margins in pixels around the data (so markers on the range's ends stay inside the frame).</summary>
    private const int Pad = 8;

    /// <summary>The panel's title.</summary>
    public required string Title { get; init; }

    /// <summary>The x axis' name.</summary>
    public required string XLabel { get; init; }

    /// <summary>Whether x is drawn on a log10 scale (all x must be positive).</summary>
    public bool LogX { get; init; }

    /// <summary>The curves.</summary>
    public IReadOnlyList<PlotSeries> Series { get; init; } = [];

    /// <summary>The dashed baselines.</summary>
    public IReadOnlyList<PlotBaseline> Baselines { get; init; } = [];

    /// <summary>Height of the text rows above and below the frame at <paramref name="scale"/>, in pixels.</summary>
    public static int TextRow(int scale) => BitmapFont.Height(scale) + 2 * scale + 2;

    /// <summary>Draws the panel into the rectangle (title row, frame, range row, legend rows).</summary>
    public void Draw(RgbImage image, int left, int top, int width, int height, int scale, (byte R, byte G, byte B) ink)
    {
        int row = TextRow(scale);
        int legendRows = Series.Count + Baselines.Count;
        int frameTop = top + row, frameHeight = height - row * (2 + legendRows);
        if (frameHeight < 4 * Pad || width < 4 * Pad) throw new ArgumentException($"plot '{Title}': {width} x {height} px is too small");
        BitmapFont.Draw(image, Title, left, top, scale, ink);
        Frame(image, left, frameTop, width, frameHeight, ink);

        var xs = Series.SelectMany(s => s.X).ToArray();
        var ys = Series.SelectMany(s => s.Y).Concat(Baselines.Select(b => b.Y)).Where(double.IsFinite).ToArray();
        if (xs.Length == 0 || ys.Length == 0) return;
        if (LogX && xs.Any(x => !(x > 0))) throw new ArgumentException($"plot '{Title}': a log x axis needs positive x");
        double Tx(double x) => LogX ? Math.Log10(x) : x;
        double x0 = xs.Min(Tx), x1 = xs.Max(Tx), y0 = ys.Min(), y1 = ys.Max();
        if (x1 == x0) { x0 -= 0.5; x1 += 0.5; }
        if (y1 == y0) { y0 -= Math.Max(1e-9, Math.Abs(y0) * 0.05); y1 += Math.Max(1e-9, Math.Abs(y1) * 0.05); }
        int Px(double x) => left + Pad + (int)Math.Round((Tx(x) - x0) / (x1 - x0) * (width - 2 * Pad - 1));
        int Py(double y) => frameTop + frameHeight - 1 - Pad - (int)Math.Round((y - y0) / (y1 - y0) * (frameHeight - 2 * Pad - 1));

        foreach (var b in Baselines)
            for (int x = left + 1; x < left + width - 1; x++)
                if ((x - left) / (3 * scale) % 2 == 0) Thick(image, x, Py(b.Y), scale, b.Colour);
        foreach (var s in Series)
        {
            for (int i = 0; i + 1 < s.X.Count; i++)
                if (double.IsFinite(s.Y[i]) && double.IsFinite(s.Y[i + 1]))
                    Line(image, Px(s.X[i]), Py(s.Y[i]), Px(s.X[i + 1]), Py(s.Y[i + 1]), scale, s.Colour);
            for (int i = 0; i < s.X.Count; i++)
                if (double.IsFinite(s.Y[i])) image.Fill(Px(s.X[i]) - 2 * scale, Py(s.Y[i]) - 2 * scale, 4 * scale + 1, 4 * scale + 1, s.Colour);
        }

        // The y range at the frame's top-left and bottom-left corners, the x range under the frame.
        BitmapFont.Draw(image, Number(y1), left + 2 * scale, frameTop + 2 * scale, scale, ink);
        BitmapFont.Draw(image, Number(y0), left + 2 * scale, frameTop + frameHeight - BitmapFont.Height(scale) - 2 * scale, scale, ink);
        int below = frameTop + frameHeight + 2 * scale;
        string lo = Number(LogX ? Math.Pow(10, x0) : x0), hi = Number(LogX ? Math.Pow(10, x1) : x1);
        BitmapFont.Draw(image, lo, left, below, scale, ink);
        BitmapFont.Draw(image, hi, left + width - BitmapFont.Width(hi, scale), below, scale, ink);
        string axis = XLabel + (LogX ? " (LOG)" : "");
        BitmapFont.Draw(image, axis, left + (width - BitmapFont.Width(axis, scale)) / 2, below, scale, ink);

        int legendTop = below + row;
        foreach (var (name, colour, dashed) in Series.Select(s => (s.Name, s.Colour, false)).Concat(Baselines.Select(b => (b.Name, b.Colour, true))))
        {
            int mid = legendTop + BitmapFont.Height(scale) / 2;
            for (int x = 0; x < 8 * scale; x++)
                if (!dashed || x / (2 * scale) % 2 == 0) Thick(image, left + x, mid, scale, colour);
            BitmapFont.Draw(image, name, left + 10 * scale, legendTop, scale, ink);
            legendTop += row;
        }
    }

    /// <summary>A value as the axis labels write it (three significant digits).</summary>
    public static string Number(double v) => v.ToString("G3", CultureInfo.InvariantCulture);

    private static void Frame(RgbImage image, int left, int top, int width, int height, (byte R, byte G, byte B) ink)
    {
        image.Fill(left, top, width, 1, ink);
        image.Fill(left, top + height - 1, width, 1, ink);
        image.Fill(left, top, 1, height, ink);
        image.Fill(left + width - 1, top, 1, height, ink);
    }

    private static void Thick(RgbImage image, int x, int y, int scale, (byte R, byte G, byte B) colour) =>
        image.Fill(x - scale / 2, y - scale / 2, Math.Max(1, scale), Math.Max(1, scale), colour);

    /// <summary>Bresenham's line, <paramref name="scale"/> pixels thick.</summary>
    private static void Line(RgbImage image, int xa, int ya, int xb, int yb, int scale, (byte R, byte G, byte B) colour)
    {
        int dx = Math.Abs(xb - xa), dy = -Math.Abs(yb - ya), sx = xa < xb ? 1 : -1, sy = ya < yb ? 1 : -1, err = dx + dy;
        while (true)
        {
            Thick(image, xa, ya, scale, colour);
            if (xa == xb && ya == yb) return;
            int e2 = 2 * err;
            if (e2 >= dy) { err += dy; xa += sx; }
            if (e2 <= dx) { err += dx; ya += sy; }
        }
    }
}

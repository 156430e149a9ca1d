namespace PosteriorGpu.Cli;

/// <summary>
/// A 5 x 7 pixel font for the labels on the pictures the command writes (column headers, row labels, legends), drawn
/// by the project so that no system font (fontconfig, a font file) is needed on a bare machine. Upper case, digits and
/// a little punctuation; lower case draws as upper case; other characters draw as a box. Each glyph is seven rows of
/// five bits, the high bit on the left.
/// </summary>
internal static class BitmapFont
{
    /// <summary>Glyph width and height in font pixels (before scaling).</summary>
    public const int GlyphWidth = 5, GlyphHeight = 7;

    /// <summary>Font pixels from one glyph's left edge to the next one's (one column of space).</summary>
    public const int Advance = GlyphWidth + 1;

    private static readonly Dictionary<char, byte[]> Glyphs = new()
    {
        [' '] = [0, 0, 0, 0, 0, 0, 0],
        ['A'] = [0b01110, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001],
        ['B'] = [0b11110, 0b10001, 0b10001, 0b11110, 0b10001, 0b10001, 0b11110],
        ['C'] = [0b01110, 0b10001, 0b10000, 0b10000, 0b10000, 0b10001, 0b01110],
        ['D'] = [0b11110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b11110],
        ['E'] = [0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b11111],
        ['F'] = [0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b10000],
        ['G'] = [0b01110, 0b10001, 0b10000, 0b10111, 0b10001, 0b10001, 0b01111],
        ['H'] = [0b10001, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001],
        ['I'] = [0b01110, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110],
        ['J'] = [0b00111, 0b00010, 0b00010, 0b00010, 0b00010, 0b10010, 0b01100],
        ['K'] = [0b10001, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010, 0b10001],
        ['L'] = [0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b11111],
        ['M'] = [0b10001, 0b11011, 0b10101, 0b10101, 0b10001, 0b10001, 0b10001],
        ['N'] = [0b10001, 0b10001, 0b11001, 0b10101, 0b10011, 0b10001, 0b10001],
        ['O'] = [0b01110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110],
        ['P'] = [0b11110, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000, 0b10000],
        ['Q'] = [0b01110, 0b10001, 0b10001, 0b10001, 0b10101, 0b10010, 0b01101],
        ['R'] = [0b11110, 0b10001, 0b10001, 0b11110, 0b10100, 0b10010, 0b10001],
        ['S'] = [0b01111, 0b10000, 0b10000, 0b01110, 0b00001, 0b00001, 0b11110],
        ['T'] = [0b11111, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100],
        ['U'] = [0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110],
        ['V'] = [0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100],
        ['W'] = [0b10001, 0b10001, 0b10001, 0b10101, 0b10101, 0b10101, 0b01010],
        ['X'] = [0b10001, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0b10001],
        ['Y'] = [0b10001, 0b10001, 0b10001, 0b01010, 0b00100, 0b00100, 0b00100],
        ['Z'] = [0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b11111],
        ['0'] = [0b01110, 0b10001, 0b10011, 0b10101, 0b11001, 0b10001, 0b01110],
        ['1'] = [0b00100, 0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110],
        ['2'] = [0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b01000, 0b11111],
        ['3'] = [0b11111, 0b00010, 0b00100, 0b00010, 0b00001, 0b10001, 0b01110],
        ['4'] = [0b00010, 0b00110, 0b01010, 0b10010, 0b11111, 0b00010, 0b00010],
        ['5'] = [0b11111, 0b10000, 0b11110, 0b00001, 0b00001, 0b10001, 0b01110],
        ['6'] = [0b00110, 0b01000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110],
        ['7'] = [0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b01000, 0b01000],
        ['8'] = [0b01110, 0b10001, 0b10001, 0b01110, 0b10001, 0b10001, 0b01110],
        ['9'] = [0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00010, 0b01100],
        ['.'] = [0, 0, 0, 0, 0, 0b01100, 0b01100],
        [','] = [0, 0, 0, 0, 0b01100, 0b00100, 0b01000],
        [':'] = [0, 0b01100, 0b01100, 0, 0b01100, 0b01100, 0],
        ['-'] = [0, 0, 0, 0b11111, 0, 0, 0],
        ['+'] = [0, 0b00100, 0b00100, 0b11111, 0b00100, 0b00100, 0],
        ['='] = [0, 0, 0b11111, 0, 0b11111, 0, 0],
        ['/'] = [0b00001, 0b00010, 0b00010, 0b00100, 0b01000, 0b01000, 0b10000],
        ['('] = [0b00010, 0b00100, 0b01000, 0b01000, 0b01000, 0b00100, 0b00010],
        [')'] = [0b01000, 0b00100, 0b00010, 0b00010, 0b00010, 0b00100, 0b01000],
        ['#'] = [0b01010, 0b01010, 0b11111, 0b01010, 0b11111, 0b01010, 0b01010],
        ['%'] = [0b11000, 0b11001, 0b00010, 0b00100, 0b01000, 0b10011, 0b00011],
        ['_'] = [0, 0, 0, 0, 0, 0, 0b11111],
    };

    private static readonly byte[] Box = [0b11111, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b11111];

    /// <summary>The glyph's rows for <paramref name="c"/> (lower case as upper case).</summary>
    public static byte[] Glyph(char c) =>
        Glyphs.TryGetValue(c, out var g) ? g : Glyphs.TryGetValue(char.ToUpperInvariant(c), out g) ? g : Box;

    /// <summary>Width in pixels of <paramref name="text"/> at <paramref name="scale"/> (no trailing space).</summary>
    public static int Width(string text, int scale) => text.Length == 0 ? 0 : (text.Length * Advance - 1) * scale;

    /// <summary>Height in pixels at <paramref name="scale"/>.</summary>
    public static int Height(int scale) => GlyphHeight * scale;

    /// <summary>Draws <paramref name="text"/> with its top-left corner at (<paramref name="left"/>, <paramref name="top"/>),
    /// each font pixel a <paramref name="scale"/> x <paramref name="scale"/> square; pixels outside the image are skipped.</summary>
    public static void Draw(RgbImage image, string text, int left, int top, int scale, (byte R, byte G, byte B) colour)
    {
        for (int k = 0; k < text.Length; k++)
        {
            var glyph = Glyph(text[k]);
            int x0 = left + k * Advance * scale;
            for (int row = 0; row < GlyphHeight; row++)
                for (int col = 0; col < GlyphWidth; col++)
                    if ((glyph[row] >> (GlyphWidth - 1 - col) & 1) != 0)
                        image.Fill(x0 + col * scale, top + row * scale, scale, scale, colour);
        }
    }
}

using NUnit.Framework;
using PosteriorGpu.Cli;
using PosteriorGpu.Models.IO;

namespace PosteriorGpu.Tests.Cli;

public class EpsCommandTests
{
    private static (int Code, string Out, string Err) Run(params string[] args) => CliRun.Run(args);

    [Test]
    public void Eps_OnTheFixture_WritesDiffusersOutput()
    {
        string folder = Fixtures.Path("diffusers-unet-tiny");
        string output = Path.Combine(Path.GetTempPath(), $"posteriorgpu-eps-{Guid.NewGuid():N}.npy");
        try
        {
            var (code, stdout, stderr) = Run("eps", "--model", folder, "--x", Path.Combine(folder, "x.npy"),
                "--t", Path.Combine(folder, "t.npy"), "--out", output, "--device", "cpu");
            Assert.That(code, Is.EqualTo(0), stderr);
            Assert.That(stdout, Does.Contain("wrote"));
            var expected = Npy.Read(Path.Combine(folder, "eps.npy")).ToFloat32();
            TestData.AssertClose(Npy.Read(output).ToFloat32(), expected, 1e-4, "posteriorgpu eps vs diffusers");
        }
        finally
        {
            File.Delete(output);
        }
    }

    [Test]
    public void Errors_AreOneLineWithExitCodes()
    {
        var (code, _, stderr) = Run("eps", "--model", "/nonexistent/model", "--x", "x.npy", "--t", "t.npy", "--out", "o.npy", "--device", "cpu");
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.StartWith("posteriorgpu: error: "));
        Assert.That(stderr.TrimEnd().Split('\n'), Has.Length.EqualTo(1), "one line, no stack trace");

        (code, _, stderr) = Run("eps", "--modle", "m");
        Assert.That(code, Is.EqualTo(2));
        Assert.That(stderr, Does.Contain("--modle"));

        (code, _, stderr) = Run("frobnicate");
        Assert.That(code, Is.EqualTo(2));
        Assert.That(stderr, Does.Contain("frobnicate"));

        (code, _, stderr) = Run("eps", "--model", "m", "--x", "x", "--t", "t", "--out", "o", "--device", "tpu");
        Assert.That(code, Is.EqualTo(2), "an unknown device kind is a usage error");
        Assert.That(stderr, Does.Contain("tpu"));

        (code, _, stderr) = Run("eps", "--model", "/nonexistent/model", "--device", "cpu");
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("model folder /nonexistent/model not found"));

        (code, _, stderr) = Run("eps", "--t", "abc", "--device", "cpu");
        Assert.That(code, Is.EqualTo(2));
        Assert.That(stderr, Does.Contain("--t"));
    }
}

public class SampleCommandTests
{
    [Test]
    public void Sample_Ddim10_FromTheFixtureNoise_MatchesDiffusers()
    {
        string folder = Fixtures.Path("diffusers-unet-tiny");
        string output = Path.Combine(Path.GetTempPath(), $"posteriorgpu-sample-{Guid.NewGuid():N}.npy");
        try
        {
            var stdout = new StringWriter();
            var stderr = new StringWriter();
            int code = CliApp.Run(["sample", "--model", folder, "--sampler", "ddim", "--steps", "10",
                "--xT", Path.Combine(folder, "ddim_xT.npy"), "--out", output, "--device", "cpu"], stdout, stderr);
            Assert.That(code, Is.EqualTo(0), stderr.ToString());
            Assert.That(stderr.ToString(), Does.Contain("100% 10/10 steps"));
            Assert.That(File.Exists(Path.ChangeExtension(output, ".png")), "the picture beside the samples by default");
            var expected = Npy.Read(Path.Combine(folder, "ddim_x0.npy")).ToFloat32();
            TestData.AssertClose(Npy.Read(output).ToFloat32(), expected, 1e-4, "posteriorgpu sample (ddim) vs diffusers");
        }
        finally
        {
            File.Delete(output);
            File.Delete(Path.ChangeExtension(output, ".png"));
        }
    }

    [Test]
    public void Sample_WithGraphReplay_OnTheCpu_SaysWhyItLaunchedPlainly_AndWritesTheSameSamples()
    {
        string folder = Fixtures.Path("diffusers-unet-tiny");
        string dir = Directory.CreateTempSubdirectory("sample-graph-").FullName;
        try
        {
            float[] Samples(params string[] extra)
            {
                string output = Path.Combine(dir, $"s{extra.Length}.npy");
                var stdout = new StringWriter();
                var stderr = new StringWriter();
                int code = CliApp.Run(["sample", "--model", folder, "--sampler", "ddpm", "--steps", "20", "--batch", "2", "--seed", "4",
                    "--out", output, "--device", "cpu", .. extra], stdout, stderr);
                Assert.That(code, Is.EqualTo(0), stderr.ToString());
                if (extra.Length > 0)
                    Assert.That(stdout.ToString(), Does.Contain("graph replay: 0 of 20 steps replayed").And.Contain("CUDA"));
                else
                    Assert.That(stdout.ToString(), Does.Not.Contain("graph replay"));
                return Npy.Read(output).ToFloat32();
            }
            Assert.That(Samples("--graph-replay"), Is.EqualTo(Samples()));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void Sample_UnknownSampler_IsAUsageError()
    {
        var stderr = new StringWriter();
        int code = CliApp.Run(["sample", "--model", Fixtures.Path("diffusers-unet-tiny"), "--sampler", "heun", "--out", "x.npy", "--device", "cpu"], new StringWriter(), stderr);
        Assert.That(code, Is.EqualTo(2));
        Assert.That(stderr.ToString(), Does.Contain("heun").And.Contain("ddim"));
    }

    [Test]
    public void Sample_WithTheDefaults_WritesUnderOut_NotTheCurrentFolder()
    {
        // The defaults, run from an empty folder: the shipped model (found above the executable), out/sample/samples.npy and .png.
        string cwd = Directory.CreateTempSubdirectory("sample-cwd-").FullName;
        string previous = Environment.CurrentDirectory;
        try
        {
            Environment.CurrentDirectory = cwd;
            var stderr = new StringWriter();
            int code = CliApp.Run(["sample", "--steps", "1", "--batch", "2", "--device", "cpu"], new StringWriter(), stderr);
            Assert.That(code, Is.EqualTo(0), stderr.ToString());
            Assert.That(Directory.GetFiles(cwd), Is.Empty, "nothing in the current folder itself");
            Assert.That(File.Exists(Path.Combine(cwd, "out", "sample", "samples.npy")));
            using var png = SkiaSharp.SKBitmap.Decode(Path.Combine(cwd, "out", "sample", "samples.png"));
            Assert.That(png.Width, Is.GreaterThanOrEqualTo(2 * 128), "32-pixel samples upscaled to 128");
        }
        finally
        {
            Environment.CurrentDirectory = previous;
            Directory.Delete(cwd, recursive: true);
        }
    }
}

public class PngGridTests
{
    [Test]
    public void Grid_IsUpscaledAndLabelled()
    {
        string path = Path.Combine(Path.GetTempPath(), $"posteriorgpu-grid-{Guid.NewGuid():N}.png");
        try
        {
            // 3 grey 4 x 5 images, 2 per row: upscaled 8 x (the cap) with a title, column headers and row labels.
            var images = new float[3 * 4 * 5];
            images[0] = 1f;           // image 0, pixel (0, 0): white
            images[20] = -1f;         // image 1, pixel (0, 0): black
            images[40 + 6] = 0f;      // image 2, pixel (1, 1): mid grey
            PngGrid.Write(path, images, [3, 1, 4, 5], "title", columns: 2);
            using var png = SkiaSharp.SKBitmap.Decode(path);
            var grid = new LabelledGrid(1, 4, 5) { Columns = [new("+0"), new("+1")] };
            Assert.That(grid.Scale, Is.EqualTo(LabelledGrid.MaxScale));
            // Find image 0's top-left pixel: the first white pixel scanning the rows below the title and headers.
            int top = -1, left = -1;
            for (int y = 30; y < png.Height && top < 0; y++)
                for (int x = 0; x < png.Width; x++)
                    if (png.GetPixel(x, y).Red == 255 && png.GetPixel(x + 7, y + 7).Red == 255) { top = y; left = x; break; }
            Assert.That(top, Is.GreaterThan(0), "image 0 drawn");
            Assert.That(png.GetPixel(left + 8, top).Red, Is.EqualTo(128), "image 0's pixel (1, 0), a 0, 8 pixels to the right");
            Assert.That(png.GetPixel(left + 5 * 8 + 4, top).Red, Is.EqualTo(0), "image 1's (0, 0) is black");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    public void Font_DrawsTheGlyphs()
    {
        var image = new RgbImage(40, 20);
        BitmapFont.Draw(image, "T1", 1, 2, 2, (255, 255, 255));
        // 'T' at scale 2: the top row is five lit font pixels (10 image pixels), the stem is the middle column.
        for (int x = 1; x < 11; x++) Assert.That(image[x, 2].R, Is.EqualTo(255), $"T's bar at x = {x}");
        Assert.That(image[1, 4].R, Is.EqualTo(0), "below the bar's left end");
        Assert.That(image[5, 14].R, Is.EqualTo(255), "T's stem");
        // '1' starts one advance (6 font pixels = 12 image pixels) later; its base is three pixels wide.
        Assert.That(image[13 + 2 * 1, 2 + 2 * 6].R, Is.EqualTo(255));
        Assert.That(image[13, 2].R, Is.EqualTo(0));
        Assert.That(BitmapFont.Width("T1", 2), Is.EqualTo(22));
        Assert.That(BitmapFont.Glyph('t'), Is.SameAs(BitmapFont.Glyph('T')), "lower case draws as upper case");
        Assert.That(BitmapFont.Glyph('~'), Is.Not.SameAs(BitmapFont.Glyph(' ')), "unknown characters draw as a box");
    }

    [Test]
    public void StdColumn_HasItsOwnScaleAndALegend()
    {
        var grid = new LabelledGrid(1, 2, 2) { Columns = [new("image"), new("std", 0, 0.5f, Legend: true)], Scale = 40 };
        grid.AddRow("#0", [-1f, 1f, 0f, 0f], [0f, 0.5f, 0.25f, 1f]);
        var image = grid.Render();
        // Cells: 80 x 80 pixels. The std cell's 0.5 (its max) is white, 0.25 mid grey, above max clamps to white.
        int cellTop = 8 + 14, stdLeft = -1;
        for (int x = image.Width - 1; x > 0; x--)
            if (image[x, cellTop + 60].R == 255 && image[x - 1, cellTop + 60].R == 255) { stdLeft = x - 79; break; }
        Assert.That(stdLeft, Is.GreaterThan(80));
        Assert.That(image[stdLeft + 50, cellTop + 10].R, Is.EqualTo(255), "0.5 = white");
        Assert.That(image[stdLeft + 10, cellTop + 10].R, Is.EqualTo(0), "0 = black");
        Assert.That(image[stdLeft + 10, cellTop + 50].R, Is.EqualTo(128), "0.25 = mid grey");
        // The legend: a black-to-white bar under the std column, then its end values as text.
        int barTop = cellTop + 80 + 4;
        Assert.That(image[stdLeft, barTop + 5].R, Is.EqualTo(0));
        Assert.That(image[stdLeft + 79, barTop + 5].R, Is.EqualTo(255));
        var legendText = Enumerable.Range(stdLeft, 80).SelectMany(x => Enumerable.Range(barTop + 14, 7).Select(y => image[x, y].R)).ToList();
        Assert.That(legendText.Count(v => v == LabelledGrid.Ink.Item1), Is.GreaterThan(10), "the numbers 0 and 0.5 are written");
    }
}

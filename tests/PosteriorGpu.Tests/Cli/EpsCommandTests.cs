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
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr, Does.Contain("tpu"));
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
            int code = CommandLine.Run(["sample", "--model", folder, "--sampler", "ddim", "--steps", "10",
                "--xT", Path.Combine(folder, "ddim_xT.npy"), "--out", output, "--device", "cpu"], stdout, stderr);
            Assert.That(code, Is.EqualTo(0), stderr.ToString());
            Assert.That(stderr.ToString(), Does.Contain("step 10/10"));
            var expected = Npy.Read(Path.Combine(folder, "ddim_x0.npy")).ToFloat32();
            TestData.AssertClose(Npy.Read(output).ToFloat32(), expected, 1e-4, "posteriorgpu sample (ddim) vs diffusers");
        }
        finally
        {
            File.Delete(output);
        }
    }

    [Test]
    public void Sample_UnknownSampler_IsAUsageError()
    {
        var stderr = new StringWriter();
        int code = CommandLine.Run(["sample", "--model", Fixtures.Path("diffusers-unet-tiny"), "--sampler", "heun", "--out", "x.npy", "--device", "cpu"], new StringWriter(), stderr);
        Assert.That(code, Is.EqualTo(1));
        Assert.That(stderr.ToString(), Does.Contain("heun").And.Contain("ddim"));
    }
}

public class PngGridTests
{
    [Test]
    public void Grid_HasTheLayoutAndValues()
    {
        string path = Path.Combine(Path.GetTempPath(), $"posteriorgpu-grid-{Guid.NewGuid():N}.png");
        try
        {
            // 3 grey 4x5 images, 2 per row: 2 * 5 + 3 * 2 = 16 wide, 2 * 4 + 3 * 2 = 14 high.
            var images = new float[3 * 4 * 5];
            images[0] = 1f;           // image 0, pixel (0, 0): white
            images[20] = -1f;         // image 1, pixel (0, 0): black
            images[40 + 6] = 0f;      // image 2, pixel (1, 1): mid grey
            PngGrid.Write(path, images, [3, 1, 4, 5], columns: 2);
            using var png = SkiaSharp.SKBitmap.Decode(path);
            Assert.That((png.Width, png.Height), Is.EqualTo((16, 14)));
            Assert.That(png.GetPixel(2, 2).Red, Is.EqualTo(255));
            Assert.That(png.GetPixel(2 + 5 + 2, 2).Red, Is.EqualTo(0));
            Assert.That(png.GetPixel(2 + 1, 2 + 4 + 2 + 1).Red, Is.EqualTo(128));
            Assert.That(png.GetPixel(0, 0).Red, Is.EqualTo(32), "gap colour");
        }
        finally
        {
            File.Delete(path);
        }
    }
}

using NUnit.Framework;
using PosteriorGpu.Models.IO;
using PosteriorGpu.Tests.Cli;

namespace PosteriorGpu.Tests.Api;

/// <summary>Loading a score model for the embedding API, and the README's example kept verbatim.</summary>
public class DiffusionModelTests
{
    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "PosteriorGpu.sln"))) return dir.FullName;
        Assert.Fail("no PosteriorGpu.sln above the test directory");
        return "";
    }

    [Test]
    public void Load_ReadsTheFolder_WithAndWithoutGradients()
    {
        var dev = TestDevices.Cpu;
        string dir = Directory.CreateTempSubdirectory("model-").FullName;
        try
        {
            RandomUNet.Write(RandomUNet.Tiny32, dir);
            long live = dev.LiveBuffers;
            using (var model = DiffusionModel.Load(dev, dir))
            {
                Assert.That((model.Channels, model.Height, model.Width, model.ImageLength), Is.EqualTo((1, 32, 32, 1024)));
                Assert.That(model.HasGradients, Is.False);
                Assert.That(model.Schedule.NumTrainTimesteps, Is.EqualTo(1000), "diffusers' DDPMScheduler default without scheduler_config.json");
            }
            using (var model = DiffusionModel.Load(dev, dir, withGradients: true))
                Assert.That(model.HasGradients, Is.True);
            Assert.That(dev.LiveBuffers, Is.EqualTo(live), "Dispose frees the weights");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void Load_ExplainsMissingAndUnfitFolders()
    {
        var dev = TestDevices.Cpu;
        string dir = Directory.CreateTempSubdirectory("model-").FullName;
        try
        {
            Assert.That(() => DiffusionModel.Load(dev, Path.Combine(dir, "nothing")), Throws.InstanceOf<FileNotFoundException>().With.Message.Contains("nothing"));
            Assert.That(() => DiffusionModel.Load(dev, dir), Throws.InstanceOf<FileNotFoundException>().With.Message.Contains("config.json"));
            RandomUNet.Write(RandomUNet.Tiny32 with { OutChannels = 2 }, dir);
            long live = dev.LiveBuffers;
            Assert.That(() => DiffusionModel.Load(dev, dir), Throws.InstanceOf<CheckpointFormatException>().With.Message.Contains("out_channels 2"));
            Assert.That(dev.LiveBuffers, Is.EqualTo(live), "a rejected model frees what it loaded");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void Readme_ShowsTheInpaintingExampleVerbatim()
    {
        string root = RepositoryRoot();
        string example = File.ReadAllText(Path.Combine(root, "examples", "Inpainting", "Program.cs"));
        string readme = File.ReadAllText(Path.Combine(root, "README.md"));
        Assert.That(readme, Does.Contain("## Use it from C#"));
        Assert.That(readme, Does.Contain("```csharp\n" + example + "```"), "README's code block must be examples/Inpainting/Program.cs verbatim");
    }
}

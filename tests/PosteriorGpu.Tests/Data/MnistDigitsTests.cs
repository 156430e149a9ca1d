using NUnit.Framework;
using PosteriorGpu.Cli;
using PosteriorGpu.Models.Data;
using PosteriorGpu.Models.IO;

namespace PosteriorGpu.Tests.Data;

public class MnistDigitsTests
{
    private static string Committed()
    {
        for (var d = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); d is not null; d = d.Parent)
        {
            string p = Path.Combine(d.FullName, "data", "mnist-test-digits.npy");
            if (File.Exists(p)) return p;
        }
        Assert.Fail("data/mnist-test-digits.npy not found above " + TestContext.CurrentContext.TestDirectory);
        return null!;
    }

    [Test]
    public void CommittedDigits_AreSixteenPaddedImagesInMinusOneOne()
    {
        var a = Npy.Read(Committed());
        Assert.That((a.DType, a.Shape), Is.EqualTo(("<f4", new[] { 16, 1, 32, 32 })));
        var x = a.ToFloat32();
        Assert.That(x, Has.All.InRange(-1f, 1f));
        for (int n = 0; n < 16; n++)
        {
            var img = x.AsSpan(n * 1024, 1024);
            for (int i = 0; i < 1024; i++)
                if (i / 32 is < 2 or >= 30 || i % 32 is < 2 or >= 30)
                    Assert.That(img[i], Is.EqualTo(-1f), $"image {n}: padding pixel {i}");
            // A digit has ink: a "1" has about 40 pixels above mid-grey, a blank canvas none.
            int ink = 0;
            foreach (float v in img) if (v > 0) ink++;
            Assert.That(ink, Is.GreaterThan(20), $"image {n} looks empty");
        }
    }

    [Test]
    public void CommittedDigits_AreTheDocumentedTestImages_WhenMnistIsFetched()
    {
        string folder = MnistFolder.Resolve();
        string images = Path.Combine(folder, MnistFolder.TestImages), labels = Path.Combine(folder, MnistFolder.TestLabels);
        if (!File.Exists(images) || !File.Exists(labels)) Assert.Ignore($"MNIST is not in {folder}; run tools/fetch-mnist");
        int[] indices = MnistExportCommand.ParseIndices(MnistExportCommand.TestDigitIndices, 10000);
        Assert.That(Npy.Read(Committed()).ToFloat32(), Is.EqualTo(MnistImages.Load(images).Gather(indices)));
        var l = MnistImages.LoadLabels(labels);
        Assert.That(indices.Select(i => (int)l[i]), Is.EqualTo(Enumerable.Range(0, 10).Concat(Enumerable.Range(0, 6))));
    }

    [Test]
    public void ParseIndices_TakesListsAndRanges()
    {
        Assert.That(MnistExportCommand.ParseIndices("3, 0-2,9", 10), Is.EqualTo(new[] { 3, 0, 1, 2, 9 }));
        foreach (string bad in new[] { "10", "-1", "2-1", "a", "1-x", "" })
            Assert.Throws<UsageException>(() => MnistExportCommand.ParseIndices(bad, 10), bad);
    }
}

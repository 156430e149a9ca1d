using NUnit.Framework;
using PosteriorGpu.Models.Classifier;
using PosteriorGpu.Models.Data;

namespace PosteriorGpu.Tests.Classifier;

/// <summary>The shipped models/mnist-classifier keeps its card's promise: at least 98.5 % on the MNIST test set
/// (skipped where MNIST has not been fetched with tools/fetch-mnist).</summary>
public class ShippedClassifierTests
{
    [Test]
    public void ReachesTheCardsTestAccuracy()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "PosteriorGpu.sln"))) dir = dir.Parent;
        if (dir is null) Assert.Ignore($"no PosteriorGpu.sln above {AppContext.BaseDirectory}");
        string folder = Path.Combine(dir.FullName, "models", "mnist-classifier");
        string images, labels;
        try
        {
            images = MnistFolder.File(MnistFolder.TestImages);
            labels = MnistFolder.File(MnistFolder.TestLabels);
        }
        catch (FileNotFoundException e)
        {
            Assert.Ignore($"MNIST not fetched (tools/fetch-mnist): {e.Message}");
            return;
        }
        var test = MnistImages.Load(images);
        var set = new LabelledImages(test.ToArray(0, test.Count), MnistImages.LoadLabels(labels), 1, MnistImages.Size, MnistImages.Size, 10);
        using var net = ImageClassifier.Load(TestDevices.Cpu, folder);
        double accuracy = ClassifierTrainer.Accuracy(net, set);
        TestContext.Out.WriteLine($"models/mnist-classifier: {accuracy:P2} on {set.Count} MNIST test images");
        Assert.That(accuracy, Is.GreaterThanOrEqualTo(0.985));
    }
}

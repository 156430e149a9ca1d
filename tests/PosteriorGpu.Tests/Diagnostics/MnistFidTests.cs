using NUnit.Framework;
using PosteriorGpu.Models.Classifier;
using PosteriorGpu.Samplers.Diagnostics;

namespace PosteriorGpu.Tests.Diagnostics;

public class MnistFidTests
{
    private static ClassifierConfig Tiny => new() { ImageSize = 8, InChannels = 1, ConvChannels = [4, 8], NormNumGroups = 2, Features = 6, NumClasses = 3 };

    [Test]
    public void Features_AreTheClassifiersPenultimateFeatures_InBatches()
    {
        using var net = ImageClassifier.Create(TestDevices.Cpu, Tiny, seed: 7, withGradients: false);
        var images = TestData.Random(7 * 64, 80);
        var batched = new MnistFid(net, batchSize: 3).Features(images);
        using var x = PosteriorGpu.Kernels.Tensors.Tensor.FromHost(TestDevices.Cpu, images, 7, 1, 8, 8);
        net.Forward(x);
        TestData.AssertClose(batched, net.Features.ToHost(), 1e-5, "features in batches of 3 vs one batch of 7");
    }

    [Test]
    public void Distance_IsSmallForTheSameDistribution_AndLargeForAnother()
    {
        using var net = ImageClassifier.Create(TestDevices.Cpu, Tiny, seed: 8, withGradients: false);
        var fid = new MnistFid(net);
        var a = TestData.Random(400 * 64, 81);
        var b = TestData.Random(400 * 64, 82);
        var shifted = TestData.Random(400 * 64, 83).Select(v => 0.5f * v + 0.6f).ToArray();
        double same = fid.Distance(a, b), other = fid.Distance(a, shifted);
        TestContext.Out.WriteLine($"fid same distribution {same:G4}, other distribution {other:G4}");
        Assert.That(fid.Distance(a, a), Is.EqualTo(0).Within(1e-9));
        Assert.That(other, Is.GreaterThan(20 * same));
        Assert.That(fid.Distance(a, fid.Statistics(b)), Is.EqualTo(same).Within(1e-12));
        Assert.Throws<ArgumentException>(() => fid.Features(new float[65]));
    }
}

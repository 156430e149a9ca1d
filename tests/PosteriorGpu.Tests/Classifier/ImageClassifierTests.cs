using NUnit.Framework;
using PosteriorGpu.Kernels.Activations;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.Classifier;
using PosteriorGpu.Models.IO;

namespace PosteriorGpu.Tests.Classifier;

public class ImageClassifierTests
{
    /// <summary>8 x 8 images, two convolutions, 6 features, 3 classes: small enough for finite differences.</summary>
    internal static ClassifierConfig Tiny => new() { ImageSize = 8, InChannels = 1, ConvChannels = [4, 8], NormNumGroups = 2, Features = 6, NumClasses = 3 };

    [Test]
    public void ParameterGradients_MatchFiniteDifferences()
    {
        var dev = TestDevices.Cpu;
        using var net = ImageClassifier.Create(dev, Tiny, seed: 3, withGradients: true);
        int n = 3;
        var images = TestData.Random(n * 64, 60);
        using var x = Tensor.FromHost(dev, images, n, 1, 8, 8);
        var dy = TestData.Random(n * 3, 61);
        using var dLogits = Tensor.FromHost(dev, dy, n, 3);
        net.Forward(x);
        net.Backward(dLogits);
        var gradient = net.Parameters.Gradients!.ToHost();
        var weights = net.Parameters.Values.ToHost();
        float[] Forward()
        {
            net.Parameters.Values.CopyFrom(weights);
            return net.Forward(x).ToHost();
        }
        Backward.Gradients.AssertMatchesFiniteDifferences("classifier parameters", Forward, weights, gradient, dy, eps: 3e-3f, tolerance: 1e-2);
    }

    [Test]
    public void Features_ArePenultimateLayer_AndBatchIndependent()
    {
        var dev = TestDevices.Cpu;
        using var net = ImageClassifier.Create(dev, Tiny, seed: 4, withGradients: false);
        var images = TestData.Random(5 * 64, 62);
        using var all = Tensor.FromHost(dev, images, 5, 1, 8, 8);
        var logits = net.Forward(all).ToHost();
        var features = net.Features.ToHost();
        Assert.That(net.Features.Shape, Is.EqualTo(new[] { 5, 6 }));
        // The head is linear in the features: logits = W f + b.
        var w = net.Parameters["head.weight"].Value.ToHost();
        var b = net.Parameters["head.bias"].Value.ToHost();
        for (int i = 0; i < 5; i++)
            for (int k = 0; k < 3; k++)
            {
                double s = b[k];
                for (int j = 0; j < 6; j++) s += w[k * 6 + j] * features[i * 6 + j];
                Assert.That(logits[i * 3 + k], Is.EqualTo(s).Within(1e-5));
            }
        using var one = Tensor.FromHost(dev, images.AsSpan(2 * 64, 64), 1, 1, 8, 8);
        net.Forward(one);
        TestData.AssertClose(net.Features.ToHost(), features.AsSpan(2 * 6, 6), 1e-5, "item 2 alone");
    }

    [Test]
    public void SaveLoad_RoundTrips()
    {
        var dev = TestDevices.Cpu;
        string folder = Path.Combine(Path.GetTempPath(), "pg-classifier-" + Guid.NewGuid().ToString("N"));
        try
        {
            using var net = ImageClassifier.Create(dev, Tiny, seed: 5, withGradients: false);
            net.Save(folder);
            using var loaded = ImageClassifier.Load(dev, folder);
            Assert.That(loaded.Config, Is.EqualTo(Tiny));
            using var x = Tensor.FromHost(dev, TestData.Random(2 * 64, 63), 2, 1, 8, 8);
            var a = net.Forward(x).ToHost();
            Assert.That(loaded.Forward(x).ToHost(), Is.EqualTo(a));
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, true);
        }
    }

    [Test]
    public void BadInputs_AreRejectedWithTheirNames()
    {
        var dev = TestDevices.Cpu;
        using var net = ImageClassifier.Create(dev, Tiny, seed: 6, withGradients: false);
        using var wrong = Tensor.Zeros(dev, 2, 1, 16, 16);
        Assert.That(Assert.Throws<ArgumentException>(() => net.Forward(wrong))!.Message, Does.Contain("[N, 1, 8, 8]"));
        using var dy = Tensor.Zeros(dev, 2, 3);
        Assert.Throws<InvalidOperationException>(() => net.Backward(dy));
        var bad = Tiny with { ConvChannels = [4, 6], NormNumGroups = 4 };
        Assert.That(Assert.Throws<CheckpointFormatException>(() => bad.Validate())!.Message, Does.Contain("conv_channels"));
        Assert.That(Assert.Throws<CheckpointFormatException>(() => (Tiny with { ImageSize = 10 }).Validate())!.Message, Does.Contain("image_size"));
    }
}

using NUnit.Framework;
using PosteriorGpu.Kernels.Activations;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Tests.Kernels;

public class SoftmaxCrossEntropyTests
{
    private static float[] Labels(int rows, int classes, int seed)
    {
        var rng = new System.Random(seed);
        return Enumerable.Range(0, rows).Select(_ => (float)rng.Next(classes)).ToArray();
    }

    [TestCase(1, 2)]
    [TestCase(7, 3)]
    [TestCase(130, 10)]
    [TestCase(3000, 10)]
    public void MatchesReference(int rows, int classes)
    {
        var dev = TestDevices.Cpu;
        var logits = TestData.Random(rows * classes, 50, 12f);
        var labels = Labels(rows, classes, 51);
        using var tLogits = Tensor.FromHost(dev, logits, rows, classes);
        using var tLabels = Tensor.FromHost(dev, labels, rows);
        using var tLoss = Tensor.Empty(dev, rows);
        using var tGrad = Tensor.Empty(dev, rows, classes);
        SoftmaxCrossEntropy.Run(tLogits, tLabels, 1f / rows, tLoss, tGrad);
        var loss = new float[rows];
        var grad = new float[rows * classes];
        SoftmaxCrossEntropy.Reference(logits, labels, classes, 1f / rows, loss, grad);
        // logsumexp - z_c cancels when a row is confident: compare in absolute terms (the logits are up to 12).
        Assert.That(TestData.MaxAbsError(tLoss.ToHost(), loss), Is.LessThan(1e-5), "loss");
        // softmax - 1 cancels the same way; the gradient's entries lie in [-1/N, 1/N].
        Assert.That(TestData.MaxAbsError(tGrad.ToHost(), grad), Is.LessThan(1e-6 / rows), "dLogits");
        SoftmaxCrossEntropy.Run(tLogits, tLabels, 1f / rows, tLoss, tLogits);
        Assert.That(TestData.MaxAbsError(tLogits.ToHost(), grad), Is.LessThan(1e-6 / rows), "dLogits in place");
    }

    [Test]
    public void Reference_MatchesClosedFormAndFiniteDifferences()
    {
        // Equal logits: the loss is log K and the gradient softmax - onehot = 1/K - [k = c].
        var loss = new float[1];
        var grad = new float[4];
        SoftmaxCrossEntropy.Reference(new float[4], [2f], 4, 1f, loss, grad);
        Assert.That(loss[0], Is.EqualTo(MathF.Log(4)).Within(1e-6));
        Assert.That(grad, Is.EqualTo(new[] { 0.25f, 0.25f, -0.75f, 0.25f }).Within(1e-6));

        int rows = 5, classes = 6;
        var logits = TestData.Random(rows * classes, 52, 3f);
        var labels = Labels(rows, classes, 53);
        var l = new float[rows];
        var g = new float[rows * classes];
        SoftmaxCrossEntropy.Reference(logits, labels, classes, 1f, l, g);
        // The loss summed over rows as a "forward" with cotangent 1.
        float[] Forward()
        {
            var li = new float[rows];
            SoftmaxCrossEntropy.Reference(logits, labels, classes, 1f, li, new float[rows * classes]);
            return [li.Sum()];
        }
        Backward.Gradients.AssertMatchesFiniteDifferences("softmax cross-entropy", Forward, logits, g, [1f], eps: 1e-2f, tolerance: 2e-3);
    }

    [Test]
    public void LargeLogits_StayFinite()
    {
        var dev = TestDevices.Cpu;
        using var logits = Tensor.FromHost(dev, [1000f, -1000f, 0f, 80f, 90f, 100f], 2, 3);
        using var labels = Tensor.FromHost(dev, [1f, 0f], 2);
        using var loss = Tensor.Empty(dev, 2);
        using var grad = Tensor.Empty(dev, 2, 3);
        SoftmaxCrossEntropy.Run(logits, labels, 1f, loss, grad);
        Assert.That(loss.ToHost(), Is.EqualTo(new[] { 2000f, 20f }).Within(1e-2));
        Assert.That(grad.ToHost().All(float.IsFinite), Is.True);
    }

    [Test]
    public void InvalidLabel_GivesNaNLoss()
    {
        var dev = TestDevices.Cpu;
        using var logits = Tensor.FromHost(dev, TestData.Random(9, 54), 3, 3);
        using var labels = Tensor.FromHost(dev, [0f, 3f, 1.5f], 3);
        using var loss = Tensor.Empty(dev, 3);
        using var grad = Tensor.Empty(dev, 3, 3);
        SoftmaxCrossEntropy.Run(logits, labels, 1f, loss, grad);
        var l = loss.ToHost();
        Assert.That(float.IsFinite(l[0]), Is.True);
        Assert.That(float.IsNaN(l[1]) && float.IsNaN(l[2]), Is.True, "labels 3 (>= K) and 1.5 (not an integer) must give NaN");
    }

    [Test]
    public void RejectsMismatchedShapes()
    {
        var dev = TestDevices.Cpu;
        using var logits = Tensor.Zeros(dev, 4, 3);
        using var labels = Tensor.Zeros(dev, 3);
        using var loss = Tensor.Zeros(dev, 4);
        using var grad = Tensor.Zeros(dev, 4, 3);
        var ex = Assert.Throws<ArgumentException>(() => SoftmaxCrossEntropy.Run(logits, labels, 1f, loss, grad));
        Assert.That(ex!.Message, Does.Contain("4 elements"));
        using var badGrad = Tensor.Zeros(dev, 3, 4);
        Assert.Throws<ArgumentException>(() => SoftmaxCrossEntropy.Run(logits, loss, 1f, loss, badGrad));
    }
}

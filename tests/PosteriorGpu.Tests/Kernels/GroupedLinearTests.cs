using NUnit.Framework;
using PosteriorGpu.Kernels.Gemm;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Tests.Kernels;

/// <summary>GroupedLinear (several nn.Linear layers on one input in one launch) against its reference and against
/// Linear run layer by layer, on awkward shapes: 1-row and odd layers, K of 1 and odd, batch 1 and 3, weights and
/// biases scattered through the buffer (a bias before its weight, gaps).</summary>
public class GroupedLinearTests
{
    /// <summary>Layers' rows; their weights and biases are placed with gaps, the second layer's bias before its weight.</summary>
    private static (GroupedLinearPlan.Layer[] Layers, int Length) Layout(int k, int[] rows)
    {
        var layers = new GroupedLinearPlan.Layer[rows.Length];
        int at = 3;
        for (int g = 0; g < rows.Length; g++)
        {
            if (g == 1)
            {
                layers[g] = new(at + rows[g] + 2, at, rows[g]);
                at += rows[g] + 2 + rows[g] * k + 5;
            }
            else
            {
                layers[g] = new(at, at + rows[g] * k + 1, rows[g]);
                at += rows[g] * k + 1 + rows[g] + 7;
            }
        }
        return (layers, at);
    }

    [TestCase(1, 1, new[] { 1 })]
    [TestCase(1, 5, new[] { 7, 1, 33 })]
    [TestCase(3, 64, new[] { 64, 128, 1, 65 })]
    [TestCase(3, 33, new[] { 2, 3 })]
    public void MatchesReferenceAndLinearPerLayer(int batch, int k, int[] rows)
    {
        var dev = TestDevices.Cpu;
        var (layers, length) = Layout(k, rows);
        var parameters = TestData.Random(length, 11);
        var xHost = TestData.Random(batch * k, 12);
        using var plan = new GroupedLinearPlan(dev, k, layers);
        using var p = Tensor.FromHost(dev, parameters, length);
        using var x = Tensor.FromHost(dev, xHost, batch, k);
        using var y = Tensor.Empty(dev, batch * plan.TotalRows);
        GroupedLinear.Run(plan, x, p, y);
        var got = y.ToHost();
        var expected = new float[got.Length];
        GroupedLinear.Reference(xHost, batch, k, parameters, layers, expected);
        Assert.That(TestData.MaxAbsError(got, expected), Is.LessThan(1e-5 * Math.Sqrt(k) + 1e-6));
        // Each block equals nn.Linear of that layer (the GEMM core), within float rounding.
        for (int g = 0; g < layers.Length; g++)
        {
            var l = layers[g];
            using var w = Tensor.FromHost(dev, parameters.AsSpan(l.WeightOffset, l.Rows * k), l.Rows, k);
            using var b = Tensor.FromHost(dev, parameters.AsSpan(l.BiasOffset, l.Rows), l.Rows);
            using var single = Tensor.Empty(dev, batch, l.Rows);
            Linear.Run(x, w, b, single);
            int offset = plan.OutputOffset(g, batch);
            Assert.That(TestData.MaxAbsError(got.AsSpan(offset, batch * l.Rows).ToArray(), single.ToHost()), Is.LessThan(1e-5 * Math.Sqrt(k) + 1e-6), $"layer {g}");
        }
    }

    [Test]
    public void RejectsShapesThatDoNotFit()
    {
        var dev = TestDevices.Cpu;
        var (layers, length) = Layout(4, [3, 2]);
        using var plan = new GroupedLinearPlan(dev, 4, layers);
        using var p = Tensor.Zeros(dev, length);
        using var shortP = Tensor.Zeros(dev, length - 8);
        using var x = Tensor.Zeros(dev, 2, 4);
        using var wrongX = Tensor.Zeros(dev, 2, 5);
        using var y = Tensor.Zeros(dev, 2 * plan.TotalRows);
        using var wrongY = Tensor.Zeros(dev, 2 * plan.TotalRows + 1);
        Assert.That(Assert.Throws<ArgumentException>(() => GroupedLinear.Run(plan, wrongX, p, y))!.Message, Does.Contain("4 input features"));
        Assert.That(Assert.Throws<ArgumentException>(() => GroupedLinear.Run(plan, x, shortP, y))!.Message, Does.Contain("parameters up to element"));
        Assert.Throws<ArgumentException>(() => GroupedLinear.Run(plan, x, p, wrongY));
        Assert.Throws<ArgumentException>(() => new GroupedLinearPlan(dev, 4, []));
        Assert.Throws<ArgumentException>(() => new GroupedLinearPlan(dev, 4, [new(0, 0, 0)]));
    }
}

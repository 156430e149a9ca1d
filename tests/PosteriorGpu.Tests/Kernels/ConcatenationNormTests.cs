using ILGPU.Runtime;
using NUnit.Framework;
using PosteriorGpu.Kernels.Conv;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Norm;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Tests.Kernels;

/// <summary>
/// A U-Net's skip saves its per-channel statistics when it is made (<see cref="OutputNorm.Save"/>), and the launch that
/// later writes the running tensor into the first channels of the concatenation makes the GroupNorm table of the whole
/// from its own tiles and the saved pairs (<see cref="OutputNorm.Following"/>): the table must be the reference table of
/// the concatenation, including a group that straddles the two parts, on the core tiles that prepare tables.
/// </summary>
public class ConcatenationNormTests
{
    private const int H = 8, W = 8, Cin = 3, Head = 6, Tail = 10, Groups = 4;   // 16 channels, 4 a group: group 1 straddles
    private const float Eps = 1e-5f;

    private static Tensor Random(GpuDevice dev, int seed, float scale, params int[] shape) =>
        Tensor.FromHost(dev, TestData.Random(shape.Aggregate(1, (a, b) => a * b), seed, scale), shape);

    [TestCase("Tile64x32"), TestCase("Tile64"), TestCase("Tile64x32SplitK")]
    public void ConcatenationTable_IsTheReferenceTableOfTheWhole(string tiled)
    {
        var dev = TestDevices.CpuWide;
        var variant = GemmTests.Variant(tiled);
        var p = Conv2dParams.Same(1, 1);
        using var x1 = Random(dev, 1, 1f, 1, Cin, H, W);
        using var x2 = Random(dev, 2, 1f, 1, Cin, H, W);
        using var w1 = Random(dev, 3, 0.4f, Tail, Cin, 3, 3);
        using var w2 = Random(dev, 4, 0.4f, Head, Cin, 3, 3);
        // Biases move the channels' means apart, so the merge's between-channel terms matter.
        using var b1 = Tensor.FromHost(dev, Enumerable.Range(0, Tail).Select(c => 0.3f * c - 1f).ToArray(), Tail);
        using var b2 = Tensor.FromHost(dev, Enumerable.Range(0, Head).Select(c => 2f - 0.5f * c).ToArray(), Head);
        using var gamma = Random(dev, 5, 1f, Head + Tail);
        using var beta = Random(dev, 6, 1f, Head + Tail);
        using var cat = Tensor.Empty(dev, 1, Head + Tail, H, W);
        using var tail = cat.SliceChannels(Head, Tail);
        using var head = cat.SliceChannels(0, Head);
        using var saved = new ChannelStatistics(dev);

        // The skip: statistics only (no table asked).
        var none = Conv2d.RunPreparingNext(x1, w1, b1, tail, p, new OutputNorm { Save = saved }, variant);
        Assert.That(none, Is.Null, "no table was asked of the skip's launch");
        Assert.That(saved.Of, Is.SameAs(tail), "the statistics say whose they are");
        var pairs = new float[2 * Tail];
        ChannelStatistics.Reference(tail.ToHost(), 1, Tail, H * W, pairs);
        TestData.AssertClose(saved.ToHost(), pairs, 2e-6, $"saved channel statistics tiled={tiled}");

        // The running tensor: the concatenation's table from its tiles and the saved pairs.
        var norm = new GroupNormParameters(Groups, gamma, beta, Eps);
        var prepared = Conv2d.RunPreparingNext(x2, w2, b2, head, p, new OutputNorm(norm) { Concatenation = cat, Following = saved }, variant);
        Assert.That(prepared, Is.Not.Null, "the plan serves the shapes");
        Assert.That(prepared!.Value.Input, Is.SameAs(cat), "the table is the concatenation's");
        var expected = new float[2 * (Head + Tail)];
        GroupNormTable.Reference(cat.ToHost(), 1, Head + Tail, Groups, H * W, gamma.ToHost(), beta.ToHost(), Eps, expected);
        var table = new float[expected.Length];
        prepared.Value.Table.SubView(0, table.Length).CopyToCPU(table);
        TestData.AssertClose(table, expected, 5e-6, $"concatenation table tiled={tiled}");

        // The consumer takes it for the concatenation and gives what its own table gives, within rounding.
        using var w3 = Random(dev, 7, 0.2f, 4, Head + Tail, 3, 3);
        using var fromPrepared = Tensor.Empty(dev, 1, 4, H, W);
        using var fromOwn = Tensor.Empty(dev, 1, 4, H, W);
        Conv2dNormalized.Run(cat, Groups, gamma, beta, Eps, true, w3, null, fromPrepared, p, null, null, 1f, variant, prepared);
        Conv2dNormalized.Run(cat, Groups, gamma, beta, Eps, true, w3, null, fromOwn, p, null, null, 1f, variant);
        TestData.AssertClose(fromPrepared.ToHost(), fromOwn.ToHost(), 1e-5, $"consumer with the prepared table tiled={tiled}");
    }

    [Test]
    public void SavedStatistics_OfSeveralImages_AreTheReference()
    {
        var dev = TestDevices.CpuWide;
        var p = Conv2dParams.Same(1, 1);
        using var x = Random(dev, 11, 1f, 3, Cin, H, W);
        using var w = Random(dev, 12, 0.4f, Tail, Cin, 3, 3);
        using var y = Tensor.Empty(dev, 3, Tail, H, W);
        using var saved = new ChannelStatistics(dev);
        using var next = new NormParameters(dev, Tail);
        var prepared = Conv2d.RunPreparingNext(x, w, null, y, p, new OutputNorm(next.Norm(5)) { Save = saved }, GemmTests.Variant("Tile64x32"));
        Assert.That(prepared, Is.Not.Null, "the table and the statistics in one launch");
        var pairs = new float[2 * 3 * Tail];
        ChannelStatistics.Reference(y.ToHost(), 3, Tail, H * W, pairs);
        TestData.AssertClose(saved.ToHost(), pairs, 2e-6, "saved channel statistics of 3 images");
    }

    [Test]
    public void Requests_ThatDoNotFit_SayWhy()
    {
        var dev = TestDevices.CpuWide;
        var p = Conv2dParams.Same(1, 1);
        using var x = Random(dev, 21, 1f, 1, Cin, H, W);
        using var w = Random(dev, 22, 0.4f, Head, Cin, 3, 3);
        using var cat = Tensor.Empty(dev, 1, Head + Tail, H, W);
        using var head = cat.SliceChannels(0, Head);
        using var norm = new NormParameters(dev, Head + Tail);
        using var neverWritten = new ChannelStatistics(dev);
        Assert.That(() => Conv2d.RunPreparingNext(x, w, null, head, p, new OutputNorm(norm.Norm(Groups)) { Concatenation = cat, Following = neverWritten }),
            Throws.InvalidOperationException.With.Message.Contains("never saved"));
        Assert.That(() => Conv2d.RunPreparingNext(x, w, null, head, p, new OutputNorm(norm.Norm(Groups)) { Concatenation = cat }),
            Throws.ArgumentException.With.Message.Contains("concatenation"));

        using var wrongTail = Tensor.Empty(dev, 1, Tail + 1, H, W);
        using var saved = new ChannelStatistics(dev);
        using var w1 = Random(dev, 23, 0.4f, Tail + 1, Cin, 3, 3);
        Conv2d.RunPreparingNext(x, w1, null, wrongTail, p, new OutputNorm { Save = saved }, GemmTests.Variant("Tile64x32"));
        Assert.That(saved.Of, Is.SameAs(wrongTail));
        Assert.That(() => Conv2d.RunPreparingNext(x, w, null, head, p, new OutputNorm(norm.Norm(Groups)) { Concatenation = cat, Following = saved }),
            Throws.ArgumentException.With.Message.Contains("do not make the concatenation"));
    }

    /// <summary>gamma and beta of a norm over <c>channels</c> channels.</summary>
    private sealed class NormParameters(GpuDevice dev, int channels) : IDisposable
    {
        private readonly Tensor gamma = Random(dev, 31, 1f, channels), beta = Random(dev, 32, 1f, channels);
        public GroupNormParameters Norm(int groups) => new(groups, gamma, beta, Eps);
        public void Dispose()
        {
            gamma.Dispose();
            beta.Dispose();
        }
    }
}

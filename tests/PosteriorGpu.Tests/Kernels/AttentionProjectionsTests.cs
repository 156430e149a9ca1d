using ILGPU.Runtime;
using NUnit.Framework;
using PosteriorGpu.Kernels.Gemm;
using PosteriorGpu.Kernels.Layout;
using PosteriorGpu.Kernels.Norm;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Tests.Kernels;

/// <summary>The attention block's image-layout projections against the token-layout path they replace
/// (Tokens.FromImage, three Linear, Linear, Tokens.ToImage): bitwise on the CPU's register tiles, to float
/// tolerance on every tile of the GEMM core.</summary>
public class AttentionProjectionsTests
{
    private static IEnumerable<TestCaseData> Cases() =>
        from v in GemmTests.Variants
        from shape in new[] { (1, 8, 2, 3), (3, 5, 4, 4), (2, 70, 3, 5) }
        select new TestCaseData(v, shape.Item1, shape.Item2, shape.Item3, shape.Item4).SetArgDisplayNames(v, $"{shape}");

    [TestCaseSource(nameof(Cases))]
    public void QueryKeyValue_MatchesTokensThenLinear(string variant, int n, int c, int h, int w)
    {
        var dev = GemmTests.DeviceFor(variant);
        int p = h * w, stride = c * c + c + 3;   // weights and biases interleaved, as in a parameter store, plus slack
        var image = TestData.Random(n * c * p, 1);
        var store = TestData.Random(3 * stride + c * c, 2, 0.3f);
        using var timage = Tensor.FromHost(dev, image, n, c, h, w);
        using var tstore = Tensor.FromHost(dev, store, store.Length);
        using var tq = Tensor.Empty(dev, n, p, c);
        using var tk = Tensor.Empty(dev, n, p, c);
        using var tv = Tensor.Empty(dev, n, p, c);
        // Weight g at g stride, its bias right after it.
        AttentionProjections.QueryKeyValue(timage, tstore.View, stride, tstore.View.SubView(c * c), stride, tq, tk, tv, GemmTests.Variant(variant));

        using var tokens = Tensor.Empty(dev, n, p, c);
        Tokens.FromImage(timage, tokens);
        var got = new[] { tq.ToHost(), tk.ToHost(), tv.ToHost() };
        for (int g = 0; g < 3; g++)
        {
            using var weight = Tensor.FromHost(dev, store.AsSpan(g * stride, c * c).ToArray(), c, c);
            using var bias = Tensor.FromHost(dev, store.AsSpan(g * stride + c * c, c).ToArray(), c);
            using var y = Tensor.Empty(dev, n, p, c);
            Linear.Run(tokens, weight, bias, y, GemmVariant.RegisterTile);
            var expected = y.ToHost();
            var slice = got[g];
            if (variant == "RegisterTile") Assert.That(slice, Is.EqualTo(expected), $"projection {g}: bitwise");
            else TestData.AssertClose(slice, expected, 1e-5, $"projection {g}");
        }
    }

    [TestCaseSource(nameof(Cases))]
    public void OutputToImage_MatchesLinearThenToImage(string variant, int n, int c, int h, int w)
    {
        var dev = GemmTests.DeviceFor(variant);
        int p = h * w;
        using var attended = Tensor.FromHost(dev, TestData.Random(n * p * c, 3), n, p, c);
        using var weight = Tensor.FromHost(dev, TestData.Random(c * c, 4, 0.3f), c, c);
        using var bias = Tensor.FromHost(dev, TestData.Random(c, 5), c);
        var residual = TestData.Random(n * c * p, 6);
        using var tres = Tensor.FromHost(dev, residual, n, c, h, w);
        using var y = Tensor.Empty(dev, n, c, h, w);
        AttentionProjections.OutputToImage(attended, weight, bias, tres, 0.5f, y, GemmTests.Variant(variant));

        using var projected = Tensor.Empty(dev, n, p, c);
        Linear.Run(attended, weight, bias, projected, GemmVariant.RegisterTile);
        using var expected = Tensor.Empty(dev, n, c, h, w);
        Tokens.ToImage(projected, tres, 0.5f, expected);
        if (variant == "RegisterTile") Assert.That(y.ToHost(), Is.EqualTo(expected.ToHost()), "bitwise");
        else TestData.AssertClose(y.ToHost(), expected.ToHost(), 1e-5, "output projection");

        // In place: the residual is the output.
        AttentionProjections.OutputToImage(attended, weight, bias, tres, 0.5f, tres, GemmTests.Variant(variant));
        TestData.AssertClose(tres.ToHost(), expected.ToHost(), 1e-5, "output projection in place");
    }

    private static IEnumerable<TestCaseData> NormalizedCases() =>
        from v in GemmTests.Variants.Where(v => v != "RegisterTile")
        from shape in new[] { (1, 8, 2, 4, 4), (3, 6, 3, 4, 4), (2, 70, 10, 3, 5) }
        select new TestCaseData(v, shape.Item1, shape.Item2, shape.Item3, shape.Item4, shape.Item5).SetArgDisplayNames(v, $"{shape}");

    /// <summary>q/k/v of GroupNorm(image) normalised on load with a prepared table (as a resnet's conv2 leaves it) against
    /// GroupNorm's reference then the plain projections, on every core tile, with several images (each its own table rows).</summary>
    [TestCaseSource(nameof(NormalizedCases))]
    public void QueryKeyValueNormalized_MatchesGroupNormThenTheProjections(string variant, int n, int c, int groups, int h, int w)
    {
        var dev = GemmTests.DeviceFor(variant);
        int p = h * w, stride = c * c + c + 3;
        var image = TestData.Random(n * c * p, 11, 2f).Select((v, i) => v + 5f * (i / (c * p)) + 3f).ToArray();   // per-image means differ
        var gamma = TestData.Random(c, 12);
        var beta = TestData.Random(c, 13);
        var store = TestData.Random(3 * stride + c * c, 14, 0.3f);
        using var timage = Tensor.FromHost(dev, image, n, c, h, w);
        using var tg = Tensor.FromHost(dev, gamma, c);
        using var tb = Tensor.FromHost(dev, beta, c);
        using var tstore = Tensor.FromHost(dev, store, store.Length);
        var norm = new GroupNormParameters(groups, tg, tb, 1e-5f);
        var (table, generation) = dev.NextPreparedNormTable(2 * n * c);
        var hostTable = new float[2 * n * c];
        GroupNormTable.Reference(image, n, c, groups, p, gamma, beta, 1e-5f, hostTable);
        table.CopyFromCPU(hostTable);
        var prepared = new PreparedGroupNorm(timage, norm, table, generation);
        using var tq = Tensor.Empty(dev, n, p, c);
        using var tk = Tensor.Empty(dev, n, p, c);
        using var tv = Tensor.Empty(dev, n, p, c);
        AttentionProjections.QueryKeyValueNormalized(timage, prepared, norm, tstore.View, stride, tstore.View.SubView(c * c), stride, tq, tk, tv,
            GemmTests.Variant(variant));

        var normalized = new float[image.Length];
        GroupNorm.Reference(image, n, c, p, groups, gamma, beta, 1e-5f, normalized);
        using var tnormalized = Tensor.FromHost(dev, normalized, n, c, h, w);
        using var eq = Tensor.Empty(dev, n, p, c);
        using var ek = Tensor.Empty(dev, n, p, c);
        using var ev = Tensor.Empty(dev, n, p, c);
        AttentionProjections.QueryKeyValue(tnormalized, tstore.View, stride, tstore.View.SubView(c * c), stride, eq, ek, ev, GemmTests.Variant(variant));
        TestData.AssertClose(tq.ToHost(), eq.ToHost(), 1e-5, "q");
        TestData.AssertClose(tk.ToHost(), ek.ToHost(), 1e-5, "k");
        TestData.AssertClose(tv.ToHost(), ev.ToHost(), 1e-5, "v");
    }

    /// <summary>to_out preparing the next resnet's norm1 (one image; 32x32 tiles, split-K, 64-wide tiles): y bitwise the plain
    /// launch's, the table the double reference's of y; not prepared on 128x128 tiles or with two images (y the same).</summary>
    [TestCase("Tile32", 1, 8, 4, 8, true)]
    [TestCase("Tile32SplitK", 1, 70, 8, 8, true)]
    [TestCase("Tile64", 1, 70, 8, 8, true)]
    [TestCase("Tile64x32", 1, 16, 4, 8, true)]
    [TestCase("Tiled", 1, 16, 4, 8, true)]
    [TestCase("Tile128", 1, 16, 4, 8, false)]
    [TestCase("Tile32", 2, 16, 4, 8, false)]
    public void OutputToImagePreparingNext_IsThePlainLaunch_AndPreparesTheNextNorm(string variant, int n, int c, int h, int w, bool served)
    {
        var dev = GemmTests.DeviceFor(variant);
        int p = h * w, groups = c % 7 == 0 ? 7 : 4;
        using var attended = Tensor.FromHost(dev, TestData.Random(n * p * c, 21), n, p, c);
        using var weight = Tensor.FromHost(dev, TestData.Random(c * c, 22, 0.3f), c, c);
        using var bias = Tensor.FromHost(dev, TestData.Random(c, 23).Select(v => 8f + v).ToArray(), c);
        using var residual = Tensor.FromHost(dev, TestData.Random(n * c * p, 24), n, c, h, w);
        using var gamma = Tensor.FromHost(dev, TestData.Random(c, 25), c);
        using var beta = Tensor.FromHost(dev, TestData.Random(c, 26), c);
        var next = new GroupNormParameters(groups, gamma, beta, 1e-5f);
        using var plain = Tensor.Empty(dev, n, c, h, w);
        AttentionProjections.OutputToImage(attended, weight, bias, residual, 0.5f, plain, GemmTests.Variant(variant));
        using var y = Tensor.Empty(dev, n, c, h, w);
        var prepared = AttentionProjections.OutputToImagePreparingNext(attended, weight, bias, residual, 0.5f, y, next, GemmTests.Variant(variant));
        Assert.That(y.ToHost(), Is.EqualTo(plain.ToHost()), "y is the plain launch's, bitwise");
        Assert.That(prepared is not null, Is.EqualTo(served), "prepared where served");
        if (prepared is null) return;
        var expected = new float[2 * n * c];
        GroupNormTable.Reference(y.ToHost(), n, c, groups, p, gamma.ToHost(), beta.ToHost(), 1e-5f, expected);
        var table = new float[expected.Length];
        prepared!.Value.Table.SubView(0, table.Length).CopyToCPU(table);
        TestData.AssertClose(table, expected, 5e-6, $"prepared table {variant}");
    }

    [Test]
    public void QueryKeyValue_RejectsWeightsThatDoNotFit()
    {
        var dev = TestDevices.Cpu;
        using var image = Tensor.Zeros(dev, 1, 4, 2, 2);
        using var store = Tensor.Zeros(dev, 40);
        using var q = Tensor.Zeros(dev, 1, 4, 4);
        Assert.That(() => AttentionProjections.QueryKeyValue(image, store.View, 16, store.View, 4, q, q, q),
            Throws.ArgumentException.With.Message.Contains("do not fit"));
    }
}

using NUnit.Framework;
using PosteriorGpu.Kernels.Conv;
using PosteriorGpu.Kernels.Gemm;
using PosteriorGpu.Kernels.Norm;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Tests.Kernels;

/// <summary>GroupNorm (+SiLU) normalised while the convolution stages its input (<see cref="Conv2dNormalized"/>): against
/// the reference, and bitwise against the unfused GPU pair (GroupNormSlab, then the same convolution variant), on every
/// core tile the convolutions use, on a 256-thread CPU accelerator.</summary>
public class Conv2dNormalizedTests
{
    /// <summary>(batch, Cin, groups, H, W, Cout, kernel, params, silu, channel add, residual, scale).</summary>
    private static readonly (int N, int Cin, int Groups, int H, int W, int Cout, int K, Conv2dParams P, bool Silu, bool Add, bool Residual, float Scale)[] Problems =
    [
        (2, 8, 4, 6, 8, 5, 3, Conv2dParams.Same(1, 1), true, true, false, 1f),          // conv1: time embedding added
        (1, 32, 8, 4, 4, 70, 3, Conv2dParams.Same(1, 1), true, false, true, 0.70710678f), // conv2: residual, 1/output_scale; rows past 64
        (3, 6, 3, 2, 6, 4, 3, Conv2dParams.Same(2, 1), false, false, false, 1f),         // no SiLU, stride 2, odd batch
    ];

    private static IEnumerable<TestCaseData> Cases() =>
        from v in GemmTests.ConvVariants.Where(v => v != "RegisterTile")
        from i in Enumerable.Range(0, Problems.Length)
        select new TestCaseData(v, i).SetArgDisplayNames(v, $"problem {i}");

    [TestCaseSource(nameof(Cases))]
    public void MatchesReference_AndIsBitwiseTheUnfusedPair(string tiled, int index)
    {
        var (n, cin, groups, h, w, cout, k, p, silu, add, residual, scale) = Problems[index];
        var dev = TestDevices.CpuWide;
        var variant = GemmTests.Variant(tiled);
        var (ho, wo) = p.OutputSize(h, w, k, k);
        // A mean far from 0 and a small spread: the two-pass variance matters.
        var x = TestData.Random(n * cin * h * w, 1, 3f).Select(v => 40f + v).ToArray();
        var gamma = TestData.Random(cin, 2);
        var beta = TestData.Random(cin, 3);
        var wt = TestData.Random(cout * cin * k * k, 4, 0.3f);
        var bias = TestData.Random(cout, 5);
        var channelAdd = add ? TestData.Random(n * cout, 6) : [];
        var res = residual ? TestData.Random(n * cout * ho * wo, 7) : [];
        using var tx = Tensor.FromHost(dev, x, n, cin, h, w);
        using var tg = Tensor.FromHost(dev, gamma, cin);
        using var tb = Tensor.FromHost(dev, beta, cin);
        using var tw = Tensor.FromHost(dev, wt, cout, cin, k, k);
        using var tbias = Tensor.FromHost(dev, bias, cout);
        using var tadd = add ? Tensor.FromHost(dev, channelAdd, n, cout) : null;
        using var tres = residual ? Tensor.FromHost(dev, res, n, cout, ho, wo) : null;
        Assert.That(Conv2dNormalized.Serves(tx, variant), Is.True);
        using var fused = Tensor.Empty(dev, n, cout, ho, wo);
        Conv2dNormalized.Run(tx, groups, tg, tb, 1e-6f, silu, tw, tbias, fused, p, tadd, tres, scale, variant);

        var expected = new float[fused.Length];
        Conv2dNormalized.Reference(x, n, cin, h, w, groups, gamma, beta, 1e-6f, silu, wt, cout, k, k, bias, expected, p, channelAdd, res, scale);
        TestData.AssertClose(fused.ToHost(), expected, 1e-4, $"group norm + conv tiled={tiled}");

        using var normalized = Tensor.Empty(dev, n, cin, h, w);
        GroupNormSlab.Run(tx, n * groups, GroupNorm.GroupThreads(dev), groups, cin / groups, h * w, tg, tb, 1e-6f, normalized, silu);
        using var pair = Tensor.Empty(dev, n, cout, ho, wo);
        Conv2d.Run(normalized, tw, tbias, pair, p, tadd, tres, scale, variant);
        Assert.That(fused.ToHost(), Is.EqualTo(pair.ToHost()), "bitwise GroupNormSlab + conv");
    }

    /// <summary>(batch, Cin of the normalised input, groups, H, W, Cout = the shortcut's Cout, Cin of the shortcut input, scale).</summary>
    private static readonly (int N, int Cin, int Groups, int H, int W, int Cout, int ShortcutCin, float Scale)[] ShortcutProblems =
    [
        (1, 16, 4, 4, 8, 16, 24, 1f),            // an up-path resnet: conv2 on Cout channels, the shortcut on the concatenation
        (2, 8, 2, 6, 4, 8, 5, 0.70710678f),      // two images, an odd shortcut depth (k1 + k2 not whole k steps)
        (1, 72, 8, 4, 4, 72, 36, 1f),            // rows past 64, a long k
        (1, 4, 2, 4, 4, 8, 64, 1f),              // k1 = 36 < k2 = 64: split-K ranges that lie wholly in the shortcut's k
    ];

    private static IEnumerable<TestCaseData> ShortcutCases() =>
        from v in GemmTests.ConvVariants.Where(v => v != "RegisterTile")
        from i in Enumerable.Range(0, ShortcutProblems.Length)
        select new TestCaseData(v, i).SetArgDisplayNames(v, $"problem {i}");

    /// <summary>conv2 and a 1x1 shortcut as one sum along k (every tile, split-K straddling the boundary): the unfused
    /// reference (the normalised conv with the shortcut's output as its residual) within rounding.</summary>
    [TestCaseSource(nameof(ShortcutCases))]
    public void WithShortcut_MatchesTheNormalizedConvPlusTheShortcut(string tiled, int index) =>
        CheckWithShortcut(TestDevices.CpuWide, tiled, index);

    [Test, Category("Gpu")]
    public void Gpu_WithShortcut_MatchesTheNormalizedConvPlusTheShortcut()
    {
        for (int i = 0; i < ShortcutProblems.Length; i++) CheckWithShortcut(TestDevices.Gpu, "Tiled", i);
    }

    private static void CheckWithShortcut(PosteriorGpu.Kernels.Device.GpuDevice dev, string tiled, int index)
    {
        var (n, cin, groups, h, w, cout, scin, scale) = ShortcutProblems[index];
        var variant = GemmTests.Variant(tiled);
        var x = TestData.Random(n * cin * h * w, 11, 3f).Select(v => 5f + v).ToArray();
        var gamma = TestData.Random(cin, 12);
        var beta = TestData.Random(cin, 13);
        var wt = TestData.Random(cout * cin * 9, 14, 0.3f);
        var bias = TestData.Random(cout, 15);
        var s = TestData.Random(n * scin * h * w, 16);
        var ws = TestData.Random(cout * scin, 17, 0.5f);
        var bs = TestData.Random(cout, 18);
        using var tx = Tensor.FromHost(dev, x, n, cin, h, w);
        using var tg = Tensor.FromHost(dev, gamma, cin);
        using var tb = Tensor.FromHost(dev, beta, cin);
        using var tw = Tensor.FromHost(dev, wt, cout, cin, 3, 3);
        using var tbias = Tensor.FromHost(dev, bias, cout);
        using var ts = Tensor.FromHost(dev, s, n, scin, h, w);
        using var tws = Tensor.FromHost(dev, ws, cout, scin, 1, 1);
        using var tbs = Tensor.FromHost(dev, bs, cout);
        using var fused = Tensor.Empty(dev, n, cout, h, w);
        var p = Conv2dParams.Same(1, 1);
        Conv2dNormalized.RunWithShortcut(tx, groups, tg, tb, 1e-5f, true, tw, tbias, ts, tws, tbs, fused, p, scale, variant);

        var shortcut = new float[n * cout * h * w];
        Conv2d.Reference(s, n, scin, h, w, ws, cout, 1, 1, bs, shortcut, Conv2dParams.Same(1, 0));
        var expected = new float[shortcut.Length];
        Conv2dNormalized.Reference(x, n, cin, h, w, groups, gamma, beta, 1e-5f, true, wt, cout, 3, 3, bias, expected, p, default, shortcut, scale);
        TestData.AssertClose(fused.ToHost(), expected, 1e-4, $"group norm + conv + shortcut tiled={tiled}");
    }

    [Test]
    public void WithShortcut_RefusesAShortcutThatIsNotOneByOne()
    {
        var dev = TestDevices.CpuWide;
        using var x = Tensor.Zeros(dev, 1, 4, 4, 4);
        using var g = Tensor.Zeros(dev, 4);
        using var w = Tensor.Zeros(dev, 4, 4, 3, 3);
        using var y = Tensor.Zeros(dev, 1, 4, 4, 4);
        var ex = Assert.Throws<ArgumentException>(() => Conv2dNormalized.RunWithShortcut(x, 2, g, g, 1e-6f, true, w, null, x, w, null, y,
            Conv2dParams.Same(1, 1), 1f, GemmVariant.Tile64));
        Assert.That(ex!.Message, Does.Contain("1x1"));
    }

    [Test]
    public void Refuses_WhatItDoesNotServe()
    {
        var dev = TestDevices.CpuWide;
        using var x9 = Tensor.Zeros(dev, 1, 4, 3, 3);   // 9 positions: not whole 16-byte vectors
        using var g = Tensor.Zeros(dev, 4);
        using var w = Tensor.Zeros(dev, 2, 4, 3, 3);
        using var y = Tensor.Zeros(dev, 1, 2, 3, 3);
        Assert.That(Conv2dNormalized.Serves(x9, GemmVariant.Tile64), Is.False);
        Assert.Throws<ArgumentException>(() => Conv2dNormalized.Run(x9, 2, g, g, 1e-6f, true, w, null, y, Conv2dParams.Same(1, 1), null, null, 1f, GemmVariant.Tile64));
        using var x = Tensor.Zeros(dev, 1, 4, 2, 2);
        using var y2 = Tensor.Zeros(dev, 1, 2, 2, 2);
        Assert.That(Conv2dNormalized.Serves(x), Is.False, "the CPU accelerator's Auto runs register tiles, not the core");
        Assert.Throws<ArgumentException>(() => Conv2dNormalized.Run(x, 3, g, g, 1e-6f, true, w, null, y2, Conv2dParams.Same(1, 1), null, null, 1f, GemmVariant.Tile64));
    }
}

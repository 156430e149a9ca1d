using NUnit.Framework;
using PosteriorGpu.Kernels.Conv;
using PosteriorGpu.Kernels.Gemm;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Tests.Kernels;

public class Conv2dTests
{
    /// <summary>One convolution problem: shapes, stride/padding and which epilogue terms are present.</summary>
    public sealed record Problem(int Batch, int Cin, int Cout, int H, int W, int Kh, int Kw, Conv2dParams P,
        bool Bias, bool ChannelAdd, bool Residual, float Scale)
    {
        public override string ToString() =>
            $"b{Batch} {Cin}->{Cout} {H}x{W} k{Kh}x{Kw} s{P.Stride} pad({P.PadTop},{P.PadLeft},{P.PadBottom},{P.PadRight})" +
            $"{(Bias ? " bias" : "")}{(ChannelAdd ? " add" : "")}{(Residual ? " res" : "")} scale {Scale}";
    }

    private static readonly Problem[] Problems =
    [
        new(1, 3, 5, 7, 9, 3, 3, Conv2dParams.Same(1, 1), true, false, false, 1f),
        new(2, 5, 3, 8, 8, 3, 3, new Conv2dParams(2, 0, 0, 1, 1), false, false, false, 1f),   // diffusers Downsample2D, padding 0
        new(2, 4, 7, 9, 6, 1, 1, Conv2dParams.Same(1, 0), true, true, true, 0.70710678f),     // ResnetBlock2D conv_shortcut-like
        new(1, 7, 4, 10, 11, 3, 3, Conv2dParams.Same(2, 1), true, true, false, 1f),
        new(2, 3, 9, 5, 5, 3, 3, Conv2dParams.Same(1, 1), false, false, true, 0.5f),
        new(1, 2, 1, 4, 6, 2, 3, new Conv2dParams(1, 1, 0, 0, 2), true, false, false, 1f),
        new(2, 1, 6, 3, 2, 3, 3, Conv2dParams.Same(1, 1), true, true, true, 2f),
        new(3, 6, 70, 5, 7, 3, 3, Conv2dParams.Same(1, 1), true, true, true, 1f),               // rows past 64: every staged row of the 64-row tiles
    ];

    private static IEnumerable<TestCaseData> Cases() =>
        from v in GemmTests.ConvVariants
        from p in Problems
        select new TestCaseData(v, p).SetArgDisplayNames(v, p.ToString());

    private static float[] Run(PosteriorGpu.Kernels.Device.GpuDevice dev, Problem p, GemmVariant? variant, out float[] expected)
    {
        var (ho, wo) = p.P.OutputSize(p.H, p.W, p.Kh, p.Kw);
        var x = TestData.Random(p.Batch * p.Cin * p.H * p.W, 1);
        var w = TestData.Random(p.Cout * p.Cin * p.Kh * p.Kw, 2, 0.3f);
        var bias = p.Bias ? TestData.Random(p.Cout, 3) : [];
        var add = p.ChannelAdd ? TestData.Random(p.Batch * p.Cout, 4) : [];
        var res = p.Residual ? TestData.Random(p.Batch * p.Cout * ho * wo, 5) : [];
        using var tx = Tensor.FromHost(dev, x, p.Batch, p.Cin, p.H, p.W);
        using var tw = Tensor.FromHost(dev, w, p.Cout, p.Cin, p.Kh, p.Kw);
        using var tb = p.Bias ? Tensor.FromHost(dev, bias, p.Cout) : null;
        using var ta = p.ChannelAdd ? Tensor.FromHost(dev, add, p.Batch, p.Cout) : null;
        using var tr = p.Residual ? Tensor.FromHost(dev, res, p.Batch, p.Cout, ho, wo) : null;
        using var ty = Tensor.Empty(dev, p.Batch, p.Cout, ho, wo);
        if (variant is { } v) Conv2d.Run(tx, tw, tb, ty, p.P, ta, tr, p.Scale, v);
        else Conv2d.Run(tx, tw, tb, ty, p.P, ta, tr, p.Scale);
        expected = new float[ty.Length];
        Conv2d.Reference(x, p.Batch, p.Cin, p.H, p.W, w, p.Cout, p.Kh, p.Kw, bias, expected, p.P, add, res, p.Scale);
        return ty.ToHost();
    }

    [TestCaseSource(nameof(Cases))]
    public void MatchesReference(string tiled, Problem p)
    {
        var got = Run(GemmTests.DeviceFor(tiled), p, GemmTests.Variant(tiled), out var expected);
        TestData.AssertClose(got, expected, 1e-5, $"conv2d tiled={tiled} {p}");
    }

    // diffusers' Upsample2D conv (3x3, padding 1) on odd and non-square sources, 1 and 3 images, 70 output channels
    // (rows past 64), a strided and an asymmetrically padded one (padding tested in the upsampled frame).
    private static readonly (int Batch, int Cin, int Cout, int H, int W, int K, Conv2dParams P)[] UpsampledProblems =
    [
        (1, 3, 5, 3, 5, 3, Conv2dParams.Same(1, 1)),
        (3, 6, 70, 4, 4, 3, Conv2dParams.Same(1, 1)),
        (2, 4, 3, 2, 3, 3, new Conv2dParams(2, 0, 1, 1, 0)),
        (1, 2, 4, 5, 2, 1, Conv2dParams.Same(1, 0)),
    ];

    private static IEnumerable<TestCaseData> UpsampledCases() =>
        from v in GemmTests.ConvVariants
        from i in Enumerable.Range(0, UpsampledProblems.Length)
        select new TestCaseData(v, i).SetArgDisplayNames(v, UpsampledProblems[i].ToString());

    /// <summary>The upsampler's conv with the nearest 2x upsampling folded into its loads: against the reference, and
    /// bitwise against the unfused pair (upsample, then the same convolution variant).</summary>
    [TestCaseSource(nameof(UpsampledCases))]
    public void Upsampled_MatchesReference_AndIsBitwiseTheUnfusedPair(string tiled, int index)
    {
        var (batch, cin, cout, h, w, k, p) = UpsampledProblems[index];
        var dev = GemmTests.DeviceFor(tiled);
        var variant = GemmTests.Variant(tiled);
        var (ho, wo) = p.OutputSize(2 * h, 2 * w, k, k);
        var x = TestData.Random(batch * cin * h * w, 1);
        var wt = TestData.Random(cout * cin * k * k, 2, 0.3f);
        var bias = TestData.Random(cout, 3);
        using var tx = Tensor.FromHost(dev, x, batch, cin, h, w);
        using var tw = Tensor.FromHost(dev, wt, cout, cin, k, k);
        using var tb = Tensor.FromHost(dev, bias, cout);
        using var fused = Tensor.Empty(dev, batch, cout, ho, wo);
        Conv2dUpsampled.Run(tx, tw, tb, fused, p, variant);
        var expected = new float[fused.Length];
        Conv2dUpsampled.Reference(x, batch, cin, h, w, wt, cout, k, k, bias, expected, p);
        TestData.AssertClose(fused.ToHost(), expected, 1e-5, $"upsampled conv tiled={tiled}");
        using var up = Tensor.Empty(dev, batch, cin, 2 * h, 2 * w);
        using var pair = Tensor.Empty(dev, batch, cout, ho, wo);
        PosteriorGpu.Kernels.Resample.Upsample2x.Run(tx, up);
        Conv2d.Run(up, tw, tb, pair, p, null, null, 1f, variant);
        Assert.That(fused.ToHost(), Is.EqualTo(pair.ToHost()), "bitwise the upsample + conv pair");
        using var wrong = Tensor.Empty(dev, batch, cout, ho + 1, wo);
        Assert.Throws<ArgumentException>(() => Conv2dUpsampled.Run(tx, tw, tb, wrong, p, variant));
    }

    [Test]
    public void PinnedTile32_IsRefusedForConvolutions()
    {
        var p = new Problem(1, 3, 4, 5, 5, 3, 3, Conv2dParams.Same(1, 1), false, false, false, 1f);
        Assert.That(() => Run(TestDevices.CpuWide, p, GemmVariant.Tile32, out _),
            Throws.ArgumentException.With.Message.Contains("do not serve convolutions"));
    }

    [Test]
    public void PublicRun_ResidualMayBeTheOutput()
    {
        var dev = TestDevices.Cpu;
        var x = TestData.Random(2 * 3 * 5 * 5, 6);
        var w = TestData.Random(4 * 3 * 9, 7);
        var y = TestData.Random(2 * 4 * 5 * 5, 8);
        using var tx = Tensor.FromHost(dev, x, 2, 3, 5, 5);
        using var tw = Tensor.FromHost(dev, w, 4, 3, 3, 3);
        using var ty = Tensor.FromHost(dev, y, 2, 4, 5, 5);
        Conv2d.Run(tx, tw, null, ty, Conv2dParams.Same(1, 1), residual: ty, outputScale: 0.5f);
        var expected = new float[y.Length];
        Conv2d.Reference(x, 2, 3, 5, 5, w, 4, 3, 3, [], expected, Conv2dParams.Same(1, 1), residual: y, outputScale: 0.5f);
        TestData.AssertClose(ty.ToHost(), expected, 1e-5, "conv2d in-place residual");
    }

    [Test]
    public void OutputSize_FollowsPyTorch()
    {
        Assert.That(Conv2dParams.Same(1, 1).OutputSize(32, 31, 3, 3), Is.EqualTo((32, 31)));
        Assert.That(Conv2dParams.Same(2, 1).OutputSize(32, 31, 3, 3), Is.EqualTo((16, 16)));
        Assert.That(new Conv2dParams(2, 0, 0, 1, 1).OutputSize(32, 32, 3, 3), Is.EqualTo((16, 16)));
        Assert.That(Conv2dParams.Same(1, 0).OutputSize(7, 5, 1, 1), Is.EqualTo((7, 5)));
        Assert.That(Conv2dParams.Same(1, 0).OutputSize(2, 2, 3, 3), Is.EqualTo((0, 0)));
    }

    [Test]
    public void Rejects_WrongInputChannels()
    {
        var dev = TestDevices.Cpu;
        using var x = Tensor.Zeros(dev, 2, 3, 8, 8);
        using var w = Tensor.Zeros(dev, 4, 5, 3, 3);
        using var y = Tensor.Zeros(dev, 2, 4, 8, 8);
        var ex = Assert.Throws<ArgumentException>(() => Conv2d.Run(x, w, null, y, Conv2dParams.Same(1, 1)));
        Assert.That(ex!.Message, Does.Contain("[4, 5, 3, 3]").And.Contain("[2, 3, 8, 8]"));
    }

    [Test]
    public void Rejects_WrongOutputShape()
    {
        var dev = TestDevices.Cpu;
        using var x = Tensor.Zeros(dev, 2, 3, 8, 8);
        using var w = Tensor.Zeros(dev, 4, 3, 3, 3);
        using var y = Tensor.Zeros(dev, 2, 4, 8, 8);
        var ex = Assert.Throws<ArgumentException>(() => Conv2d.Run(x, w, null, y, new Conv2dParams(2, 0, 0, 1, 1)));
        Assert.That(ex!.Message, Does.Contain("expected output of shape [2, 4, 4, 4] but got [2, 4, 8, 8]"));
    }

    [Test]
    public void Rejects_WrongEpilogueShapes()
    {
        var dev = TestDevices.Cpu;
        using var x = Tensor.Zeros(dev, 2, 3, 8, 8);
        using var w = Tensor.Zeros(dev, 4, 3, 1, 1);
        using var y = Tensor.Zeros(dev, 2, 4, 8, 8);
        using var add = Tensor.Zeros(dev, 2, 3);
        var ex = Assert.Throws<ArgumentException>(() => Conv2d.Run(x, w, null, y, Conv2dParams.Same(1, 0), channelAdd: add));
        Assert.That(ex!.Message, Does.Contain("expected channelAdd of shape [2, 4] but got [2, 3]"));
        using var bias = Tensor.Zeros(dev, 3);
        ex = Assert.Throws<ArgumentException>(() => Conv2d.Run(x, w, bias, y, Conv2dParams.Same(1, 0)));
        Assert.That(ex!.Message, Does.Contain("expected bias of shape [4] but got [3]"));
    }

    [Test, Category("Gpu")]
    public void Gpu_Conv64x64At32x32_MatchesReference()
    {
        var dev = TestDevices.Gpu;
        var p = new Problem(4, 64, 64, 32, 32, 3, 3, Conv2dParams.Same(1, 1), true, true, true, 0.70710678f);
        var got = Run(dev, p, null, out var expected);
        TestContext.Out.WriteLine($"conv2d {p} on {dev.Description}: max abs error {TestData.MaxAbsError(got, expected):E3}, " +
            $"relative L2 {TestData.RelativeError(got, expected):E3}");
        TestData.AssertClose(got, expected, 1e-4, "conv2d on GPU");
        foreach (var q in Problems)
        {
            got = Run(dev, q, null, out expected);
            TestContext.Out.WriteLine($"conv2d {q}: max abs {TestData.MaxAbsError(got, expected):E3}, rel L2 {TestData.RelativeError(got, expected):E3}");
            TestData.AssertClose(got, expected, 1e-5, $"conv2d on GPU {q}");
        }
    }
}

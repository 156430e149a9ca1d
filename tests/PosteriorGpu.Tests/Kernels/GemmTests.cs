using NUnit.Framework;
using PosteriorGpu.Kernels.Gemm;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Tests.Kernels;

public class GemmTests
{
    /// <summary>Every implementation: the CPU's register tiles and each tile configuration of the GEMM core
    /// (test cases name them by string: the enum is internal).</summary>
    internal static readonly string[] Variants = ["RegisterTile", "Tile128", "Tile64", "Tile64x32", "Tile64x32SplitK", "Tile32", "Tile32SplitK", "Tiled"];

    /// <summary>The variants that serve convolutions: 32x32 tiles are for GEMM and Linear only.</summary>
    internal static readonly string[] ConvVariants = Variants.Where(v => !v.StartsWith("Tile32", StringComparison.Ordinal)).ToArray();

    internal static GemmVariant Variant(string name) => Enum.Parse<GemmVariant>(name);

    /// <summary>The register tiles run on the default CPU accelerator; the core's tiles need 64-256 threads a group.</summary>
    internal static PosteriorGpu.Kernels.Device.GpuDevice DeviceFor(string variant) =>
        variant == "RegisterTile" ? TestDevices.Cpu : TestDevices.CpuWide;

    // (batch, m, n, k, transA, transB, bias, beta, A shared by the batch, B shared by the batch)
    private static readonly object[][] Problems =
    [
        [1, 1, 1, 1, false, false, false, 0f, false, false],
        [1, 7, 33, 65, true, false, false, 0f, false, false],
        [3, 33, 7, 130, false, true, true, 0.5f, false, false],
        [3, 65, 130, 33, true, true, false, 0f, true, false],
        [1, 130, 65, 7, false, false, true, -1.25f, false, false],
        [3, 7, 65, 33, false, true, true, 0f, false, true],
        [2, 1, 130, 1, true, true, false, 1f, false, false],
    ];

    private static IEnumerable<TestCaseData> Cases() =>
        from v in Variants
        from p in Problems
        select new TestCaseData(p.Prepend(v).ToArray()).SetArgDisplayNames(
            v, $"b{p[0]} {p[1]}x{p[2]}x{p[3]}", $"tA={p[4]} tB={p[5]}", $"bias={p[6]} beta={p[7]}", $"sharedA={p[8]} sharedB={p[9]}");

    [TestCaseSource(nameof(Cases))]
    public void MatchesReference(string tiled, int batch, int m, int n, int k, bool transA, bool transB,
        bool bias, float beta, bool sharedA, bool sharedB)
    {
        var dev = DeviceFor(tiled);
        var variant = Variant(tiled);
        var a = TestData.Random((sharedA ? 1 : batch) * m * k, 1);
        var b = TestData.Random((sharedB ? 1 : batch) * k * n, 2);
        var c = TestData.Random(batch * m * n, 3);
        var bi = bias ? TestData.Random(n, 4) : [];
        int[] aShape = transA ? [k, m] : [m, k], bShape = transB ? [n, k] : [k, n];
        using var ta = Tensor.FromHost(dev, a, sharedA ? aShape : [batch, .. aShape]);
        using var tb = Tensor.FromHost(dev, b, sharedB ? bShape : [batch, .. bShape]);
        using var tc = Tensor.FromHost(dev, c, batch, m, n);
        using var tbias = bias ? Tensor.FromHost(dev, bi, n) : null;
        Gemm.Run(ta, transA, tb, transB, tc, 0.75f, beta, tbias, variant);
        Gemm.Reference(a, transA, b, transB, c, batch, m, n, k, 0.75f, beta, bi);
        TestData.AssertClose(tc.ToHost(), c, 1e-5, $"gemm {variant}");
    }

    [TestCase("RegisterTile")]
    [TestCase("Tile32")]
    [TestCase("Tile32SplitK")]
    public void RankTwo_BetaZeroIgnoresNaNInC(string tiled)
    {
        var variant = Variant(tiled);
        var dev = DeviceFor(tiled);
        var a = TestData.Random(5 * 9, 5);
        var b = TestData.Random(9 * 6, 6);
        using var ta = Tensor.FromHost(dev, a, 5, 9);
        using var tb = Tensor.FromHost(dev, b, 9, 6);
        using var tc = Tensor.FromHost(dev, Enumerable.Repeat(float.NaN, 30).ToArray(), 5, 6);
        Gemm.Run(ta, false, tb, false, tc, 1f, 0f, null, variant);
        var expected = new float[30];
        Gemm.Reference(a, false, b, false, expected, 1, 5, 6, 9);
        TestData.AssertClose(tc.ToHost(), expected, 1e-5, "gemm rank 2");
    }

    /// <summary>
    /// Split-K adds its partial sums inside the GEMM kernel (the last block of a tile to finish does it): the result
    /// is bitwise the splits' sums added in split order, whichever block finishes last, launch after launch (the
    /// tile counters are left at zero). 100 = 40 + 40 + 20 along k: three splits; each split's sum runs along k in
    /// float without fused multiply-adds on the CPU accelerator, as the host reference does.
    /// </summary>
    [TestCase("Tile32SplitK")]
    [TestCase("Tile64x32SplitK")]
    public void SplitK_IsTheSplitSumsAddedInOrder_Bitwise(string tiled)
    {
        var dev = DeviceFor(tiled);
        const int batch = 2, m = 70, n = 37, k = 100, kPer = 40;
        var a = TestData.Random(batch * m * k, 11);
        var b = TestData.Random(batch * k * n, 12);
        var expected = new float[batch * m * n];
        for (int bi = 0; bi < batch; bi++)
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    float total = 0;
                    for (int k0 = 0; k0 < k; k0 += kPer)
                    {
                        float split = 0;
                        for (int kk = k0; kk < Math.Min(k, k0 + kPer); kk++)
                            split += a[(bi * m + i) * k + kk] * b[(bi * k + kk) * n + j];
                        total += split;
                    }
                    expected[(bi * m + i) * n + j] = total;
                }
        using var ta = Tensor.FromHost(dev, a, batch, m, k);
        using var tb = Tensor.FromHost(dev, b, batch, k, n);
        using var tc = Tensor.Empty(dev, batch, m, n);
        for (int run = 0; run < 3; run++)
        {
            tc.CopyFrom(Enumerable.Repeat(float.NaN, batch * m * n).ToArray());
            Gemm.Run(ta, false, tb, false, tc, 1f, 0f, null, Variant(tiled));
            var got = tc.ToHost();
            for (int i = 0; i < got.Length; i++)
                if (BitConverter.SingleToInt32Bits(got[i]) != BitConverter.SingleToInt32Bits(expected[i]))
                    Assert.Fail($"run {run}, element {i}: {got[i]:R} but the in-order split sum is {expected[i]:R}");
        }
    }

    [Test]
    public void Rejects_MismatchedInnerDimension()
    {
        var dev = TestDevices.Cpu;
        using var a = Tensor.Zeros(dev, 4, 5);
        using var b = Tensor.Zeros(dev, 6, 3);
        using var c = Tensor.Zeros(dev, 4, 3);
        var ex = Assert.Throws<ArgumentException>(() => Gemm.Run(a, false, b, false, c));
        Assert.That(ex!.Message, Does.Contain("[4, 5]").And.Contain("[6, 3]"));
    }

    [Test]
    public void Rejects_WrongOutputShape()
    {
        var dev = TestDevices.Cpu;
        using var a = Tensor.Zeros(dev, 2, 4, 5);
        using var b = Tensor.Zeros(dev, 3, 5);
        using var c = Tensor.Zeros(dev, 2, 4, 5);
        var ex = Assert.Throws<ArgumentException>(() => Gemm.Run(a, false, b, true, c));
        Assert.That(ex!.Message, Does.Contain("expected C of shape [2, 4, 3] but got [2, 4, 5]"));
    }

    [Test]
    public void Rejects_BatchedOperandWithRankTwoOutput()
    {
        var dev = TestDevices.Cpu;
        using var a = Tensor.Zeros(dev, 2, 4, 5);
        using var b = Tensor.Zeros(dev, 5, 3);
        using var c = Tensor.Zeros(dev, 4, 3);
        var ex = Assert.Throws<ArgumentException>(() => Gemm.Run(a, false, b, false, c));
        Assert.That(ex!.Message, Does.Contain("[2, 4, 5]").And.Contain("[4, 3]"));
    }

    [Test]
    public void Rejects_WrongBiasShape()
    {
        var dev = TestDevices.Cpu;
        using var a = Tensor.Zeros(dev, 4, 5);
        using var b = Tensor.Zeros(dev, 5, 3);
        using var c = Tensor.Zeros(dev, 4, 3);
        using var bias = Tensor.Zeros(dev, 4);
        var ex = Assert.Throws<ArgumentException>(() => Gemm.Run(a, false, b, false, c, biasPerColumn: bias));
        Assert.That(ex!.Message, Does.Contain("expected bias of shape [3] but got [4]"));
    }

    [TestCase("RegisterTile", false, true)]
    [TestCase("RegisterTile", true, false)]
    [TestCase("Tile64", false, false)]
    [TestCase("Tile32", true, true)]
    [TestCase("Tile32SplitK", true, true)]
    public void Linear_MatchesReference(string tiled, bool sequence, bool bias)
    {
        var variant = Variant(tiled);
        var dev = DeviceFor(tiled);
        const int n = 3, t = 5, inF = 33, outF = 17;
        int rows = sequence ? n * t : n;
        var x = TestData.Random(rows * inF, 7);
        var w = TestData.Random(outF * inF, 8);
        var bi = bias ? TestData.Random(outF, 9) : [];
        using var tx = Tensor.FromHost(dev, x, sequence ? [n, t, inF] : [n, inF]);
        using var tw = Tensor.FromHost(dev, w, outF, inF);
        using var tbias = bias ? Tensor.FromHost(dev, bi, outF) : null;
        using var ty = Tensor.Empty(dev, sequence ? [n, t, outF] : [n, outF]);
        Linear.Run(tx, tw, tbias, ty, variant);
        var expected = new float[rows * outF];
        Linear.Reference(x, w, bi, expected, rows, inF, outF);
        TestData.AssertClose(ty.ToHost(), expected, 1e-5, $"linear {variant}");
    }

    [Test]
    public void Linear_PublicRunUsesDeviceVariant()
    {
        var dev = TestDevices.Cpu;
        var x = TestData.Random(2 * 7, 10);
        var w = TestData.Random(3 * 7, 11);
        using var tx = Tensor.FromHost(dev, x, 2, 7);
        using var tw = Tensor.FromHost(dev, w, 3, 7);
        using var ty = Tensor.Empty(dev, 2, 3);
        Linear.Run(tx, tw, null, ty);
        var expected = new float[6];
        Linear.Reference(x, w, [], expected, 2, 7, 3);
        TestData.AssertClose(ty.ToHost(), expected, 1e-5, "linear");
    }

    [Test]
    public void Linear_RejectsWrongShapes()
    {
        var dev = TestDevices.Cpu;
        using var x = Tensor.Zeros(dev, 2, 7);
        using var w = Tensor.Zeros(dev, 3, 8);
        using var y = Tensor.Zeros(dev, 2, 3);
        var ex = Assert.Throws<ArgumentException>(() => Linear.Run(x, w, null, y));
        Assert.That(ex!.Message, Does.Contain("[3, 8]").And.Contain("[2, 7]"));
        using var w2 = Tensor.Zeros(dev, 4, 7);
        ex = Assert.Throws<ArgumentException>(() => Linear.Run(x, w2, null, y));
        Assert.That(ex!.Message, Does.Contain("expected y of shape [2, 4] but got [2, 3]"));
    }

    [Test, Category("Gpu")]
    public void Gpu_Gemm512_MatchesReference()
    {
        var dev = TestDevices.Gpu;
        const int s = 512;
        var a = TestData.Random(s * s, 21);
        var b = TestData.Random(s * s, 22);
        var bias = TestData.Random(s, 23);
        using var ta = Tensor.FromHost(dev, a, s, s);
        using var tb = Tensor.FromHost(dev, b, s, s);
        using var tbias = Tensor.FromHost(dev, bias, s);
        using var tc = Tensor.Empty(dev, s, s);
        Gemm.Run(ta, false, tb, true, tc, 1f, 0f, tbias);
        dev.Synchronize();
        var sw = System.Diagnostics.Stopwatch.StartNew();
        const int reps = 20;
        for (int i = 0; i < reps; i++) Gemm.Run(ta, false, tb, true, tc, 1f, 0f, tbias);
        dev.Synchronize();
        double ms = sw.Elapsed.TotalMilliseconds / reps;
        var expected = new float[s * s];
        Gemm.Reference(a, false, b, true, expected, 1, s, s, s, 1f, 0f, bias);
        var got = tc.ToHost();
        TestContext.Out.WriteLine($"gemm 512^3 on {dev.Description}: {ms:F3} ms ({2.0 * s * s * s / ms / 1e6:F0} GFLOP/s), " +
            $"max abs error {TestData.MaxAbsError(got, expected):E3}, relative L2 {TestData.RelativeError(got, expected):E3}");
        TestData.AssertClose(got, expected, 1e-4, "gemm 512 on GPU");
    }

    [Test, Category("Gpu")]
    public void Gpu_AwkwardShapes_MatchReference()
    {
        var dev = TestDevices.Gpu;
        foreach (var p in Problems)
        {
            int batch = (int)p[0], m = (int)p[1], n = (int)p[2], k = (int)p[3];
            bool transA = (bool)p[4], transB = (bool)p[5], bias = (bool)p[6], sharedA = (bool)p[8], sharedB = (bool)p[9];
            float beta = (float)p[7];
            var a = TestData.Random((sharedA ? 1 : batch) * m * k, 1);
            var b = TestData.Random((sharedB ? 1 : batch) * k * n, 2);
            var c = TestData.Random(batch * m * n, 3);
            var bi = bias ? TestData.Random(n, 4) : [];
            int[] aShape = transA ? [k, m] : [m, k], bShape = transB ? [n, k] : [k, n];
            using var ta = Tensor.FromHost(dev, a, sharedA ? aShape : [batch, .. aShape]);
            using var tb = Tensor.FromHost(dev, b, sharedB ? bShape : [batch, .. bShape]);
            using var tc = Tensor.FromHost(dev, c, batch, m, n);
            using var tbias = bias ? Tensor.FromHost(dev, bi, n) : null;
            Gemm.Run(ta, transA, tb, transB, tc, 0.75f, beta, tbias);
            Gemm.Reference(a, transA, b, transB, c, batch, m, n, k, 0.75f, beta, bi);
            var got = tc.ToHost();
            TestContext.Out.WriteLine($"b{batch} {m}x{n}x{k} tA={transA} tB={transB}: max abs {TestData.MaxAbsError(got, c):E3}, rel L2 {TestData.RelativeError(got, c):E3}");
            TestData.AssertClose(got, c, 1e-5, $"gemm on GPU b{batch} {m}x{n}x{k}");
        }
    }

    /// <summary>The in-kernel split-K sum on a GPU (atomic tickets, device fences, blocks finishing in any order): right,
    /// and bitwise the same launch after launch.</summary>
    [TestCase("Tile32SplitK"), TestCase("Tile64x32SplitK"), TestCase("Tiled"), Category("Gpu")]
    public void Gpu_SplitK_IsDeterministicAndRight(string tiled)
    {
        var dev = TestDevices.Gpu;
        const int batch = 1, m = 70, n = 37, k = 1000;
        var a = TestData.Random(batch * m * k, 31);
        var b = TestData.Random(batch * k * n, 32);
        using var ta = Tensor.FromHost(dev, a, m, k);
        using var tb = Tensor.FromHost(dev, b, k, n);
        using var tc = Tensor.Empty(dev, m, n);
        Gemm.Run(ta, false, tb, false, tc, 1f, 0f, null, Variant(tiled));
        var first = tc.ToHost();
        for (int run = 0; run < 20; run++)
        {
            Gemm.Run(ta, false, tb, false, tc, 1f, 0f, null, Variant(tiled));
            Assert.That(tc.ToHost(), Is.EqualTo(first), $"launch {run + 2} differs from the first");
        }
        var expected = new float[m * n];
        Gemm.Reference(a, false, b, false, expected, 1, m, n, k);
        TestData.AssertClose(first, expected, 1e-4, $"split-K gemm on GPU ({tiled})");
    }
}

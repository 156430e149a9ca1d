using ILGPU.Runtime;
using NUnit.Framework;
using PosteriorGpu.Kernels.Conv;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Gemm;
using PosteriorGpu.Kernels.Norm;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Tests.Kernels;

/// <summary>A normalised convolution that also prepares the GroupNorm table of its output for the next layer
/// (<see cref="Conv2dNormalized.RunPreparingNext(Tensor, int, Tensor, Tensor, float, bool, Tensor, Tensor?, Tensor, Conv2dParams, OutputNorm, Tensor?, Tensor?, float, PreparedGroupNorm?)"/>,
/// <see cref="GemmNormStats"/>): the output bitwise the plain launch's, the table the reference's of that
/// output, on the core tiles the convolutions use (split-K included) on a 256-thread CPU accelerator.</summary>
public class Conv2dNormalizedPreparingTests
{
    /// <summary>(images, Cin, groups, H, W, Cout, groups of the next norm).</summary>
    private static readonly (int N, int Cin, int Groups, int H, int W, int Cout, int NextGroups)[] Problems =
    [
        (1, 8, 4, 8, 8, 16, 8),       // 64 positions: 2 tiles of 32 pixels, 1 of 64
        (2, 6, 3, 8, 16, 70, 10),     // two images, channel rows past 64, 7 channels a group
        (1, 4, 2, 16, 10, 8, 1),      // 160 positions: 5 tiles of 32 (the merge's remainder), not whole tiles of 64
        (3, 4, 2, 8, 12, 6, 3),       // three images of 96 positions: 3 tiles of 32 each
        (1, 8, 4, 4, 4, 16, 8),       // one image of 16 positions, narrower than any tile (a 4x4 level at batch 1)
    ];

    private static readonly string[] Tiles = ["Tile64", "Tile64x32", "Tile64x32SplitK"];

    /// <summary>Every problem on the tiles the preparing launch runs; 128x128 (not served: the plain launch) and the
    /// heuristic's choice on the first problem only (the suite's time is counted).</summary>
    private static IEnumerable<TestCaseData> Cases() =>
        (from v in Tiles
         from i in Enumerable.Range(0, Problems.Length)
         select new TestCaseData(v, i).SetArgDisplayNames(v, $"problem {i}"))
        .Concat(from v in new[] { "Tile128", "Tiled" } select new TestCaseData(v, 0).SetArgDisplayNames(v, "problem 0"));

    [TestCaseSource(nameof(Cases))]
    public void Output_IsBitwiseThePlainLaunch_AndTheTableIsTheReferenceOfIt(string tiled, int index) =>
        Check(TestDevices.CpuWide, tiled, index);

    [Test, Category("Gpu")]
    public void Gpu_Output_IsBitwiseThePlainLaunch_AndTheTableIsTheReferenceOfIt()
    {
        for (int i = 0; i < Problems.Length; i++) Check(TestDevices.Gpu, "Tiled", i);
    }

    private static void Check(GpuDevice dev, string tiled, int index)
    {
        var (n, cin, groups, h, w, cout, nextGroups) = Problems[index];
        var variant = GemmTests.Variant(tiled);
        using var c = Case.Make(dev, n, cin, groups, h, w, cout, nextGroups, seed: 20 + index);
        using var plain = Tensor.Empty(dev, n, cout, h, w);
        Conv2dNormalized.Run(c.X, groups, c.Gamma, c.Beta, 1e-6f, true, c.Weight, c.Bias, plain, c.P, c.Add, null, 1f, variant);
        using var y = Tensor.Empty(dev, n, cout, h, w);
        var prepared = c.RunPreparing(y, variant);
        Assert.That(y.ToHost(), Is.EqualTo(plain.ToHost()), "the output is the plain launch's, bitwise");

        int positions = h * w;
        bool Narrow(int tileN) => n == 1 && positions < tileN && positions % 4 == 0;
        bool served = tiled switch
        {
            "Tile64" => positions % 64 == 0 || Narrow(64),
            "Tile64x32" or "Tile64x32SplitK" => positions % 32 == 0 || Narrow(32),
            "Tile128" => false,
            _ => prepared is not null,   // the heuristic's choice
        };
        Assert.That(prepared is not null, Is.EqualTo(served), "prepared exactly where the plan serves it");
        if (prepared is null) return;

        var expected = new float[2 * n * cout];
        GroupNormTable.Reference(y.ToHost(), n, cout, nextGroups, positions, c.NextGamma.ToHost(), c.NextBeta.ToHost(), 1e-5f, expected);
        var table = new float[expected.Length];
        prepared!.Value.Table.SubView(0, table.Length).CopyToCPU(table);
        TestData.AssertClose(table, expected, 5e-6, $"prepared table tiled={tiled}");

        // The consumer with the prepared table against the specification. (Its output cancels large terms, x scale + shift
        // with |shift| >> the result, so it is compared as the other normalised-conv tests are, not to the table's accuracy.)
        var wt2 = TestData.Random(cout * cout * 9, 40 + index, 0.2f);
        using var weight2 = Tensor.FromHost(dev, wt2, cout, cout, 3, 3);
        using var fromPrepared = Tensor.Empty(dev, n, cout, h, w);
        Conv2dNormalized.Run(y, nextGroups, c.NextGamma, c.NextBeta, 1e-5f, true, weight2, null, fromPrepared, c.P, null, null, 1f, variant, prepared);
        var reference = new float[fromPrepared.Length];
        Conv2dNormalized.Reference(y.ToHost(), n, cout, h, w, nextGroups, c.NextGamma.ToHost(), c.NextBeta.ToHost(), 1e-5f, true, wt2, cout, 3, 3,
            null, reference, c.P);
        TestData.AssertClose(fromPrepared.ToHost(), reference, 1e-4, $"consumer with the prepared table tiled={tiled}");
    }

    /// <summary>Two preparing launches in a row (the launch ticket is left at zero) each give their own output's table; the
    /// first handle is then stale.</summary>
    [Test]
    public void RepeatedLaunches_EachPrepareTheirOwnTable_AndAnOverwrittenOneIsRefused()
    {
        var dev = TestDevices.CpuWide;
        using var a = Case.Make(dev, 1, 8, 4, 8, 8, 16, 8, seed: 50);
        using var b = Case.Make(dev, 1, 8, 4, 8, 8, 16, 8, seed: 51);
        using var ya = Tensor.Empty(dev, 1, 16, 8, 8);
        using var yb = Tensor.Empty(dev, 1, 16, 8, 8);
        var pa = a.RunPreparing(ya, GemmVariant.Tile64x32SplitK)!;
        var tableA = new float[2 * 16];
        pa!.Value.Table.SubView(0, tableA.Length).CopyToCPU(tableA);
        var pb = b.RunPreparing(yb, GemmVariant.Tile64x32SplitK)!;
        var tableB = new float[2 * 16];
        pb!.Value.Table.SubView(0, tableB.Length).CopyToCPU(tableB);
        foreach (var (y, c, table) in new[] { (ya, a, tableA), (yb, b, tableB) })
        {
            var expected = new float[table.Length];
            GroupNormTable.Reference(y.ToHost(), 1, 16, 8, 64, c.NextGamma.ToHost(), c.NextBeta.ToHost(), 1e-5f, expected);
            TestData.AssertClose(table, expected, 5e-6, "table of each launch");
        }

        using var y2 = Tensor.Empty(dev, 1, 16, 8, 8);
        using var w2 = Tensor.Zeros(dev, 16, 16, 3, 3);
        var stale = Assert.Throws<InvalidOperationException>(() => Conv2dNormalized.Run(ya, 8, a.NextGamma, a.NextBeta, 1e-5f, true, w2, null, y2,
            a.P, null, null, 1f, GemmVariant.Tile64x32, pa));
        Assert.That(stale!.Message, Does.Contain("overwritten"));
        var other = Assert.Throws<ArgumentException>(() => Conv2dNormalized.Run(ya, 8, b.NextGamma, b.NextBeta, 1e-5f, true, w2, null, y2,
            a.P, null, null, 1f, GemmVariant.Tile64x32, pb));
        Assert.That(other!.Message, Does.Contain("another tensor"));
        var parameters = Assert.Throws<ArgumentException>(() => Conv2dNormalized.Run(yb, 4, b.NextGamma, b.NextBeta, 1e-5f, true, w2, null, y2,
            a.P, null, null, 1f, GemmVariant.Tile64x32, pb));
        Assert.That(parameters!.Message, Does.Contain("other parameters"));
        var shape = Assert.Throws<ArgumentException>(() => a.RunPreparing(y2, GemmVariant.Tile64x32, nextGroups: 3));
        Assert.That(shape!.Message, Does.Contain("groups"));
    }

    /// <summary>A chain as a resnet runs it: conv1 prepares norm2's table and consumes norm1's; conv2 consumes norm2's and
    /// prepares the next norm1's (its input's table stays readable while it writes the next: two table buffers in turn);
    /// conv2 with its 1x1 shortcut and a plain conv (conv_in, a downsampler) prepare likewise. Each output is bitwise its
    /// plain launch's with the consumer's own table, each table the reference's of its output.</summary>
    [TestCase("Tile64x32SplitK")]
    [TestCase("Tile64")]
    public void Chains_OfPreparingLaunches_ReadOneTableWhileWritingTheNext(string tiled)
    {
        var dev = TestDevices.CpuWide;
        var variant = GemmTests.Variant(tiled);
        const int h = 8, w = 8, cin = 4, c = 16, c2 = 24;
        using var a = Case.Make(dev, 1, cin, 2, h, w, c, 8, seed: 60);
        var p = a.P;
        using var x0 = Tensor.FromHost(dev, TestData.Random(cin * h * w, 61), 1, cin, h, w);

        // conv_in: plain conv preparing norm1 (a's gamma/beta as the input norm of the normalised conv below).
        using var convInW = Tensor.FromHost(dev, TestData.Random(cin * cin * 9, 62, 0.3f), cin, cin, 3, 3);
        using var convInB = Tensor.FromHost(dev, TestData.Random(cin, 63).Select(v => 10f + v).ToArray(), cin);
        using var y0 = Tensor.Empty(dev, 1, cin, h, w);
        var norm1 = new GroupNormParameters(2, a.Gamma, a.Beta, 1e-6f);
        var p0 = Conv2d.RunPreparingNext(x0, convInW, convInB, y0, p, norm1, variant);
        using var y0Plain = Tensor.Empty(dev, 1, cin, h, w);
        Conv2d.Run(x0, convInW, convInB, y0Plain, p, null, null, 1f, variant);
        Assert.That(y0.ToHost(), Is.EqualTo(y0Plain.ToHost()), "conv_in's output is the plain launch's");
        AssertTable(p0, y0, norm1, "conv_in -> norm1");

        // conv1: consumes norm1's prepared table, prepares norm2's.
        using var y1 = Tensor.Empty(dev, 1, c, h, w);
        var norm2 = new GroupNormParameters(8, a.NextGamma, a.NextBeta, 1e-5f);
        var p1 = Conv2dNormalized.RunPreparingNext(y0, 2, a.Gamma, a.Beta, 1e-6f, true, a.Weight, a.Bias, y1, p, norm2, a.Add, null, 1f, variant, p0);
        using var y1Own = Tensor.Empty(dev, 1, c, h, w);
        Conv2dNormalized.Run(y0, 2, a.Gamma, a.Beta, 1e-6f, true, a.Weight, a.Bias, y1Own, p, a.Add, null, 1f, variant);
        TestData.AssertClose(y1.ToHost(), y1Own.ToHost(), 1e-4, "conv1 with the prepared norm1 against its own table");
        AssertTable(p1, y1, norm2, "conv1 -> norm2");

        // conv2 + 1x1 shortcut (c -> c2 channels): consumes norm2's table, prepares the next norm1's.
        using var w2 = Tensor.FromHost(dev, TestData.Random(c2 * c * 9, 64, 0.2f), c2, c, 3, 3);
        using var ws = Tensor.FromHost(dev, TestData.Random(c2 * cin, 65, 0.5f), c2, cin, 1, 1);
        using var bs = Tensor.FromHost(dev, TestData.Random(c2, 66), c2);
        using var g3 = Tensor.FromHost(dev, TestData.Random(c2, 67), c2);
        using var b3 = Tensor.FromHost(dev, TestData.Random(c2, 68), c2);
        var norm3 = new GroupNormParameters(4, g3, b3, 1e-5f);
        // The plain launch first: p1 is current until the next preparing launch.
        using var y2Plain = Tensor.Empty(dev, 1, c2, h, w);
        Conv2dNormalized.RunWithShortcut(y1, 8, a.NextGamma, a.NextBeta, 1e-5f, true, w2, null, y0, ws, bs, y2Plain, p, 0.5f, variant, p1);
        using var y2 = Tensor.Empty(dev, 1, c2, h, w);
        var p2 = Conv2dNormalized.RunWithShortcutPreparingNext(y1, 8, a.NextGamma, a.NextBeta, 1e-5f, true, w2, null, y0, ws, bs, y2, p, norm3,
            0.5f, variant, p1);
        Assert.That(y2.ToHost(), Is.EqualTo(y2Plain.ToHost()), "conv2 + shortcut's output is the plain launch's");
        AssertTable(p2, y2, norm3, "conv2 + shortcut -> next norm1");
    }

    private static void AssertTable(PreparedGroupNorm? prepared, Tensor y, GroupNormParameters norm, string what)
    {
        Assert.That(prepared, Is.Not.Null, what);
        int n = y.N, channels = y.C, positions = y.Length / (n * channels);
        var expected = new float[2 * n * channels];
        GroupNormTable.Reference(y.ToHost(), n, channels, norm.Groups, positions, norm.Gamma.ToHost(), norm.Beta.ToHost(), norm.Eps, expected);
        var table = new float[expected.Length];
        prepared!.Value.Table.SubView(0, table.Length).CopyToCPU(table);
        TestData.AssertClose(table, expected, 5e-6, what);
    }

    /// <summary>One problem's tensors: x with a mean far from 0 and a ramp along the rows (so the tiles' means differ and
    /// the merge's between-tile term matters), conv1's weights and bias, a time-embedding add, the next norm's gamma and beta.</summary>
    private sealed class Case : IDisposable
    {
        public required Tensor X, Gamma, Beta, Weight, Bias, Add, NextGamma, NextBeta;
        public required int Groups, NextGroups;
        public Conv2dParams P => Conv2dParams.Same(1, 1);

        public static Case Make(GpuDevice dev, int n, int cin, int groups, int h, int w, int cout, int nextGroups, int seed)
        {
            var x = TestData.Random(n * cin * h * w, seed, 1f);
            for (int i = 0; i < x.Length; i++) x[i] += 20f + 3f * (i / w % h) / h;
            return new Case
            {
                X = Tensor.FromHost(dev, x, n, cin, h, w),
                Gamma = Tensor.FromHost(dev, TestData.Random(cin, seed + 1), cin),
                Beta = Tensor.FromHost(dev, TestData.Random(cin, seed + 2), cin),
                Weight = Tensor.FromHost(dev, TestData.Random(cout * cin * 9, seed + 3, 0.3f), cout, cin, 3, 3),
                // A bias far from 0: the output's groups have a large mean, which the merge must not cancel away.
                Bias = Tensor.FromHost(dev, TestData.Random(cout, seed + 4).Select(v => 30f + v).ToArray(), cout),
                Add = Tensor.FromHost(dev, TestData.Random(n * cout, seed + 5), n, cout),
                NextGamma = Tensor.FromHost(dev, TestData.Random(cout, seed + 6), cout),
                NextBeta = Tensor.FromHost(dev, TestData.Random(cout, seed + 7), cout),
                Groups = groups,
                NextGroups = nextGroups,
            };
        }

        public PreparedGroupNorm? RunPreparing(Tensor y, GemmVariant variant, int? nextGroups = null) =>
            Conv2dNormalized.RunPreparingNext(X, Groups, Gamma, Beta, 1e-6f, true, Weight, Bias, y, P,
                new GroupNormParameters(nextGroups ?? NextGroups, NextGamma, NextBeta, 1e-5f), Add, null, 1f, variant);

        public void Dispose()
        {
            foreach (var t in new[] { X, Gamma, Beta, Weight, Bias, Add, NextGamma, NextBeta }) t.Dispose();
        }
    }
}

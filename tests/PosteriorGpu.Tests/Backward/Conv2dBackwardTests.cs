using NUnit.Framework;
using PosteriorGpu.Kernels.Conv;
using PosteriorGpu.Kernels.Gemm;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Tests.Backward;

public class Conv2dBackwardTests
{
    public sealed record Problem(int Batch, int Cin, int Cout, int H, int W, int Kh, int Kw, Conv2dParams P)
    {
        public override string ToString() =>
            $"b{Batch} {Cin}->{Cout} {H}x{W} k{Kh}x{Kw} s{P.Stride} pad({P.PadTop},{P.PadLeft},{P.PadBottom},{P.PadRight})";
    }

    private static readonly Problem[] Problems =
    [
        new(2, 3, 5, 7, 9, 3, 3, Conv2dParams.Same(1, 1)),
        new(2, 5, 3, 8, 8, 3, 3, new Conv2dParams(2, 0, 0, 1, 1)),   // diffusers Downsample2D, padding 0
        new(1, 7, 4, 10, 11, 3, 3, Conv2dParams.Same(2, 1)),         // Downsample2D, padding 1, odd width
        new(2, 4, 7, 9, 6, 1, 1, Conv2dParams.Same(1, 0)),           // conv_shortcut
        new(1, 2, 1, 4, 6, 2, 3, new Conv2dParams(1, 1, 0, 0, 2)),
        new(3, 1, 6, 3, 2, 3, 3, Conv2dParams.Same(1, 1)),
        new(3, 6, 70, 5, 7, 3, 3, Conv2dParams.Same(1, 1)),          // rows past 64: every staged row of the 64-row tiles
    ];

    private sealed record Data(float[] X, float[] W, float[] B, float[] Dy, int Ho, int Wo);

    private static Data Make(Problem p)
    {
        var (ho, wo) = p.P.OutputSize(p.H, p.W, p.Kh, p.Kw);
        return new Data(TestData.Random(p.Batch * p.Cin * p.H * p.W, 1), TestData.Random(p.Cout * p.Cin * p.Kh * p.Kw, 2, 0.3f),
            TestData.Random(p.Cout, 3), TestData.Random(p.Batch * p.Cout * ho * wo, 4), ho, wo);
    }

    private static float[] Forward(Problem p, Data d)
    {
        var y = new float[d.Dy.Length];
        Conv2d.Reference(d.X, p.Batch, p.Cin, p.H, p.W, d.W, p.Cout, p.Kh, p.Kw, d.B, y, p.P);
        return y;
    }

    [TestCaseSource(nameof(Problems))]
    public void Reference_MatchesFiniteDifferences(Problem p)
    {
        var d = Make(p);
        var dx = new float[d.X.Length];
        var dw = new float[d.W.Length];
        var db = new float[p.Cout];
        Conv2dBackward.Reference(d.X, p.Batch, p.Cin, p.H, p.W, d.W, p.Cout, p.Kh, p.Kw, p.P, d.Dy, dx, dw, db);
        Gradients.AssertMatchesFiniteDifferences("dx", () => Forward(p, d), d.X, dx, d.Dy);
        Gradients.AssertMatchesFiniteDifferences("dw", () => Forward(p, d), d.W, dw, d.Dy);
        Gradients.AssertMatchesFiniteDifferences("db", () => Forward(p, d), d.B, db, d.Dy);
    }

    private static IEnumerable<TestCaseData> Cases() =>
        from v in PosteriorGpu.Tests.Kernels.GemmTests.ConvVariants
        from p in Problems
        select new TestCaseData(v, p).SetArgDisplayNames(v, p.ToString());

    [TestCaseSource(nameof(Cases))]
    public void Kernels_MatchReference(string tiled, Problem p)
    {
        var dev = PosteriorGpu.Tests.Kernels.GemmTests.DeviceFor(tiled);
        var d = Make(p);
        var dx = new float[d.X.Length];
        var dw = new float[d.W.Length];
        var db = new float[p.Cout];
        Conv2dBackward.Reference(d.X, p.Batch, p.Cin, p.H, p.W, d.W, p.Cout, p.Kh, p.Kw, p.P, d.Dy, dx, dw, db);
        var variant = PosteriorGpu.Tests.Kernels.GemmTests.Variant(tiled);
        using var tx = Tensor.FromHost(dev, d.X, p.Batch, p.Cin, p.H, p.W);
        using var tw = Tensor.FromHost(dev, d.W, p.Cout, p.Cin, p.Kh, p.Kw);
        using var tdy = Tensor.FromHost(dev, d.Dy, p.Batch, p.Cout, d.Ho, d.Wo);
        using var tdx = Tensor.Empty(dev, tx.Shape);
        using var tdw = Tensor.Empty(dev, tw.Shape);
        using var tdb = Tensor.Empty(dev, p.Cout);
        Conv2dBackward.InputGradient(tdy, tw, p.P, tdx, false, variant);
        Conv2dBackward.WeightGradient(tx, tdy, p.P, tdw, tdb, false, variant);
        TestData.AssertClose(tdx.ToHost(), dx, 1e-5, $"dx {p}");
        TestData.AssertClose(tdw.ToHost(), dw, 1e-5, $"dw {p}");
        TestData.AssertClose(tdb.ToHost(), db, 1e-5, $"db {p}");

        // Accumulating adds the gradient to what is there.
        Conv2dBackward.InputGradient(tdy, tw, p.P, tdx, true, variant);
        Conv2dBackward.WeightGradient(tx, tdy, p.P, tdw, tdb, true, variant);
        TestData.AssertClose(tdx.ToHost(), dx.Select(v => 2 * v).ToArray(), 1e-5, $"2 dx {p}");
        TestData.AssertClose(tdw.ToHost(), dw.Select(v => 2 * v).ToArray(), 1e-5, $"2 dw {p}");
        TestData.AssertClose(tdb.ToHost(), db.Select(v => 2 * v).ToArray(), 1e-5, $"2 db {p}");
    }

    [Test]
    public void PaddingAsWideAsTheKernel_IsRejected()
    {
        var dev = TestDevices.Cpu;
        using var dy = Tensor.Zeros(dev, 1, 1, 6, 6);
        using var w = Tensor.Zeros(dev, 1, 1, 3, 3);
        using var dx = Tensor.Zeros(dev, 1, 1, 2, 2);
        var e = Assert.Throws<ArgumentException>(() => Conv2dBackward.InputGradient(dy, w, Conv2dParams.Same(1, 3), dx));
        Assert.That(e!.Message, Does.Contain("smaller than the 3x3 kernel"));
    }
}

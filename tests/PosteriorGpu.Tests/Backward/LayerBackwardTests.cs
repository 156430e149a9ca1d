using NUnit.Framework;
using PosteriorGpu.Kernels.Activations;
using PosteriorGpu.Kernels.Attention;
using PosteriorGpu.Kernels.Gemm;
using PosteriorGpu.Kernels.Layout;
using PosteriorGpu.Kernels.Norm;
using PosteriorGpu.Kernels.Reductions;
using PosteriorGpu.Kernels.Resample;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Tests.Backward;

/// <summary>Each backward reference against finite differences of its forward reference, and each
/// backward kernel on the CPU accelerator against its reference.</summary>
public class LayerBackwardTests
{
    [TestCase(5, 7, 3)]
    [TestCase(12, 16, 24)]
    public void Linear(int rows, int inF, int outF)
    {
        var x = TestData.Random(rows * inF, 1);
        var w = TestData.Random(outF * inF, 2, 0.5f);
        var b = TestData.Random(outF, 3);
        var dy = TestData.Random(rows * outF, 4);
        float[] Forward()
        {
            var y = new float[rows * outF];
            PosteriorGpu.Kernels.Gemm.Linear.Reference(x, w, b, y, rows, inF, outF);
            return y;
        }
        var dx = new float[x.Length];
        var dw = new float[w.Length];
        var db = new float[outF];
        LinearBackward.Reference(x, w, dy, rows, inF, outF, dx, dw, db);
        Gradients.AssertMatchesFiniteDifferences("dx", Forward, x, dx, dy);
        Gradients.AssertMatchesFiniteDifferences("dw", Forward, w, dw, dy);
        Gradients.AssertMatchesFiniteDifferences("db", Forward, b, db, dy);

        var dev = TestDevices.Cpu;
        // x as [N, T, in] (attention tokens) to exercise the rank-3 path.
        using var tx = Tensor.FromHost(dev, x, 1, rows, inF);
        using var tw = Tensor.FromHost(dev, w, outF, inF);
        using var tdy = Tensor.FromHost(dev, dy, 1, rows, outF);
        using var tdx = Tensor.Empty(dev, 1, rows, inF);
        using var tdw = Tensor.Empty(dev, outF, inF);
        using var tdb = Tensor.Empty(dev, outF);
        LinearBackward.InputGradient(tdy, tw, tdx);
        LinearBackward.WeightGradient(tx, tdy, tdw, tdb);
        TestData.AssertClose(tdx.ToHost(), dx, 1e-5, "linear dx");
        TestData.AssertClose(tdw.ToHost(), dw, 1e-5, "linear dw");
        TestData.AssertClose(tdb.ToHost(), db, 1e-5, "linear db");
        LinearBackward.InputGradient(tdy, tw, tdx, accumulate: true);
        LinearBackward.WeightGradient(tx, tdy, tdw, tdb, accumulate: true);
        TestData.AssertClose(tdx.ToHost(), dx.Select(v => 2 * v).ToArray(), 1e-5, "linear 2 dx");
        TestData.AssertClose(tdw.ToHost(), dw.Select(v => 2 * v).ToArray(), 1e-5, "linear 2 dw");
        TestData.AssertClose(tdb.ToHost(), db.Select(v => 2 * v).ToArray(), 1e-5, "linear 2 db");
    }

    [TestCase(2, 6, 15, 3, false, false)]
    [TestCase(3, 8, 16, 4, true, false)]
    [TestCase(1, 4, 1, 1, true, false)]
    [TestCase(2, 6, 15, 3, false, true)]
    [TestCase(3, 8, 300, 4, true, true)]
    [TestCase(1, 4, 1, 1, true, true)]
    public void GroupNorm_(int batch, int channels, int spatial, int groups, bool silu, bool gpuPaths)
    {
        // gpuPaths: the slab variant (one group of threads per (n, group)), run on the CPU accelerator.
        var x = TestData.Random(batch * channels * spatial, 1, 2f);
        for (int i = 0; i < x.Length; i++) x[i] += 0.5f;   // a nonzero mean
        var gamma = TestData.Random(channels, 2);
        var beta = TestData.Random(channels, 3);
        var dy = TestData.Random(x.Length, 4);
        const float eps = 1e-5f;
        float[] Forward()
        {
            var y = new float[x.Length];
            GroupNorm.Reference(x, batch, channels, spatial, groups, gamma, beta, eps, y, silu);
            return y;
        }
        var dx = new float[x.Length];
        var dg = new float[channels];
        var db = new float[channels];
        GroupNormBackward.Reference(x, batch, channels, spatial, groups, gamma, beta, eps, silu, dy, dx, dg, db);
        // A group of one element normalises to 0 whatever x is: its gradient is 0, and the FD step must be small.
        Gradients.AssertMatchesFiniteDifferences("dx", Forward, x, dx, dy, eps: 1e-3f, tolerance: 5e-3);
        Gradients.AssertMatchesFiniteDifferences("dgamma", Forward, gamma, dg, dy);
        Gradients.AssertMatchesFiniteDifferences("dbeta", Forward, beta, db, dy);

        var dev = gpuPaths ? TestDevices.CpuOnGpuPaths : TestDevices.Cpu;
        using var tx = Tensor.FromHost(dev, x, batch, channels, spatial);
        using var tg = Tensor.FromHost(dev, gamma, channels);
        using var tb = Tensor.FromHost(dev, beta, channels);
        using var tdy = Tensor.FromHost(dev, dy, batch, channels, spatial);
        using var tdx = Tensor.Empty(dev, batch, channels, spatial);
        using var tdg = Tensor.Empty(dev, channels);
        using var tdb = Tensor.Empty(dev, channels);
        GroupNormBackward.Run(tx, groups, tg, tb, eps, silu, tdy, tdx, false, tdg, tdb, false);
        TestData.AssertClose(tdx.ToHost(), dx, 1e-4, "group norm dx");
        TestData.AssertClose(tdg.ToHost(), dg, 1e-5, "group norm dgamma");
        TestData.AssertClose(tdb.ToHost(), db, 1e-5, "group norm dbeta");
        GroupNormBackward.Run(tx, groups, tg, tb, eps, silu, tdy, tdx, true, tdg, tdb, true);
        TestData.AssertClose(tdx.ToHost(), dx.Select(v => 2 * v).ToArray(), 1e-4, "group norm 2 dx");
        TestData.AssertClose(tdg.ToHost(), dg.Select(v => 2 * v).ToArray(), 1e-5, "group norm 2 dgamma");
    }

    [Test]
    public void Silu_()
    {
        var x = TestData.Random(3001, 1, 8f);
        x[0] = -200f;   // exp overflows: the derivative must be 0, not NaN
        var dy = TestData.Random(x.Length, 2);
        float[] Forward()
        {
            var y = new float[x.Length];
            Silu.Reference(x, y);
            return y;
        }
        var dx = new float[x.Length];
        SiluBackward.Reference(x, dy, dx);
        Gradients.AssertMatchesFiniteDifferences("dx", Forward, x, dx, dy, eps: 1e-3f);
        var dev = TestDevices.Cpu;
        using var tx = Tensor.FromHost(dev, x, x.Length);
        using var tdy = Tensor.FromHost(dev, dy, x.Length);
        using var tdx = Tensor.Empty(dev, x.Length);
        SiluBackward.Run(tx, tdy, tdx);
        var got = tdx.ToHost();
        Assert.That(got[0], Is.EqualTo(0f));
        TestData.AssertClose(got, dx, 1e-6, "silu dx");
    }

    [TestCase(2, 5, 7, 8, 2, null)]
    [TestCase(1, 16, 16, 12, 3, 0.7f)]
    [TestCase(2, 64, 64, 8, 1, null)]
    public void Attention(int batch, int queries, int keys, int channels, int heads, float? scale)
    {
        var q = TestData.Random(batch * queries * channels, 1, 2f);
        var k = TestData.Random(batch * keys * channels, 2, 2f);
        var v = TestData.Random(batch * keys * channels, 3);
        var dy = TestData.Random(q.Length, 4);
        float[] Forward()
        {
            var y = new float[q.Length];
            SpatialAttention.Reference(q, k, v, batch, queries, keys, channels, heads, y, scale);
            return y;
        }
        var dq = new float[q.Length];
        var dk = new float[k.Length];
        var dv = new float[v.Length];
        SpatialAttentionBackward.Reference(q, k, v, batch, queries, keys, channels, heads, dy, dq, dk, dv, scale);
        Gradients.AssertMatchesFiniteDifferences("dq", Forward, q, dq, dy, eps: 1e-3f);
        Gradients.AssertMatchesFiniteDifferences("dk", Forward, k, dk, dy, eps: 1e-3f);
        Gradients.AssertMatchesFiniteDifferences("dv", Forward, v, dv, dy, eps: 1e-3f);

        var dev = TestDevices.Cpu;
        using var tq = Tensor.FromHost(dev, q, batch, queries, channels);
        using var tk = Tensor.FromHost(dev, k, batch, keys, channels);
        using var tv = Tensor.FromHost(dev, v, batch, keys, channels);
        using var tdy = Tensor.FromHost(dev, dy, batch, queries, channels);
        using var tdq = Tensor.Empty(dev, tq.Shape);
        using var tdk = Tensor.Empty(dev, tk.Shape);
        using var tdv = Tensor.Empty(dev, tv.Shape);
        SpatialAttentionBackward.Run(tq, tk, tv, heads, tdy, tdq, tdk, tdv, scale);
        TestData.AssertClose(tdq.ToHost(), dq, 1e-5, "attention dq");
        TestData.AssertClose(tdk.ToHost(), dk, 1e-5, "attention dk");
        TestData.AssertClose(tdv.ToHost(), dv, 1e-5, "attention dv");
    }

    [Test]
    public void Upsample2x_()
    {
        int n = 2, c = 3, h = 5, w = 3;
        var x = TestData.Random(n * c * h * w, 1);
        var dy = TestData.Random(4 * x.Length, 2);
        float[] Forward()
        {
            var y = new float[4 * x.Length];
            Upsample2x.Reference(x, n * c, h, w, y);
            return y;
        }
        var dx = new float[x.Length];
        Upsample2xBackward.Reference(dy, n * c, h, w, dx);
        Gradients.AssertMatchesFiniteDifferences("dx", Forward, x, dx, dy);
        var dev = TestDevices.Cpu;
        using var tdy = Tensor.FromHost(dev, dy, n, c, 2 * h, 2 * w);
        using var tdx = Tensor.Empty(dev, n, c, h, w);
        Upsample2xBackward.Run(tdy, tdx);
        TestData.AssertClose(tdx.ToHost(), dx, 1e-6, "upsample dx");
        Upsample2xBackward.Run(tdy, tdx, accumulate: true);
        TestData.AssertClose(tdx.ToHost(), dx.Select(v => 2 * v).ToArray(), 1e-6, "upsample 2 dx");
    }

    [Test]
    public void SplitChannels_IsTheAdjointOfConcat()
    {
        int n = 3, ca = 2, cb = 5, s = 7;
        var a = TestData.Random(n * ca * s, 1);
        var b = TestData.Random(n * cb * s, 2);
        var dy = TestData.Random(n * (ca + cb) * s, 3);
        var y = new float[dy.Length];
        ConcatChannels.Reference(a, b, n, y);
        var da = TestData.Random(a.Length, 4);
        var db = TestData.Random(b.Length, 5);
        var daStart = (float[])da.Clone();
        SplitChannels.Reference(dy, n, da, true, db, false);
        // <dy, concat(a, b)> = <da - da0, a> + <db, b>
        double lhs = Gradients.Dot(dy, y), rhs = Gradients.Dot(da.Zip(daStart, (p, q) => p - q).ToArray(), a) + Gradients.Dot(db, b);
        Assert.That(rhs, Is.EqualTo(lhs).Within(1e-4 * Math.Abs(lhs) + 1e-5));

        var dev = TestDevices.Cpu;
        using var tdy = Tensor.FromHost(dev, dy, n, ca + cb, s);
        using var tda = Tensor.FromHost(dev, daStart, n, ca, s);
        using var tdb = Tensor.Zeros(dev, n, cb, s);
        SplitChannels.Run(tdy, tda, true, tdb, false);
        TestData.AssertClose(tda.ToHost(), da, 1e-6, "split a (accumulated)");
        TestData.AssertClose(tdb.ToHost(), db, 1e-6, "split b");
    }

    [TestCase(true, false)]
    [TestCase(false, false)]
    [TestCase(true, true)]
    [TestCase(false, true)]
    public void ChannelSums_(bool perItem, bool gpuPaths)
    {
        // gpuPaths: the grouped GPU variant (one group per output), run on the CPU accelerator.
        int n = 3, c = 5, s = gpuPaths ? 300 : 33;
        var x = TestData.Random(n * c * s, 1);
        var expected = new float[perItem ? n * c : c];
        ChannelSums.Reference(x, n, c, perItem, expected);
        var dev = gpuPaths ? TestDevices.CpuOnGpuPaths : TestDevices.Cpu;
        using var tx = Tensor.FromHost(dev, x, n, c, s);
        using var sums = perItem ? Tensor.Empty(dev, n, c) : Tensor.Empty(dev, c);
        ChannelSums.Run(tx, sums, perItem);
        TestData.AssertClose(sums.ToHost(), expected, 1e-6, "channel sums");
        ChannelSums.Run(tx, sums, perItem, accumulate: true);
        TestData.AssertClose(sums.ToHost(), expected.Select(v => 2 * v).ToArray(), 1e-6, "channel sums, accumulated");
        ChannelSums.Run(tx, sums, perItem);
        // Spot-check the reference itself.
        double first = 0;
        for (int i = 0; i < s; i++) first += x[i];
        if (!perItem) for (int m = 1; m < n; m++) for (int i = 0; i < s; i++) first += x[m * c * s + i];
        Assert.That(expected[0], Is.EqualTo(first).Within(1e-5));
    }
}

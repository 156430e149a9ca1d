using NUnit.Framework;
using PosteriorGpu.Kernels.Activations;
using PosteriorGpu.Kernels.Attention;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Embedding;
using PosteriorGpu.Kernels.Layout;
using PosteriorGpu.Kernels.Norm;
using PosteriorGpu.Kernels.Resample;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Tests.Kernels;

/// <summary>The U-Net's layer kernels against their references, on the CPU accelerator (and the GPU
/// when there is one).</summary>
public class LayerKernelTests
{
    internal static void CheckGroupNorm(GpuDevice dev, int n, int c, int spatial, int groups, bool silu, bool inPlace, double tol)
    {
        // An offset mean makes a naive one-pass variance visibly wrong.
        var x = TestData.Random(n * c * spatial, 1, 2f).Select(v => v + 3f).ToArray();
        var gamma = TestData.Random(c, 2);
        var beta = TestData.Random(c, 3);
        using var tx = Tensor.FromHost(dev, x, n, c, spatial);
        using var tg = Tensor.FromHost(dev, gamma, c);
        using var tb = Tensor.FromHost(dev, beta, c);
        using var ty = inPlace ? tx.Reshape(n, c, spatial) : Tensor.Empty(dev, n, c, spatial);
        GroupNorm.Run(tx, groups, tg, tb, 1e-5f, ty, silu);
        var expected = new float[x.Length];
        GroupNorm.Reference(x, n, c, spatial, groups, gamma, beta, 1e-5f, silu, expected);
        TestData.AssertClose(ty.ToHost(), expected, tol, $"group norm n={n} c={c} s={spatial} g={groups}");
    }

    [TestCase(1, 1, 1, 1, false, false)]
    [TestCase(3, 6, 35, 3, true, false)]
    [TestCase(2, 8, 16 * 16, 8, false, true)]
    [TestCase(1, 5, 7, 5, true, true)]
    [TestCase(2, 64, 32 * 32, 32, true, false)]
    public void GroupNorm_MatchesReference(int n, int c, int spatial, int groups, bool silu, bool inPlace) =>
        CheckGroupNorm(TestDevices.Cpu, n, c, spatial, groups, silu, inPlace, 1e-5);

    [Test]
    public void GroupNorm_RejectsBadGroupsAndShapes()
    {
        var dev = TestDevices.Cpu;
        using var x = Tensor.Zeros(dev, 2, 6, 4);
        using var g = Tensor.Zeros(dev, 6);
        using var wrong = Tensor.Zeros(dev, 5);
        Assert.That(Assert.Throws<ArgumentException>(() => GroupNorm.Run(x, 4, g, g, 1e-5f, x))!.Message, Does.Contain("4 groups"));
        Assert.That(Assert.Throws<ArgumentException>(() => GroupNorm.Run(x, 3, wrong, g, 1e-5f, x))!.Message, Does.Contain("[6]").And.Contain("[5]"));
    }

    [TestCase(1)]
    [TestCase(4097)]
    public void Silu_MatchesReference(int n)
    {
        var dev = TestDevices.Cpu;
        var x = TestData.Random(n, 4, 8f);
        using var tx = Tensor.FromHost(dev, x, n);
        Silu.Run(tx, tx);
        var expected = new float[n];
        Silu.Reference(x, expected);
        TestData.AssertClose(tx.ToHost(), expected, 1e-6, "silu");
    }

    [TestCase(1, 1, 1, 1)]
    [TestCase(2, 3, 5, 7)]
    public void Upsample2x_MatchesReference(int n, int c, int h, int w)
    {
        var dev = TestDevices.Cpu;
        var x = TestData.Random(n * c * h * w, 5);
        using var tx = Tensor.FromHost(dev, x, n, c, h, w);
        using var ty = Tensor.Empty(dev, n, c, 2 * h, 2 * w);
        Upsample2x.Run(tx, ty);
        var expected = new float[ty.Length];
        Upsample2x.Reference(x, n * c, h, w, expected);
        Assert.That(ty.ToHost(), Is.EqualTo(expected));
        using var bad = Tensor.Empty(dev, n, c, 2 * h, 2 * w + 1);
        Assert.Throws<ArgumentException>(() => Upsample2x.Run(tx, bad));
    }

    [TestCase(1, 1, 1, 1, 1)]
    [TestCase(3, 2, 5, 3, 7)]
    public void ConcatChannels_MatchesReference(int n, int ca, int cb, int h, int w)
    {
        var dev = TestDevices.Cpu;
        var a = TestData.Random(n * ca * h * w, 6);
        var b = TestData.Random(n * cb * h * w, 7);
        using var ta = Tensor.FromHost(dev, a, n, ca, h, w);
        using var tb = Tensor.FromHost(dev, b, n, cb, h, w);
        using var ty = Tensor.Empty(dev, n, ca + cb, h, w);
        ConcatChannels.Run(ta, tb, ty);
        var expected = new float[ty.Length];
        ConcatChannels.Reference(a, b, n, ca * h * w, cb * h * w, expected);
        Assert.That(ty.ToHost(), Is.EqualTo(expected));
        using var wrongH = Tensor.Empty(dev, n, cb, h + 1, w);
        Assert.That(Assert.Throws<ArgumentException>(() => ConcatChannels.Run(ta, wrongH, ty))!.Message, Does.Contain($"[{n}, {cb}, {h + 1}, {w}]"));
    }

    [TestCase(1, 1, 1, 1, true)]
    [TestCase(2, 5, 3, 7, true)]
    [TestCase(3, 4, 4, 4, false)]
    public void Tokens_RoundTripMatchesReference(int n, int c, int h, int w, bool residual)
    {
        var dev = TestDevices.Cpu;
        int p = h * w;
        var x = TestData.Random(n * c * p, 8);
        var r = TestData.Random(n * c * p, 9);
        using var tx = Tensor.FromHost(dev, x, n, c, h, w);
        using var tokens = Tensor.Empty(dev, n, p, c);
        Tokens.FromImage(tx, tokens);
        var expectedTokens = new float[x.Length];
        Tokens.FromImageReference(x, n, c, p, expectedTokens);
        Assert.That(tokens.ToHost(), Is.EqualTo(expectedTokens));

        using var tr = Tensor.FromHost(dev, r, n, c, h, w);
        using var ty = Tensor.FromHost(dev, Enumerable.Repeat(float.NaN, x.Length).ToArray(), n, c, h, w);
        Tokens.ToImage(tokens, residual ? tr : null, 0.5f, ty);
        var expected = new float[x.Length];
        Tokens.ToImageReference(expectedTokens, residual ? r : [], 0.5f, n, c, p, expected);
        TestData.AssertClose(ty.ToHost(), expected, 1e-7, "tokens to image (NaN in y must not leak)");
    }

    [TestCase(32, true, 0f)]
    [TestCase(33, false, 1f)]
    [TestCase(128, true, 1f)]
    public void TimestepEmbedding_MatchesReference(int dim, bool flip, float shift)
    {
        var dev = TestDevices.Cpu;
        float[] t = [0f, 1f, 17f, 500f, 999f];
        using var tt = Tensor.FromHost(dev, t, t.Length);
        using var ty = Tensor.Empty(dev, t.Length, dim);
        TimestepEmbedding.Run(tt, dim, flip, shift, ty);
        var expected = new float[ty.Length];
        TimestepEmbedding.Reference(t, dim, flip, shift, 1f, 10000, expected);
        // sin/cos of arguments up to 1e3 in float32: absolute error ~ 1e-4 at most.
        Assert.That(TestData.MaxAbsError(ty.ToHost(), expected), Is.LessThan(2e-4));
        // t = 0 gives sin 0 = 0 and cos 0 = 1.
        var row0 = ty.ToHost()[..dim];
        Assert.That(row0[0], Is.EqualTo(flip ? 1f : 0f));
    }

    internal static void CheckAttention(GpuDevice dev, int n, int p, int c, int heads, double tol)
    {
        var q = TestData.Random(n * p * c, 10, 2f);
        var k = TestData.Random(n * p * c, 11, 2f);
        var v = TestData.Random(n * p * c, 12);
        using var tq = Tensor.FromHost(dev, q, n, p, c);
        using var tk = Tensor.FromHost(dev, k, n, p, c);
        using var tv = Tensor.FromHost(dev, v, n, p, c);
        using var to = Tensor.Empty(dev, n, p, c);
        SpatialAttention.Run(tq, tk, tv, heads, to);
        var expected = new float[q.Length];
        SpatialAttention.Reference(q, k, v, n, p, c, heads, 1f / MathF.Sqrt(c / heads), expected);
        TestData.AssertClose(to.ToHost(), expected, tol, $"attention n={n} p={p} c={c} heads={heads}");
    }

    [TestCase(1, 1, 1, 1)]
    [TestCase(3, 7, 6, 2)]
    [TestCase(2, 64, 32, 1)]
    [TestCase(1, 100, 16, 2)]
    public void Attention_MatchesReference(int n, int p, int c, int heads) => CheckAttention(TestDevices.Cpu, n, p, c, heads, 1e-5);

    [Test]
    public void Attention_RejectsBadHeads()
    {
        var dev = TestDevices.Cpu;
        using var q = Tensor.Zeros(dev, 1, 4, 6);
        Assert.That(Assert.Throws<ArgumentException>(() => SpatialAttention.Run(q, q, q, 4, q))!.Message, Does.Contain("4 heads"));
    }

    [Test, Category("Gpu")]
    public void Gpu_LayerKernels_MatchReferences()
    {
        var dev = TestDevices.Gpu;
        CheckGroupNorm(dev, 4, 128, 32 * 32, 32, true, false, 1e-5);
        CheckAttention(dev, 4, 256, 128, 4, 1e-5);
        CheckAttention(dev, 2, 1024, 64, 8, 1e-5);
    }
}

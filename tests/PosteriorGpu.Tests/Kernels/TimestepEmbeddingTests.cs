using NUnit.Framework;
using PosteriorGpu.Kernels.Embedding;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Tests.Kernels;

public class TimestepEmbeddingTests
{
    private static readonly float[] Steps = [0f, 1f, 17.5f, 250f, 999f];

    [TestCase(32, true, 0f, 1f, 10000)]     // UNet2DModel defaults: flip_sin_to_cos=True, freq_shift=0
    [TestCase(33, false, 1f, 1f, 10000)]    // odd dim: zero column
    [TestCase(128, false, 1f, 1000f, 10000)]
    [TestCase(7, true, 0.5f, 1f, 100)]
    [TestCase(1, false, 1f, 1f, 10000)]     // only the zero column
    [TestCase(3, true, 0f, 2f, 10000)]
    public void MatchesReference(int dim, bool flip, float shift, float scale, int maxPeriod)
    {
        var dev = TestDevices.Cpu;
        // scale 1000 with fractional steps: the continuous-time convention (t in [0, 1]).
        var t = scale > 1 ? Steps.Select(s => s / 1000f).ToArray() : Steps;
        using var tt = Tensor.FromHost(dev, t, t.Length);
        using var ty = Tensor.Empty(dev, t.Length, dim);
        TimestepEmbedding.Run(tt, dim, flip, shift, ty, scale, maxPeriod);
        var expected = new float[t.Length * dim];
        TimestepEmbedding.Reference(t, dim, flip, shift, expected, scale, maxPeriod);
        var got = ty.ToHost();
        // Arguments reach ~1000, where one float ulp is 6e-5; the kernel reduces them exactly enough.
        Assert.That(TestData.MaxAbsError(got, expected), Is.LessThan(2e-6));
    }

    [TestCase(32, 1, 999f)]
    [TestCase(33, 3, 17.5f)]    // odd dim, batch > 1
    [TestCase(7, 2, 0f)]
    public void UniformTimestep_IsBitwiseThePerItemForm(int dim, int n, float t)
    {
        // The sampler's form (timestep as a kernel argument) against the per-item form given N copies, and the reference.
        var dev = TestDevices.Cpu;
        using var tt = Tensor.FromHost(dev, Enumerable.Repeat(t, n).ToArray(), n);
        using var perItem = Tensor.Empty(dev, n, dim);
        using var uniform = Tensor.Empty(dev, n, dim);
        TimestepEmbedding.Run(tt, dim, true, 1f, perItem);
        TimestepEmbedding.Run(t, dim, true, 1f, uniform);
        Assert.That(uniform.ToHost(), Is.EqualTo(perItem.ToHost()));
        var expected = new float[n * dim];
        TimestepEmbedding.Reference(Enumerable.Repeat(t, n).ToArray(), dim, true, 1f, expected);
        Assert.That(TestData.MaxAbsError(uniform.ToHost(), expected), Is.LessThan(2e-6));
        using var wrongRank = Tensor.Empty(dev, n, dim, 1);
        Assert.Throws<ArgumentException>(() => TimestepEmbedding.Run(t, dim, true, 1f, wrongRank));
    }

    [Test]
    public void MatchesFormulaWrittenOut()
    {
        // diffusers: exponent = -ln(10000) * i / (half - shift); emb = t * exp(exponent); [sin, cos].
        var dev = TestDevices.Cpu;
        const int dim = 6, half = 3;
        using var tt = Tensor.FromHost(dev, [3f], 1);
        using var ty = Tensor.Empty(dev, 1, dim);
        TimestepEmbedding.Run(tt, dim, false, 1f, ty);
        var y = ty.ToHost();
        for (int i = 0; i < half; i++)
        {
            double e = 3 * Math.Exp(-Math.Log(10000) * i / (half - 1.0));
            Assert.That(y[i], Is.EqualTo(Math.Sin(e)).Within(1e-6), $"sin {i}");
            Assert.That(y[half + i], Is.EqualTo(Math.Cos(e)).Within(1e-6), $"cos {i}");
        }
        TimestepEmbedding.Run(tt, dim, true, 1f, ty);
        var flipped = ty.ToHost();
        Assert.That(flipped, Is.EqualTo(y.Skip(half).Concat(y.Take(half)).ToArray()));
    }

    [Test]
    public void RejectsBadArguments()
    {
        var dev = TestDevices.Cpu;
        using var t = Tensor.Zeros(dev, 3);
        using var y = Tensor.Zeros(dev, 3, 16);
        var ex = Assert.Throws<ArgumentException>(() => TimestepEmbedding.Run(t, 32, false, 1f, y));
        Assert.That(ex!.Message, Does.Contain("[3, 32]").And.Contain("[3, 16]"));
        using var t2 = Tensor.Zeros(dev, 3, 1);
        ex = Assert.Throws<ArgumentException>(() => TimestepEmbedding.Run(t2, 16, false, 1f, y));
        Assert.That(ex!.Message, Does.Contain("[3, 1]"));
        Assert.Throws<ArgumentOutOfRangeException>(() => TimestepEmbedding.Run(t, 0, false, 1f, y));
        using var y2 = Tensor.Zeros(dev, 3, 2);
        Assert.Throws<ArgumentOutOfRangeException>(() => TimestepEmbedding.Run(t, 2, false, 1f, y2));
    }

    [Test, Category("Gpu")]
    public void Gpu_MatchesReference()
    {
        var dev = TestDevices.Gpu;
        var t = Enumerable.Range(0, 64).Select(i => i * 15.86f).ToArray();   // 0 .. 999
        foreach (var dim in new[] { 128, 320, 513 })
        {
            using var tt = Tensor.FromHost(dev, t, t.Length);
            using var ty = Tensor.Empty(dev, t.Length, dim);
            TimestepEmbedding.Run(tt, dim, true, 0f, ty);
            var expected = new float[t.Length * dim];
            TimestepEmbedding.Reference(t, dim, true, 0f, expected);
            var got = ty.ToHost();
            double maxAbs = TestData.MaxAbsError(got, expected);
            TestContext.Out.WriteLine($"timestep embedding dim {dim}: max abs {maxAbs:E2} rel {TestData.RelativeError(got, expected):E2}");
            // GPU exp is approximate (a few ulp of freq), magnified by t up to 1000.
            Assert.That(maxAbs, Is.LessThan(5e-4));
        }
    }
}

using NUnit.Framework;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Tests.Kernels;

/// <summary>
/// The fused noise-drawing updates take one Philox block per four elements; the random stream must stay the one
/// <see cref="Philox.Normal"/> defines per element (seeds reproduce samples across versions). Each kernel is compared
/// bitwise with its per-element reference on awkward lengths and on draws whose offset is not a multiple of four (a
/// batch starting at an odd sample of odd-sized items), so quads straddle the range's ends. Whole quads use 16-byte
/// loads and stores where every view allows (<see cref="QuadSplit.Aligned"/>) and four scalar ones elsewhere: the
/// <c>shift</c> cases run the kernels on views that start 1..3 floats into their buffer, so both variants are compared.
/// </summary>
public class NoiseQuadTests
{
    private static readonly int[] Lengths = [1, 3, 5, 8, 10_007];
    private static readonly long[] Offsets = [0, 1, 2, 3, 4 * 1001 + 3];

    private static IEnumerable<TestCaseData> Cases() =>
        from n in Lengths from o in Offsets select new TestCaseData(n, o).SetArgDisplayNames($"n={n}", $"offset={o}");

    private static readonly int[] Shifts = [0, 1, 2, 3];

    private static IEnumerable<TestCaseData> ShiftedCases() =>
        from n in new[] { 1, 7, 10_007 } from o in new long[] { 0, 3, 4 * 1001 + 2 } from sh in Shifts
        select new TestCaseData(n, o, sh).SetArgDisplayNames($"n={n}", $"offset={o}", $"shift={sh}");

    /// <summary>A tensor [n, 1] holding <paramref name="data"/> whose view starts <paramref name="shift"/> floats into its
    /// buffer (a batch slice), so its quads are 16-byte aligned only when shift matches the draw's head.</summary>
    private static Tensor Shifted(GpuDevice dev, float[] data, int shift, List<Tensor> owners)
    {
        var buffer = Tensor.FromHost(dev, new float[shift].Concat(data).ToArray(), shift + data.Length, 1);
        owners.Add(buffer);
        return buffer.SliceBatch(shift, data.Length);
    }

    [Test]
    public void QuadSplit_CoversTheRangeOnce()
    {
        foreach (int n in new[] { 0, 1, 2, 3, 4, 5, 8, 9, 1001 })
            foreach (long o in new long[] { 0, 1, 2, 3, 4, 7 })
            {
                var split = QuadSplit.For(n, new RandomDraw(1, 2, 3, o));
                Assert.That(split.Lead + 4 * split.Full + split.Tail, Is.EqualTo(n), $"n={n} offset={o}");
                Assert.That(split.Lead, Is.InRange(0, 3));
                Assert.That(split.Tail, Is.InRange(0, 3));
                // Whole quad 0 starts at element Lead, which is lane 0 of the draw's quad FirstQuad.
                if (split.Full > 0) Assert.That(4 * split.FirstQuad - (int)(o & 3), Is.EqualTo(split.Lead));
            }
    }

    [Test]
    public void ItemDivisor_IsIntegerDivision()
    {
        var rng = new System.Random(5);
        foreach (int length in new[] { 1, 2, 3, 4, 5, 7, 12, 768, 3072, 12_288, 1 << 20, 1_000_003, int.MaxValue })
        {
            var d = new ItemDivisor(length);
            foreach (int i in new[] { 0, 1, length - 1, length, int.MaxValue, int.MaxValue - 1 }.Concat(Enumerable.Range(0, 200).Select(_ => rng.Next())))
                if (i >= 0) Assert.That(d.Of(i), Is.EqualTo(i / length), $"{i} / {length}");
        }
    }

    [TestCaseSource(nameof(ShiftedCases))]
    public void FusedUpdates_OnShiftedViews_AreBitwiseTheirReferences(int n, long offset, int shift)
    {
        var dev = TestDevices.Cpu;
        var owners = new List<Tensor>();
        try
        {
            var draw = new RandomDraw(12, 6, 77, offset);
            var x = TestData.Random(n, 21);
            var s = TestData.Random(n, 22);
            var g = TestData.Random(n, 23);
            var p = TestData.Random(n, 24);
            var u = TestData.Random(n, 25);

            var tx = Shifted(dev, x, shift, owners);
            LangevinStep.Run(tx, Shifted(dev, s, 0, owners), Shifted(dev, g, shift, owners), 0.3f, draw);
            var rx = (float[])x.Clone();
            LangevinStep.Reference(rx, s, g, 0.3f, draw);
            Assert.That(tx.ToHost(), Is.EqualTo(rx), "langevin");

            tx = Shifted(dev, x, shift, owners);
            ProximalLangevinStep.Run(tx, Shifted(dev, s, shift, owners), Shifted(dev, g, shift, owners), 0.7f, 0.2f, 0.5f, draw);
            rx = (float[])x.Clone();
            ProximalLangevinStep.Reference(rx, s, g, 0.7f, 0.2f, 0.5f, draw);
            Assert.That(tx.ToHost(), Is.EqualTo(rx), "proximal langevin");

            tx = Shifted(dev, x, shift, owners);
            AddNoise.Run(tx, 0.25f, draw);
            rx = (float[])x.Clone();
            AddNoise.Reference(rx, 0.25f, draw);
            Assert.That(tx.ToHost(), Is.EqualTo(rx), "add noise");

            foreach (var c in new[] { DiffusionStep.Ddpm(0.3, 0.35), DiffusionStep.Ddim(0.3, 0.35, 0) })
            {
                tx = Shifted(dev, x, shift, owners);
                DiffusionStep.Run(tx, Shifted(dev, s, shift, owners), c, draw);
                rx = (float[])x.Clone();
                DiffusionStep.Reference(rx, s, c, draw);
                Assert.That(tx.ToHost(), Is.EqualTo(rx), $"diffusion step, sigma {c.Sigma}");
            }

            foreach (var c in new[] { new DenoisingUpdate.Coefficients(0.9f, 0.1f, -0.3f, 0.8f, 0.2f, 0.05f, 0.4f, 1.1f, -0.2f),
                         new DenoisingUpdate.Coefficients(0.9f, 0.1f, -0.3f, 0.8f, 0.2f, 0f, 0f, 1.1f, -0.2f) })
            {
                tx = Shifted(dev, x, shift, owners);
                var tp = Shifted(dev, p, 1, owners);
                var tu = Shifted(dev, u, shift, owners);
                DenoisingUpdate.Run(tx, Shifted(dev, s, shift, owners), Shifted(dev, g, 2, owners), tp, tu, c, draw);
                rx = (float[])x.Clone();
                var rp = (float[])p.Clone();
                var ru = (float[])u.Clone();
                DenoisingUpdate.Reference(rx, s, g, rp, ru, c, draw);
                Assert.That(tx.ToHost(), Is.EqualTo(rx), $"denoising update z, C2 {c.C2}");
                Assert.That(tp.ToHost(), Is.EqualTo(rp), $"denoising update prev, C2 {c.C2}");
                Assert.That(tu.ToHost(), Is.EqualTo(ru), $"denoising update u, C2 {c.C2}");
            }

            foreach (var c in new[] { new MultistepUpdate.Coefficients(0.5f, -0.4f, 0.9f, 0.3f, 0.2f), new MultistepUpdate.Coefficients(0.5f, -0.4f, 0.9f, 0.3f, 0f) })
            {
                tx = Shifted(dev, x, shift, owners);
                var tp = Shifted(dev, p, shift, owners);
                MultistepUpdate.Run(tx, Shifted(dev, s, shift, owners), tp, c);
                rx = (float[])x.Clone();
                var rp = (float[])p.Clone();
                MultistepUpdate.Reference(rx, s, rp, c);
                Assert.That(tx.ToHost(), Is.EqualTo(rx), $"multistep x, C2 {c.C2}");
                Assert.That(tp.ToHost(), Is.EqualTo(rp), $"multistep prev, C2 {c.C2}");
            }
        }
        finally
        {
            foreach (var t in owners) t.Dispose();
        }
    }

    /// <summary>The clipped step in its four compiled forms (clip to a range; thresholds looked up per quad when items are
    /// whole quads, two per quad for other items of at least 3 elements, per lane by a shift for items of 1 or 2), on item
    /// lengths that are and are not multiples of 4, aligned and shifted views.</summary>
    [TestCase(3, 4, 0L, 0)]
    [TestCase(3, 4, 2L, 0)]
    [TestCase(5, 12, 0L, 1)]
    [TestCase(4, 7, 0L, 0)]
    [TestCase(6, 5, 3L, 1)]
    [TestCase(2, 1001, 4L * 1001 + 1, 0)]
    [TestCase(1, 3, 0L, 0)]
    [TestCase(11, 3, 0L, 0)]
    [TestCase(7, 3, 2L, 1)]
    [TestCase(9, 2, 1L, 1)]
    [TestCase(10, 2, 0L, 0)]
    [TestCase(17, 1, 3L, 1)]
    [TestCase(16, 1, 0L, 0)]
    public void ClippedDiffusionStep_IsBitwiseItsReference(int items, int itemLength, long offset, int shiftItems)
    {
        var dev = TestDevices.Cpu;
        int n = items * itemLength;
        var draw = new RandomDraw(13, 8, 4, offset);
        var x = TestData.Random(n, 31, 3f);
        var eps = TestData.Random(n, 32);
        var thresholds = Enumerable.Range(0, items).Select(i => 1f + 0.25f * i).ToArray();
        using var bx = Tensor.FromHost(dev, new float[shiftItems * itemLength].Concat(x).ToArray(), items + shiftItems, itemLength);
        using var be = Tensor.FromHost(dev, new float[shiftItems * itemLength].Concat(eps).ToArray(), items + shiftItems, itemLength);
        using var ts = Tensor.FromHost(dev, thresholds, items);
        // DDPM draws noise; DDIM with eta = 0 runs the kernels' loop without Philox code.
        foreach (var c in new[] { ClippedDiffusionStep.Ddpm(0.3, 0.35), ClippedDiffusionStep.Ddim(0.3, 0.35, 0) })
        foreach (bool thresholded in new[] { false, true })
        {
            var sx = bx.SliceBatch(shiftItems, items);
            sx.CopyFrom(x);
            ClippedDiffusionStep.Run(sx, be.SliceBatch(shiftItems, items), c, 1.5f, thresholded ? ts : null, draw);
            var rx = (float[])x.Clone();
            ClippedDiffusionStep.Reference(rx, eps, c, 1.5f, thresholded ? thresholds : [], draw);
            Assert.That(sx.ToHost(), Is.EqualTo(rx), $"{(thresholded ? "thresholded" : "clipped")}, sigma {c.Sigma}");
        }
    }

    [Test]
    public void Normal4_IsBitwiseTheFourPerElementNormals()
    {
        foreach (long quad in new long[] { 0, 1, 12345, (1L << 32) + 7 })
        {
            Philox.Normal4(99, 5, 1UL << 33 | 17, quad, out float a, out float b, out float c, out float d);
            Assert.That(new[] { a, b, c, d }, Is.EqualTo(Enumerable.Range(0, 4).Select(j => Philox.Normal(99, 5, 1UL << 33 | 17, 4 * quad + j)).ToArray()));
        }
    }

    [TestCaseSource(nameof(Cases))]
    public void LangevinStep_IsBitwiseItsReference(int n, long offset)
    {
        var dev = TestDevices.Cpu;
        var draw = new RandomDraw(7, 3, 11, offset);
        var x = TestData.Random(n, 1);
        var s = TestData.Random(n, 2);
        var g = TestData.Random(n, 3);
        using var tx = Tensor.FromHost(dev, x, n);
        using var ts = Tensor.FromHost(dev, s, n);
        using var tg = Tensor.FromHost(dev, g, n);
        LangevinStep.Run(tx, ts, tg, 0.3f, draw);
        LangevinStep.Reference(x, s, g, 0.3f, draw);
        Assert.That(tx.ToHost(), Is.EqualTo(x));
        using var tx2 = Tensor.FromHost(dev, x, n);
        LangevinStep.Run(tx2, ts, null, 0.3f, draw);
        LangevinStep.Reference(x, s, default, 0.3f, draw);
        Assert.That(tx2.ToHost(), Is.EqualTo(x), "without a gradient");
    }

    [TestCaseSource(nameof(Cases))]
    public void ProximalLangevinStep_IsBitwiseItsReference(int n, long offset)
    {
        var dev = TestDevices.Cpu;
        var draw = new RandomDraw(8, 4, 2, offset);
        var x = TestData.Random(n, 4);
        var a = TestData.Random(n, 5);
        var g = TestData.Random(n, 6);
        using var tx = Tensor.FromHost(dev, x, n);
        using var ta = Tensor.FromHost(dev, a, n);
        using var tg = Tensor.FromHost(dev, g, n);
        ProximalLangevinStep.Run(tx, ta, tg, 0.7f, 0.2f, 0.5f, draw);
        ProximalLangevinStep.Reference(x, a, g, 0.7f, 0.2f, 0.5f, draw);
        Assert.That(tx.ToHost(), Is.EqualTo(x));
    }

    [TestCaseSource(nameof(Cases))]
    public void AddNoise_IsBitwiseItsReference(int n, long offset)
    {
        var dev = TestDevices.Cpu;
        var draw = new RandomDraw(9, 1, 0, offset);
        var x = TestData.Random(n, 7);
        using var tx = Tensor.FromHost(dev, x, n);
        AddNoise.Run(tx, -0.4f, draw);
        AddNoise.Reference(x, -0.4f, draw);
        Assert.That(tx.ToHost(), Is.EqualTo(x));
    }

    [TestCaseSource(nameof(Cases))]
    public void DiffusionStep_IsBitwiseItsReference(int n, long offset)
    {
        var dev = TestDevices.Cpu;
        var draw = new RandomDraw(10, 2, 500, offset);
        foreach (var c in new[] { DiffusionStep.Ddpm(0.3, 0.35), DiffusionStep.Ddim(0.3, 0.35, 0) })
        {
            var x = TestData.Random(n, 8);
            var eps = TestData.Random(n, 9);
            using var tx = Tensor.FromHost(dev, x, n);
            using var te = Tensor.FromHost(dev, eps, n);
            DiffusionStep.Run(tx, te, c, draw);
            DiffusionStep.Reference(x, eps, c, draw);
            Assert.That(tx.ToHost(), Is.EqualTo(x), $"sigma {c.Sigma}");
        }
    }
}

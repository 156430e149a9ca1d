using System.Numerics;
using MathNet.Numerics.IntegralTransforms;
using NUnit.Framework;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Fft;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Tests.Kernels;

public class FftTests
{
    // Edge cases (1 x 1, a single row or column, rank 3) and batched, non-square shapes.
    private static readonly int[][] Shapes =
    [
        [1, 1, 2], [1, 1, 1, 2], [2, 1, 8, 2], [1, 4, 1, 2], [3, 2, 2, 2],
        [2, 3, 8, 16, 2], [1, 1, 32, 32, 2], [1, 64, 4, 2],
    ];

    private static IEnumerable<TestCaseData> ShapeCases() =>
        from s in Shapes
        from inverse in new[] { false, true }
        select new TestCaseData(s, inverse).SetArgDisplayNames(Shape.Format(s), inverse ? "inverse" : "forward");

    private static float[] Transform(GpuDevice dev, float[] x, int[] shape, bool inverse, FftNorm norm,
        Fft2d.Variant variant = Fft2d.Variant.Auto)
    {
        using var tx = Tensor.FromHost(dev, x, shape);
        using var ty = Tensor.Empty(dev, shape);
        Fft2d.Run(tx, ty, inverse, norm, variant);
        Assert.That(tx.ToHost(), Is.EqualTo(x), "the input must be left unchanged");
        return ty.ToHost();
    }

    private static float[] Expected(float[] x, int[] shape, bool inverse, FftNorm norm)
    {
        var y = new float[x.Length];
        Fft2d.Reference(x, y, shape, inverse, norm);
        return y;
    }

    [TestCaseSource(nameof(ShapeCases))]
    public void MatchesReference(int[] shape, bool inverse)
    {
        var x = TestData.Random(Shape.Elements(shape), 21);
        foreach (var norm in new[] { FftNorm.Backward, FftNorm.Ortho, FftNorm.Forward })
            TestData.AssertClose(Transform(TestDevices.Cpu, x, shape, inverse, norm), Expected(x, shape, inverse, norm), 1e-5,
                $"{(inverse ? "ifft2d" : "fft2d")} {Shape.Format(shape)} norm {norm}");
    }

    [TestCase(new[] { 2, 4, 8, 2 })]
    [TestCase(new[] { 3, 2, 2, 2 })]
    [TestCase(new[] { 1, 2, 32, 2 })]
    [TestCase(new[] { 1, 64, 32, 2 })]   // several tiles of rows and of columns per item
    [TestCase(new[] { 2, 512, 4, 2 })]
    public void SharedVariant_MatchesReference_OnCpu(int[] shape)
    {
        // The GPU's passes (groups, shared memory, barriers) on the CPU accelerator at small sizes.
        var x = TestData.Random(Shape.Elements(shape), 22);
        foreach (var inverse in new[] { false, true })
            TestData.AssertClose(Transform(TestDevices.Cpu, x, shape, inverse, FftNorm.Ortho, Fft2d.Variant.Shared),
                Expected(x, shape, inverse, FftNorm.Ortho), 1e-5, $"shared {Shape.Format(shape)} inverse {inverse}");
    }

    [Test]
    public void Reference_AgreesWithMathNet()
    {
        // An independent check of the specification: MathNet's FFT with Matlab's (= numpy's) convention.
        const int h = 4, w = 8;
        var x = TestData.Random(2 * h * w, 23);
        var y = new float[x.Length];
        Fft2d.Reference(x, y, [h, w, 2], inverse: false);
        var z = new Complex[h * w];
        for (int i = 0; i < z.Length; i++) z[i] = new Complex(x[2 * i], x[2 * i + 1]);
        // MathNet's managed provider has no 2-D transform: rows, then columns, with its 1-D FFT.
        for (int m = 0; m < h; m++)
        {
            var row = z[(m * w)..((m + 1) * w)];
            Fourier.Forward(row, FourierOptions.Matlab);
            row.CopyTo(z, m * w);
        }
        for (int n = 0; n < w; n++)
        {
            var col = new Complex[h];
            for (int m = 0; m < h; m++) col[m] = z[m * w + n];
            Fourier.Forward(col, FourierOptions.Matlab);
            for (int m = 0; m < h; m++) z[m * w + n] = col[m];
        }
        var expected = new float[x.Length];
        for (int i = 0; i < z.Length; i++) (expected[2 * i], expected[2 * i + 1]) = ((float)z[i].Real, (float)z[i].Imaginary);
        TestData.AssertClose(y, expected, 1e-6, "reference vs MathNet");
    }

    [Test]
    public void PureTone_LandsOnItsFrequency_WithNumpySign()
    {
        // x[m, n] = e^{+2 pi i (k0 m / H + l0 n / W)} has forward transform H W at (k0, l0), zero elsewhere.
        const int h = 8, w = 16, k0 = 3, l0 = 5;
        var x = new float[2 * h * w];
        for (int m = 0; m < h; m++)
            for (int n = 0; n < w; n++)
            {
                double a = 2 * Math.PI * ((double)k0 * m / h + (double)l0 * n / w);
                x[2 * (m * w + n)] = (float)Math.Cos(a);
                x[2 * (m * w + n) + 1] = (float)Math.Sin(a);
            }
        var y = Transform(TestDevices.Cpu, x, [1, h, w, 2], inverse: false, FftNorm.Backward);
        var expected = new float[x.Length];
        expected[2 * (k0 * w + l0)] = h * w;
        Assert.That(TestData.MaxAbsError(y, expected), Is.LessThan(1e-3), "tone at (3, 5)");
    }

    [TestCase(FftNorm.Backward)]
    [TestCase(FftNorm.Ortho)]
    [TestCase(FftNorm.Forward)]
    public void ForwardThenInverse_IsIdentity(FftNorm norm)
    {
        var dev = TestDevices.Cpu;
        int[] shape = [3, 16, 8, 2];
        var x = TestData.Random(Shape.Elements(shape), 24);
        using var tx = Tensor.FromHost(dev, x, shape);
        using var tk = Tensor.Empty(dev, shape);
        using var tb = Tensor.Empty(dev, shape);
        Fft2d.Forward(tx, tk, norm);
        Fft2d.Inverse(tk, tb, norm);
        TestData.AssertClose(tb.ToHost(), x, 1e-5, $"round trip, norm {norm}");
    }

    [Test]
    public void Ortho_PreservesEnergy_Parseval()
    {
        var dev = TestDevices.Cpu;
        int[] shape = [2, 32, 16, 2];
        var x = TestData.Random(Shape.Elements(shape), 25);
        var y = Transform(dev, x, shape, inverse: false, FftNorm.Ortho);
        int item = 32 * 16 * 2;
        for (int b = 0; b < 2; b++)
        {
            double ex = 0, ey = 0;
            for (int i = b * item; i < (b + 1) * item; i++)
            {
                ex += (double)x[i] * x[i];
                ey += (double)y[i] * y[i];
            }
            Assert.That(ey, Is.EqualTo(ex).Within(1e-5 * ex), $"item {b}: sum |X|^2 = sum |x|^2");
        }
    }

    [TestCase(false)]
    [TestCase(true)]
    public void InPlace_MatchesReference(bool shared)
    {
        var variant = shared ? Fft2d.Variant.Shared : Fft2d.Variant.PerLine;
        var dev = TestDevices.Cpu;
        int[] shape = [2, 8, 16, 2];
        var x = TestData.Random(Shape.Elements(shape), 26);
        using var t = Tensor.FromHost(dev, x, shape);
        Fft2d.Run(t, t, inverse: false, FftNorm.Backward, variant);
        TestData.AssertClose(t.ToHost(), Expected(x, shape, false, FftNorm.Backward), 1e-5, "in-place forward");
        Fft2d.Inverse(t, t);
        TestData.AssertClose(t.ToHost(), x, 1e-5, "in-place round trip");
        // The reference may work in place too.
        var r = (float[])x.Clone();
        Fft2d.Reference(r, r, shape, inverse: false);
        TestData.AssertClose(r, Expected(x, shape, false, FftNorm.Backward), 1e-12, "in-place reference");
    }

    [Test]
    public void RejectsNonPowerOfTwo()
    {
        var dev = TestDevices.Cpu;
        using var x = Tensor.Zeros(dev, 2, 6, 8, 2);
        var ex = Assert.Throws<ArgumentException>(() => Fft2d.Forward(x, x));
        Assert.That(ex!.Message, Does.Contain("[2, 6, 8, 2]").And.Contain("powers of two"));
        using var z = Tensor.Zeros(dev, 1, 8, 12, 2);
        ex = Assert.Throws<ArgumentException>(() => Fft2d.Inverse(z, z));
        Assert.That(ex!.Message, Does.Contain("[1, 8, 12, 2]").And.Contain("powers of two"));
    }

    [Test]
    public void RejectsMissingTrailingTwo_AndMismatchedShapes()
    {
        var dev = TestDevices.Cpu;
        using var real = Tensor.Zeros(dev, 2, 8, 8);
        var ex = Assert.Throws<ArgumentException>(() => Fft2d.Forward(real, real));
        Assert.That(ex!.Message, Does.Contain("[2, 8, 8]").And.Contain("[..., H, W, 2]"));
        using var flat = Tensor.Zeros(dev, 4, 2);
        Assert.Throws<ArgumentException>(() => Fft2d.Forward(flat, flat));
        using var a = Tensor.Zeros(dev, 1, 8, 8, 2);
        using var b = Tensor.Zeros(dev, 2, 8, 8, 2);
        ex = Assert.Throws<ArgumentException>(() => Fft2d.Forward(a, b));
        Assert.That(ex!.Message, Does.Contain("[1, 8, 8, 2]").And.Contain("[2, 8, 8, 2]"));
    }

    [TestCase(new[] { 1, 1 })]
    [TestCase(new[] { 3, 5, 7 })]
    [TestCase(new[] { 2, 1, 64, 33 })]
    public void ComplexOps_MatchReference(int[] shape)
    {
        var dev = TestDevices.Cpu;
        int n = Shape.Elements(shape);
        int[] cshape = [.. shape, 2];
        var r = TestData.Random(n, 27, 3f);
        var z = TestData.Random(2 * n, 28, 3f);
        using var tr = Tensor.FromHost(dev, r, shape);
        using var tz = Tensor.FromHost(dev, z, cshape);
        using var outZ = Tensor.Empty(dev, cshape);
        using var outR = Tensor.Empty(dev, shape);

        var expectedZ = new float[2 * n];
        ComplexOps.FromRealReference(r, expectedZ);
        ComplexOps.FromReal(tr, outZ);
        Assert.That(outZ.ToHost(), Is.EqualTo(expectedZ), "from real");

        var expectedR = new float[n];
        ComplexOps.RealPartReference(z, expectedR);
        ComplexOps.RealPart(tz, outR);
        Assert.That(outR.ToHost(), Is.EqualTo(expectedR), "real part");

        ComplexOps.MagnitudeReference(z, expectedR);
        ComplexOps.Magnitude(tz, outR);
        TestData.AssertClose(outR.ToHost(), expectedR, 1e-6, "magnitude");
    }

    [Test]
    public void ComplexOps_Magnitude_DoesNotOverflow()
    {
        var dev = TestDevices.Cpu;
        using var z = Tensor.FromHost(dev, [3e20f, 4e20f, 0f, 0f, -1e-30f, 0f], 3, 2);
        using var m = Tensor.Empty(dev, 3);
        ComplexOps.Magnitude(z, m);
        var got = m.ToHost();
        Assert.That(got[0], Is.EqualTo(5e20f).Within(1e14f));
        Assert.That(got[1], Is.EqualTo(0f));
        Assert.That(got[2], Is.EqualTo(1e-30f).Within(1e-36f));
    }

    [Test]
    public void ComplexOps_RejectMismatchedShapes()
    {
        var dev = TestDevices.Cpu;
        using var real = Tensor.Zeros(dev, 2, 4, 4);
        using var complex = Tensor.Zeros(dev, 2, 4, 5, 2);
        var ex = Assert.Throws<ArgumentException>(() => ComplexOps.RealPart(complex, real));
        Assert.That(ex!.Message, Does.Contain("[2, 4, 5, 2]").And.Contain("[2, 4, 4]"));
        using var noTwo = Tensor.Zeros(dev, 2, 4, 4, 3);
        Assert.Throws<ArgumentException>(() => ComplexOps.FromReal(real, noTwo));
        Assert.Throws<ArgumentException>(() => ComplexOps.Magnitude(real, real));
    }

    [Test]
    [Category("Gpu")]
    public void Gpu_MatchesReference()
    {
        var dev = TestDevices.Gpu;
        TestContext.Out.WriteLine(dev.Description);
        int[] shape = [8, 1, 128, 128, 2];
        var x = TestData.Random(Shape.Elements(shape), 29);
        foreach (var inverse in new[] { false, true })
        {
            var expected = Expected(x, shape, inverse, FftNorm.Ortho);
            foreach (var variant in new[] { Fft2d.Variant.Auto, Fft2d.Variant.PerLine, Fft2d.Variant.Shared })
            {
                var y = Transform(dev, x, shape, inverse, FftNorm.Ortho, variant);
                double rel = TestData.RelativeError(y, expected), abs = TestData.MaxAbsError(y, expected);
                TestContext.Out.WriteLine($"{(inverse ? "ifft2d" : "fft2d")} {Shape.Format(shape)} ortho, {variant}: " +
                    $"relative L2 {rel:E2}, max abs {abs:E2}");
                Assert.That(rel, Is.LessThan(1e-5), $"{variant} inverse {inverse}");
            }
        }
        // Round trip in place with the default norm.
        using var t = Tensor.FromHost(dev, x, shape);
        Fft2d.Forward(t, t);
        Fft2d.Inverse(t, t);
        double rt = TestData.RelativeError(t.ToHost(), x);
        TestContext.Out.WriteLine($"in-place round trip: relative L2 {rt:E2}");
        Assert.That(rt, Is.LessThan(1e-5));

        // Rough timings (not asserted): each row variant, this shape and a larger one.
        foreach (int[] s in new[] { shape, [16, 1, 256, 256, 2] })
        {
            using var a = Tensor.Zeros(dev, s);
            using var b = Tensor.Zeros(dev, s);
            foreach (var variant in new[] { Fft2d.Variant.PerLine, Fft2d.Variant.Shared })
            {
                Fft2d.Run(a, b, false, FftNorm.Backward, variant);
                dev.Synchronize();
                const int reps = 50;
                var clock = System.Diagnostics.Stopwatch.StartNew();
                for (int i = 0; i < reps; i++) Fft2d.Run(a, b, false, FftNorm.Backward, variant);
                dev.Synchronize();
                double us = clock.Elapsed.TotalMicroseconds / reps;
                TestContext.Out.WriteLine($"fft2d {Shape.Format(s)} {variant}: {us:F1} us per call " +
                    $"({2.0 * a.Length * sizeof(float) / (us * 1e3):F1} GB/s of one read + one write)");
            }
        }
    }
}

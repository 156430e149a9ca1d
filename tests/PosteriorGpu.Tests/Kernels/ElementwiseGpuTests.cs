using NUnit.Framework;
using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Reductions;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Tests.Kernels;

/// <summary>The memory-bound kernels on the GPU against their references (and the in-kernel noise
/// against the host's Philox), printing the largest errors.</summary>
[Category("Gpu")]
public class ElementwiseGpuTests
{
    [Test]
    public void Gpu_ElementwiseAndReductions_MatchReferences()
    {
        var dev = TestDevices.Gpu;
        const int n = 3, item = 3 * 64 * 64 + 5;
        int len = n * item;
        var x = TestData.Random(len, 1);
        var s = TestData.Random(len, 2);
        var g = TestData.Random(len, 3);
        var draw = new RandomDraw(2024, 1, 17);
        using var tx = Tensor.FromHost(dev, x, n, item);
        using var ts = Tensor.FromHost(dev, s, n, item);
        using var tg = Tensor.FromHost(dev, g, n, item);

        LangevinStep.Run(tx, ts, tg, 0.01f, draw);
        var expected = (float[])x.Clone();
        LangevinStep.Reference(expected, s, g, 0.01f, draw);
        Report("langevin step (noise drawn in-kernel)", tx.ToHost(), expected, 1e-5);

        tx.CopyFrom(x);
        var c = DiffusionStep.Ddim(0.3, 0.6, 1.0);
        DiffusionStep.Run(tx, ts, c, draw);
        expected = (float[])x.Clone();
        DiffusionStep.Reference(expected, s, c, draw);
        Report("ddim step eta=1", tx.ToHost(), expected, 1e-5);

        tx.CopyFrom(x);
        Axpby.Run(0.5f, ts, -2f, tx);
        expected = (float[])x.Clone();
        Axpby.Reference(0.5f, s, -2f, expected);
        Report("axpby", tx.ToHost(), expected, 1e-6);

        using var result = Tensor.Empty(dev, n);
        var reduced = new float[n];
        foreach (var op in new[] { BatchReduce.Op.Sum, BatchReduce.Op.Dot, BatchReduce.Op.SquaredNorm })
        {
            if (op == BatchReduce.Op.Sum) BatchReduce.Sum(ts, result);
            else if (op == BatchReduce.Op.Dot) BatchReduce.Dot(ts, tg, result);
            else BatchReduce.SquaredNorm(ts, result);
            BatchReduce.Reference(op, s, g, n, reduced);
            Report($"batch reduce {op}", result.ToHost(), reduced, 1e-5);
        }
    }

    /// <summary>The fused update kernels on views 16-byte aligned (16-byte loads and stores) and shifted by one float
    /// (four scalar ones), with a draw offset that leaves partial quads at both ends: each against its reference.</summary>
    [Test]
    public void Gpu_FusedUpdates_AlignedAndShifted_MatchReferences()
    {
        var dev = TestDevices.Gpu;
        const int n = 3 * 32 * 32 + 3;
        var draw = new RandomDraw(2025, 2, 9, 4 * 77 + 1);
        var x = TestData.Random(n, 11);
        var s = TestData.Random(n, 12);
        var g = TestData.Random(n, 13);
        foreach (int shift in new[] { 0, 1, 3 })
        {
            using var bx = Tensor.FromHost(dev, new float[shift].Concat(x).ToArray(), shift + n, 1);
            using var bs = Tensor.FromHost(dev, new float[shift].Concat(s).ToArray(), shift + n, 1);
            using var bg = Tensor.FromHost(dev, new float[shift].Concat(g).ToArray(), shift + n, 1);
            var tx = bx.SliceBatch(shift, n);
            var ts = bs.SliceBatch(shift, n);
            var tg = bg.SliceBatch(shift, n);

            LangevinStep.Run(tx, ts, tg, 0.01f, draw);
            var expected = (float[])x.Clone();
            LangevinStep.Reference(expected, s, g, 0.01f, draw);
            Report($"langevin step, shift {shift}", tx.ToHost(), expected, 1e-5);

            tx.CopyFrom(x);
            ProximalLangevinStep.Run(tx, ts, tg, 0.7f, 0.2f, 0.5f, draw);
            expected = (float[])x.Clone();
            ProximalLangevinStep.Reference(expected, s, g, 0.7f, 0.2f, 0.5f, draw);
            Report($"proximal langevin step, shift {shift}", tx.ToHost(), expected, 1e-5);

            tx.CopyFrom(x);
            AddNoise.Run(tx, 0.3f, draw);
            expected = (float[])x.Clone();
            AddNoise.Reference(expected, 0.3f, draw);
            Report($"add noise, shift {shift}", tx.ToHost(), expected, 1e-5);

            tx.CopyFrom(x);
            var c = new DenoisingUpdate.Coefficients(0.9f, 0.1f, -0.3f, 0.8f, 0.2f, 0.05f, 0.4f, 1.1f, -0.2f);
            using var tp = Tensor.FromHost(dev, g, n, 1);
            using var tu = Tensor.Zeros(dev, n, 1);
            DenoisingUpdate.Run(tx, ts, tg, tp, tu, c, draw);
            expected = (float[])x.Clone();
            var prev = (float[])g.Clone();
            var u = new float[n];
            DenoisingUpdate.Reference(expected, s, g, prev, u, c, draw);
            Report($"denoising update z, shift {shift}", tx.ToHost(), expected, 1e-5);
            Report($"denoising update u, shift {shift}", tu.ToHost(), u, 1e-5);
        }
    }

    private static void Report(string what, float[] got, float[] expected, double tol)
    {
        double rel = TestData.RelativeError(got, expected), max = TestData.MaxAbsError(got, expected);
        TestContext.Out.WriteLine($"{what} on {TestDevices.Gpu.Description}: max abs {max:E3}, relative L2 {rel:E3}");
        Assert.That(rel, Is.LessThan(tol), what);
    }
}

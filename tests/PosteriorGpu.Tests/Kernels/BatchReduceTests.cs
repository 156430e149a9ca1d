using NUnit.Framework;
using PosteriorGpu.Kernels.Reductions;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Tests.Kernels;

public class BatchReduceTests
{
    [TestCase(BatchReduce.Op.Sum, 1, 1, false)]
    [TestCase(BatchReduce.Op.Sum, 3, 1001, false)]
    [TestCase(BatchReduce.Op.Dot, 1, 77, false)]
    [TestCase(BatchReduce.Op.Dot, 5, 9 * 11 * 3, false)]
    [TestCase(BatchReduce.Op.SquaredNorm, 2, 131 * 129, false)]
    [TestCase(BatchReduce.Op.SquaredNorm, 7, 5, false)]
    // The GPU's paths: one group per item up to GroupMaxLength elements, the two-pass path above it.
    [TestCase(BatchReduce.Op.Sum, 1, 1, true)]
    [TestCase(BatchReduce.Op.Dot, 3, 3072, true)]
    [TestCase(BatchReduce.Op.SquaredNorm, 2, 1001, true)]
    [TestCase(BatchReduce.Op.SquaredNorm, 1, BatchReduce.GroupMaxLength + 3, true)]
    public void MatchesReference(BatchReduce.Op op, int batch, int itemLength, bool gpuPaths)
    {
        var dev = gpuPaths ? TestDevices.CpuOnGpuPaths : TestDevices.Cpu;
        var x = TestData.Random(batch * itemLength, 11);
        var y = TestData.Random(batch * itemLength, 12);
        using var tx = Tensor.FromHost(dev, x, batch, itemLength);
        using var ty = Tensor.FromHost(dev, y, batch, itemLength);
        using var result = Tensor.Empty(dev, batch);
        switch (op)
        {
            case BatchReduce.Op.Sum: BatchReduce.Sum(tx, result); break;
            case BatchReduce.Op.Dot: BatchReduce.Dot(tx, ty, result); break;
            default: BatchReduce.SquaredNorm(tx, result); break;
        }
        var expected = new float[batch];
        BatchReduce.Reference(op, x, y, batch, expected);
        // Sums of signed values cancel, so compare against the scale of the summed magnitudes.
        var got = result.ToHost();
        for (int n = 0; n < batch; n++)
            Assert.That(got[n], Is.EqualTo(expected[n]).Within(1e-5 * itemLength + 1e-6), $"item {n}");
    }

    [TestCase(3072, 1L)]
    [TestCase(BatchReduce.GroupMaxLength + 1, 2L)]
    public void OnTheGpuPaths_AnItemUpToGroupMaxLength_IsOneLaunch(int itemLength, long launches)
    {
        // A divergence check of a batch-1 sampler step (3,072 floats for 3 x 32 x 32) is one launch, not two.
        var dev = TestDevices.CpuOnGpuPaths;
        using var x = Tensor.FromHost(dev, TestData.Random(itemLength, 3), 1, itemLength);
        using var result = Tensor.Empty(dev, 1);
        var before = dev.Counters;
        BatchReduce.SquaredNorm(x, result);
        Assert.That((dev.Counters - before).Launches, Is.EqualTo(launches));
    }

    [Test]
    public void RejectsWrongResultShape()
    {
        var dev = TestDevices.Cpu;
        using var x = Tensor.Zeros(dev, 3, 4);
        using var r = Tensor.Zeros(dev, 2);
        var ex = Assert.Throws<ArgumentException>(() => BatchReduce.Sum(x, r));
        Assert.That(ex!.Message, Does.Contain("[3]").And.Contain("[2]"));
    }
}

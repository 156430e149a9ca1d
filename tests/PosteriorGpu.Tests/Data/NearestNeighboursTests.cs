using NUnit.Framework;
using PosteriorGpu.Models.Data;

namespace PosteriorGpu.Tests.Data;

public class NearestNeighboursTests
{
    [Test]
    public void Distances_MatchReference_AcrossBlocks()
    {
        int dim = 37;
        var q = TestData.Random(9 * dim, 1);
        var r = TestData.Random(50 * dim, 2);
        // Query 3 is reference 17 exactly: distance 0.
        Array.Copy(r, 17 * dim, q, 3 * dim, dim);
        var expected = NearestNeighbours.Reference(q, r, dim);
        var got = NearestNeighbours.Distances(TestDevices.Cpu, q, r, dim, block: 16);
        Assert.That(expected[3], Is.EqualTo(0));
        for (int i = 0; i < expected.Length; i++) Assert.That(got[i], Is.EqualTo(expected[i]).Within(2e-3), $"query {i}");
        Assert.Throws<ArgumentException>(() => NearestNeighbours.Distances(TestDevices.Cpu, q, r, 36));
    }
}

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

    [Test]
    public void Nearest_MatchesReference_AcrossBlocks()
    {
        int dim = 21, k = 3;
        var q = TestData.Random(7 * dim, 3);
        var r = TestData.Random(40 * dim, 4);
        Array.Copy(r, 29 * dim, q, 2 * dim, dim);   // query 2 is reference 29: it must come first at distance 0
        var (expectedIndex, expectedDistance) = NearestNeighbours.NearestReference(q, r, dim, k);
        var (index, distance) = NearestNeighbours.Nearest(TestDevices.Cpu, q, r, dim, k, block: 16);
        Assert.That(expectedIndex[2 * k], Is.EqualTo(29));
        Assert.That(index, Is.EqualTo(expectedIndex));
        for (int i = 0; i < distance.Length; i++) Assert.That(distance[i], Is.EqualTo(expectedDistance[i]).Within(2e-3), $"entry {i}");
        Assert.Throws<ArgumentException>(() => NearestNeighbours.Nearest(TestDevices.Cpu, q, r, dim, 41));
        Assert.Throws<ArgumentException>(() => NearestNeighbours.Nearest(TestDevices.Cpu, q, r, dim, 0));
    }
}

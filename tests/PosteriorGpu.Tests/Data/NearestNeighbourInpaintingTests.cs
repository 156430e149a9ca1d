using NUnit.Framework;
using PosteriorGpu.Samplers.Diagnostics;

namespace PosteriorGpu.Tests.Data;

public class NearestNeighbourInpaintingTests
{
    // 2 channels of 3 x 3 pixels; the centre pixel and the top-left one are missing.
    private const int Channels = 2, Plane = 9, Dim = Channels * Plane;
    private static readonly float[] Missing = [1, 0, 0, 0, 1, 0, 0, 0, 0];

    [Test]
    public void MissingPixels_AreTheMeanOfTheNearestOnObservedPixels()
    {
        var query = TestData.Random(Dim, 1);
        // Library 0 equals the query on its missing pixels but is far on the observed ones: a distance that looked
        // at the missing pixels would pick it. Library 1 equals the query on the observed pixels; library 2 is
        // close to it (observed pixels + 0.1); library 3 is far.
        var library = new float[4 * Dim];
        for (int i = 0; i < Dim; i++)
        {
            bool missing = Missing[i % Plane] != 0;
            library[i] = missing ? query[i] : query[i] + 5f;
            library[Dim + i] = missing ? 2f : query[i];
            library[2 * Dim + i] = missing ? -1f : query[i] + 0.1f;
            library[3 * Dim + i] = query[i] - 3f;
        }
        var one = NearestNeighbourInpainting.Estimate(TestDevices.Cpu, query, 1, Missing, Channels, library, k: 1);
        var two = NearestNeighbourInpainting.Estimate(TestDevices.Cpu, query, 1, Missing, Channels, library, k: 2);
        for (int i = 0; i < Dim; i++)
        {
            bool missing = Missing[i % Plane] != 0;
            Assert.That(one[i], Is.EqualTo(missing ? 2f : query[i]), $"k = 1, value {i}");
            Assert.That(two[i], Is.EqualTo(missing ? 0.5f : query[i]), $"k = 2, value {i}");
        }
    }

    [Test]
    public void EachImageFindsItsOwnNeighbours()
    {
        var library = TestData.Random(6 * Dim, 2);
        // Two queries: library images 4 and 1 with their missing pixels scrambled.
        var queries = new float[2 * Dim];
        Array.Copy(library, 4 * Dim, queries, 0, Dim);
        Array.Copy(library, 1 * Dim, queries, Dim, Dim);
        for (int i = 0; i < queries.Length; i++) if (Missing[i % Plane] != 0) queries[i] = 9f;
        var estimate = NearestNeighbourInpainting.Estimate(TestDevices.Cpu, queries, 2, Missing, Channels, library, k: 1);
        Assert.That(estimate.AsSpan(0, Dim).ToArray(), Is.EqualTo(library.AsSpan(4 * Dim, Dim).ToArray()));
        Assert.That(estimate.AsSpan(Dim, Dim).ToArray(), Is.EqualTo(library.AsSpan(1 * Dim, Dim).ToArray()));
    }

    [Test]
    public void BadArguments_Throw()
    {
        var library = TestData.Random(3 * Dim, 3);
        var query = TestData.Random(Dim, 4);
        Assert.Throws<ArgumentException>(() => NearestNeighbourInpainting.Estimate(TestDevices.Cpu, query, 2, Missing, Channels, library, 1));
        Assert.Throws<ArgumentException>(() => NearestNeighbourInpainting.Estimate(TestDevices.Cpu, query, 1, Missing, Channels, library, 4));
        Assert.Throws<ArgumentException>(() => NearestNeighbourInpainting.Estimate(TestDevices.Cpu, query, 1, Missing, Channels, library.AsSpan(1).ToArray(), 1));
        var all = Enumerable.Repeat(1f, Plane).ToArray();
        Assert.Throws<ArgumentException>(() => NearestNeighbourInpainting.Estimate(TestDevices.Cpu, query, 1, all, Channels, library, 1));
    }
}

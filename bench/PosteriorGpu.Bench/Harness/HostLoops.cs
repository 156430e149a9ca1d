namespace PosteriorGpu.Bench.Harness;

/// <summary>
/// The plain C# baseline the CPU table compares the kernels on ILGPU's CPU accelerator with: a
/// Parallel.For over chunks of a range, the loop a C# programmer would write without ILGPU.
/// </summary>
public static class HostLoops
{
    /// <summary>Host-side baselines are the benchmark methods named ...Reference or ...ParallelLoop; they are
    /// skipped when the default device is a GPU (the CPU table is their purpose).</summary>
    public static bool IsHost(string method) => method.EndsWith("Reference", StringComparison.Ordinal) || method.EndsWith("ParallelLoop", StringComparison.Ordinal);

    /// <summary>Calls <paramref name="body"/>(start, end) on chunks of [0, count) in parallel.</summary>
    public static void For(int count, int chunk, Action<int, int> body)
    {
        int chunks = (count + chunk - 1) / chunk;
        Parallel.For(0, chunks, c => body(c * chunk, Math.Min(count, (c + 1) * chunk)));
    }

    /// <summary>count floats in [-0.5, 0.5), seeded.</summary>
    public static float[] Random(int count, int seed)
    {
        var rng = new System.Random(seed);
        var data = new float[count];
        for (int i = 0; i < data.Length; i++) data[i] = (float)rng.NextDouble() - 0.5f;
        return data;
    }
}

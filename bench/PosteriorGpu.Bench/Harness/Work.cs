namespace PosteriorGpu.Bench.Harness;

/// <summary>What one benchmark invocation does, for the throughput columns.</summary>
public enum WorkKind
{
    /// <summary>Bytes moved to and from memory (memory-bound kernels: GB/s).</summary>
    Bytes,
    /// <summary>Floating-point operations (compute-bound kernels: GFLOP/s).</summary>
    Flops,
    /// <summary>Images through the network (images/s).</summary>
    Images,
}

/// <summary>An amount of work of one kind.</summary>
public readonly record struct Work(double Amount, WorkKind Kind)
{
    /// <summary>Bytes read plus bytes written.</summary>
    public static Work Bytes(double bytes) => new(bytes, WorkKind.Bytes);

    /// <summary>Floating-point operations (a fused multiply-add counts two).</summary>
    public static Work Flops(double flops) => new(flops, WorkKind.Flops);

    /// <summary>Images (batch items).</summary>
    public static Work Images(double images) => new(images, WorkKind.Images);
}

/// <summary>
/// A suite that says how much work each of its benchmarks does per invocation, from its
/// parameters alone (the throughput columns create a fresh instance, set the parameters and ask;
/// no setup runs). Return null for a benchmark that has no meaningful throughput.
/// </summary>
public interface IThroughput
{
    /// <summary>The work of benchmark method <paramref name="benchmark"/> for the current parameters.</summary>
    Work? WorkOf(string benchmark);
}

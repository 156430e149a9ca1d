namespace PosteriorGpu.Kernels.Device;

/// <summary>
/// How a launch of <see cref="Threads"/> threads covers <see cref="Total"/> elements: element
/// <c>Index(tid, k)</c> for k below <see cref="Count"/>. On a GPU the threads stride through memory
/// (coalesced); on ILGPU's CPU accelerator each thread owns one contiguous chunk, because there a
/// launched thread costs microseconds and neighbouring threads writing one cache line thrash it.
/// Either way every element is visited exactly once, so results never depend on the plan.
/// </summary>
public readonly struct ElementRange
{
    /// <summary>Elements covered.</summary>
    public readonly int Total;
    /// <summary>Threads to launch.</summary>
    public readonly int Threads;
    /// <summary>Iterations per thread.</summary>
    public readonly int Count;
    private readonly int threadMul;
    private readonly int step;

    private ElementRange(int total, int threads, int count, int threadMul, int step)
    {
        Total = total;
        Threads = threads;
        Count = count;
        this.threadMul = threadMul;
        this.step = step;
    }

    /// <summary>The element visited by thread <paramref name="tid"/> at iteration <paramref name="k"/>;
    /// at or past <see cref="Total"/> means "done" (indices grow with k).</summary>
    public int Index(int tid, int k) => tid * threadMul + k * step;

    /// <summary>The first element of thread <paramref name="tid"/> (at or past <see cref="End"/>: none).</summary>
    public int First(int tid) => tid * threadMul;

    /// <summary>One past the last element of thread <paramref name="tid"/>, visited from <see cref="First"/> by
    /// <see cref="Stride"/>: the same elements as <see cref="Index"/> for k below <see cref="Count"/>, as a loop with one
    /// add and one compare an iteration.</summary>
    public int End(int tid) => (int)Math.Min((long)tid * threadMul + (long)Count * step, Total);

    /// <summary>The step between a thread's elements.</summary>
    public int Stride => step;

    /// <summary>Threads a CPU launch uses at most: a few per core keeps the cores busy.</summary>
    public const int CpuThreads = 64;

    /// <summary>Smallest chunk worth a CPU thread.</summary>
    public const int CpuMinChunk = 2048;

    /// <summary>Threads a GPU launch uses at most; beyond this each thread loops (grid-stride).</summary>
    public const int GpuThreads = 1 << 20;

    /// <summary>Plans <paramref name="total"/> elements for a CPU (chunked) or GPU (strided) launch.</summary>
    public static ElementRange For(long total, bool cpu)
    {
        if (total < 0 || total > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(total), total, "element count must be in [0, 2^31)");
        int n = (int)total;
        if (n == 0) return new ElementRange(0, 1, 0, 0, 1);
        if (cpu)
        {
            int threads = (int)Math.Clamp((n + CpuMinChunk - 1L) / CpuMinChunk, 1, CpuThreads);
            int chunk = (int)((n + threads - 1L) / threads);
            threads = (int)((n + chunk - 1L) / chunk);
            return new ElementRange(n, threads, chunk, chunk, 1);
        }
        else
        {
            int threads = Math.Min(n, GpuThreads);
            int count = (int)((n + threads - 1L) / threads);
            return new ElementRange(n, threads, count, 1, threads);
        }
    }

    /// <summary>A plan with an explicit thread count and layout; tests use it to show results do not
    /// depend on the plan.</summary>
    public static ElementRange Explicit(int total, int threads, bool chunked)
    {
        if (threads < 1) throw new ArgumentOutOfRangeException(nameof(threads));
        int count = (total + threads - 1) / threads;
        return chunked ? new ElementRange(total, threads, count, count, 1) : new ElementRange(total, threads, count, 1, threads);
    }
}

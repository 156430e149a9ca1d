using PosteriorGpu.Kernels.Reductions;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Samplers.Unconditional;

/// <summary>
/// The device record every sampler's divergence check writes into without waiting: each step fills
/// <c>rowsPerStep</c> rows of N floats (squared item norms, or a health flag a kernel writes: 0 fine, NaN failed) in
/// slot step mod interval, and the host reads the whole ring once when the slot is the interval's last or the step is
/// the run's last (<see cref="Due"/>, <see cref="Read"/>). A run of S steps therefore costs ceil(S / interval)
/// host synchronisations instead of S, and still names the first failing step.
/// </summary>
internal sealed class DivergenceRing : IDisposable
{
    private readonly Tensor ring;
    private readonly Tensor[] rows;
    private readonly int n, rowsPerStep;
    private float[] host;

    /// <summary>Rents a ring of <paramref name="interval"/> slots of <paramref name="rowsPerStep"/> rows of
    /// <paramref name="n"/> floats from <paramref name="pool"/>; <paramref name="host"/> is a reusable host copy (grown when short).</summary>
    public DivergenceRing(TensorPool pool, int n, int rowsPerStep, int interval, float[]? host = null)
    {
        if (interval < 1) throw new ArgumentOutOfRangeException(nameof(interval), interval, "divergence ring: the interval must be at least 1 step");
        this.n = n;
        this.rowsPerStep = rowsPerStep;
        Interval = interval;
        ring = pool.Rent(rowsPerStep * interval, n);
        rows = new Tensor[rowsPerStep * interval];
        for (int r = 0; r < rows.Length; r++) rows[r] = ring.SliceBatch(r, 1).Reshape(n);
        this.host = host is not null && host.Length == ring.Length ? host : new float[ring.Length];
    }

    /// <summary>Steps per host read.</summary>
    public int Interval { get; }

    /// <summary>The host copy the last <see cref="Read"/> filled (callers may keep it for the next run).</summary>
    public float[] Host => host;

    /// <summary>Row <paramref name="row"/> ([N]) of step <paramref name="step"/>'s slot, for a kernel to write into.</summary>
    public Tensor Row(int step, int row) => rows[rowsPerStep * (step % Interval) + row];

    /// <summary>The squared item norms of <paramref name="t"/> into row <paramref name="row"/> of step <paramref name="step"/> (one reduction, no wait).</summary>
    public void Record(int step, int row, Tensor t) => BatchReduce.SquaredNorm(t, Row(step, row));

    /// <summary>True when the ring must be read after step <paramref name="step"/> of a run whose last step is <paramref name="last"/>.</summary>
    public bool Due(int step, int last) => step % Interval == Interval - 1 || step == last;

    /// <summary>The first step of the window that ends at <paramref name="step"/>.</summary>
    public int WindowStart(int step) => step - step % Interval;

    /// <summary>Reads the ring to the host (one synchronisation and one copy).</summary>
    public void Read() => ring.CopyTo(host);

    /// <summary>Row <paramref name="row"/> of step <paramref name="step"/> as the last <see cref="Read"/> saw it.</summary>
    public ReadOnlySpan<float> Values(int step, int row) => host.AsSpan((rowsPerStep * (step % Interval) + row) * n, n);

    /// <summary>Returns the ring to its pool.</summary>
    public void Dispose() => ring.Dispose();
}

using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Samplers.Unconditional;

/// <summary>
/// The device side of a run's step table (<see cref="StepTable"/>): the table itself (the run's one host-to-device copy),
/// the step counter, the current row and the model's per-item timesteps, all rented from the run's pool (so their
/// addresses hold for a captured graph). <see cref="Select"/> makes the next step's row current.
/// </summary>
internal sealed class TableRun : IDisposable
{
    private readonly Tensor table, counter;

    /// <summary>Uploads <paramref name="host"/> (rows of <paramref name="width"/>) for a batch of <paramref name="items"/>.</summary>
    public TableRun(TensorPool pool, float[] host, int width, int items)
    {
        table = pool.Rent(host.Length / width, width);
        table.CopyFrom(host);
        counter = pool.RentZeros(1);
        Row = pool.Rent(width);
        Timesteps = pool.Rent(items);
    }

    /// <summary>The current step's row ([width]).</summary>
    public Tensor Row { get; }

    /// <summary>The current step's timestep per item ([N]), as the model's device-timestep pass reads it.</summary>
    public Tensor Timesteps { get; }

    /// <summary>Selects the counter's row on the device and advances the counter (one launch, no host value).</summary>
    public void Select() => StepTable.Select(table, counter, Row, Timesteps);

    public void Dispose()
    {
        table.Dispose();
        counter.Dispose();
        Row.Dispose();
        Timesteps.Dispose();
    }
}

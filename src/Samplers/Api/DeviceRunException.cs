namespace PosteriorGpu;

/// <summary>A device failed during a multi-device run: names the device and the chains it was running; the finished
/// batches (whose samples are in the run's destination) are in <see cref="Finished"/>.</summary>
public sealed class DeviceRunException : Exception
{
    internal DeviceRunException(int device, string description, long firstChain, int chains, Exception inner,
        IReadOnlyList<ChainBatch>? finished = null, int batches = 0)
        : base($"device {device} ({description}) failed on chains {firstChain} to {firstChain + chains - 1}: {inner.Message}" +
               (finished is null ? "" : $"; {finished.Count} of {batches} batch(es) finished and their samples are kept"), inner)
    {
        Device = device;
        DeviceDescription = description;
        FirstChain = firstChain;
        Chains = chains;
        Finished = finished ?? [];
    }

    /// <summary>Index of the device (sampler) that failed.</summary>
    public int Device { get; }

    /// <summary>The failed device's description (kind, name, memory).</summary>
    public string DeviceDescription { get; }

    /// <summary>The run's index of the first chain of the batch that failed.</summary>
    public long FirstChain { get; }

    /// <summary>Chains in the batch that failed.</summary>
    public int Chains { get; }

    /// <summary>The batches that finished before the run stopped, in chain order; their samples are in the destination.</summary>
    public IReadOnlyList<ChainBatch> Finished { get; }

    internal DeviceRunException WithFinished(IReadOnlyList<ChainBatch> finished, int batches) =>
        new(Device, DeviceDescription, FirstChain, Chains, InnerException!, finished, batches);
}

namespace PosteriorGpu.Kernels.Device;

/// <summary>
/// What a device has done since it was opened: kernel launches (and the device-side memsets and copies that
/// cost a launch each), host synchronisations, and host-to-device and device-to-host copies. Subtract two
/// snapshots (<see cref="op_Subtraction"/>) to count one forward pass or one sampler step: launches are what
/// batch-1 latency pays per call, and a sync or a host copy stalls the host until the device drains.
/// </summary>
/// <param name="Launches">Kernel launches plus device-side memsets and device-to-device copies.</param>
/// <param name="HostSyncs">Waits of the host for the device (<see cref="GpuDevice.Synchronize"/>, every read-back).</param>
/// <param name="HostToDeviceCopies">Copies of host data into device memory.</param>
/// <param name="DeviceToHostCopies">Read-backs of device memory to the host (each also a sync).</param>
public readonly record struct DeviceCounters(long Launches, long HostSyncs, long HostToDeviceCopies, long DeviceToHostCopies)
{
    /// <summary>The work done between two snapshots (later minus earlier).</summary>
    public static DeviceCounters operator -(DeviceCounters later, DeviceCounters earlier) => new(
        later.Launches - earlier.Launches, later.HostSyncs - earlier.HostSyncs,
        later.HostToDeviceCopies - earlier.HostToDeviceCopies, later.DeviceToHostCopies - earlier.DeviceToHostCopies);

    /// <inheritdoc/>
    public override string ToString() =>
        $"{Launches} launches, {HostSyncs} host syncs, {HostToDeviceCopies} host-to-device and {DeviceToHostCopies} device-to-host copies";
}

namespace PosteriorGpu.Kernels.Device;

/// <summary>
/// Several devices opened together, for runs that split their work over every accelerator of a machine
/// (one <see cref="GpuDevice"/> each, with its own context, stream and lock). Disposing the set disposes its
/// devices; tensors and models on them must be disposed first.
/// </summary>
public sealed class DeviceSet : IDisposable, IReadOnlyList<GpuDevice>
{
    private readonly GpuDevice[] devices;

    private DeviceSet(GpuDevice[] devices) => this.devices = devices;

    /// <summary>The device at <paramref name="index"/> (the set's order is <see cref="GpuDevice.List"/>'s).</summary>
    public GpuDevice this[int index] => devices[index];

    /// <summary>Devices in the set (at least one).</summary>
    public int Count => devices.Length;

    /// <summary>
    /// Opens every device of one kind: <paramref name="requested"/> null means the POSTERIORGPU_DEVICE variable if set,
    /// else every CUDA device, else every OpenCL GPU, else the CPU accelerator (one: it already uses every core).
    /// <paramref name="maxCount"/> caps how many are opened (null: all).
    /// </summary>
    /// <exception cref="InvalidOperationException">The requested kind is not present.</exception>
    public static DeviceSet OpenAll(DeviceKind? requested = null, int? maxCount = null)
    {
        if (maxCount is < 1) throw new ArgumentOutOfRangeException(nameof(maxCount), maxCount, "must be at least 1");
        requested ??= DeviceKinds.Parse(
            Environment.GetEnvironmentVariable(DeviceKinds.EnvironmentVariable),
            DeviceKinds.EnvironmentVariable);
        foreach (var kind in requested is { } k ? [k] : new[] { DeviceKind.Cuda, DeviceKind.OpenCL, DeviceKind.Cpu })
        {
            int n = GpuDevice.Count(kind);
            if (kind == DeviceKind.Cpu) n = Math.Min(n, 1);
            if (n > 0) return Open(kind, Math.Min(n, maxCount ?? n));
            if (requested is not null)
                throw new InvalidOperationException($"device '{kind.Name()}' was requested but none was found; " +
                    $"pick another with --device or {DeviceKinds.EnvironmentVariable}.");
        }
        throw new InvalidOperationException("no accelerator found (not even the CPU accelerator)");
    }

    /// <summary>
    /// Opens <paramref name="count"/> devices of one kind. For the CPU accelerator any count works: each is an
    /// independent CPU accelerator on the same cores (what tests use to run multi-device code without a GPU).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Fewer than <paramref name="count"/> devices of that kind.</exception>
    public static DeviceSet Open(DeviceKind kind, int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        var opened = new List<GpuDevice>(count);
        try
        {
            for (int i = 0; i < count; i++)
                opened.Add(GpuDevice.Open(kind, kind == DeviceKind.Cpu ? 0 : i));
            return new DeviceSet([.. opened]);
        }
        catch
        {
            foreach (var d in opened) d.Dispose();
            throw;
        }
    }

    /// <summary>How a device is named in messages: "device 1 of 2 (cuda: NVIDIA ...)".</summary>
    public string Describe(int index) => $"device {index} of {Count} ({devices[index].Description})";

    /// <inheritdoc/>
    public IEnumerator<GpuDevice> GetEnumerator() => ((IEnumerable<GpuDevice>)devices).GetEnumerator();

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => devices.GetEnumerator();

    /// <summary>Disposes every device of the set.</summary>
    public void Dispose()
    {
        foreach (var d in devices) d.Dispose();
    }
}

using System.Collections.Concurrent;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;

namespace PosteriorGpu.Kernels.Device;

/// <summary>
/// Owns an ILGPU context and one accelerator, caches loaded kernels and counts live device buffers.
/// Choice order: CUDA, then OpenCL, then the CPU accelerator, unless a kind is requested (argument,
/// or the POSTERIORGPU_DEVICE environment variable); a requested kind that is missing is an error.
/// </summary>
/// <remarks>
/// Kernel launches on one device go to one stream, and models, pools and the scratch area are not
/// thread-safe: a device runs one thing at a time. Samplers hold <see cref="Exclusive"/> for a whole
/// run, so runs started from several threads take turns (each gives what it gives alone); other
/// direct use from several threads must hold it too. Disposing the device frees the accelerator;
/// tensors must be disposed first.
/// </remarks>
public sealed class GpuDevice : IDisposable
{
    private readonly ConcurrentDictionary<string, object> kernels = new();
    private readonly object runGate = new();
    private long liveBuffers;
    private long liveBytes;

    private GpuDevice(Context context, Accelerator accelerator, DeviceKind kind)
    {
        Context = context;
        Accelerator = accelerator;
        Kind = kind;
    }

    /// <summary>The ILGPU context that owns <see cref="Accelerator"/>.</summary>
    public Context Context { get; }

    /// <summary>The accelerator kernels run on.</summary>
    public Accelerator Accelerator { get; }

    /// <summary>Which backend this device is.</summary>
    public DeviceKind Kind { get; }

    /// <summary>True for ILGPU's CPU accelerator (kernels pick their barrier-free variants).</summary>
    public bool IsCpu => Kind == DeviceKind.Cpu;

    /// <summary>True where launchers choose their GPU kernels (the GEMM core, GroupNorm's one-read slab, the fusions that
    /// build on them): every GPU, and a CPU accelerator opened by <see cref="OpenCpuOnGpuPaths"/>, which runs the GPU's
    /// choices (slowly) so that tests and the launch count can see them without a GPU.</summary>
    internal bool UsesGpuKernels => !IsCpu || takesGpuPaths;

    private bool takesGpuPaths;

    /// <summary>A one-line description: kind, name and memory.</summary>
    public string Description => IsCpu
        ? $"{Kind.Name()}: {Accelerator.Name} ({Environment.ProcessorCount} cores)"
        : $"{Kind.Name()}: {Accelerator.Name} ({Accelerator.MemorySize / (1024 * 1024)} MiB)";

    /// <summary>Device buffers currently allocated through this device (tensors, pools).</summary>
    public long LiveBuffers => Interlocked.Read(ref liveBuffers);

    /// <summary>Bytes currently allocated through this device.</summary>
    public long LiveBytes => Interlocked.Read(ref liveBytes);

    /// <summary>
    /// Opens a device. <paramref name="requested"/> null means: the POSTERIORGPU_DEVICE variable if
    /// set, else the first of CUDA, OpenCL, CPU that is present.
    /// </summary>
    /// <exception cref="InvalidOperationException">The requested kind is not present.</exception>
    public static GpuDevice Open(DeviceKind? requested = null)
    {
        requested ??= DeviceKinds.Parse(
            Environment.GetEnvironmentVariable(DeviceKinds.EnvironmentVariable),
            DeviceKinds.EnvironmentVariable);
        var context = CreateContext();
        try
        {
            foreach (var kind in requested is { } k ? [k] : new[] { DeviceKind.Cuda, DeviceKind.OpenCL, DeviceKind.Cpu })
            {
                var device = FindDevice(context, kind);
                if (device is not null)
                    return new GpuDevice(context, CreateAccelerator(context, device, kind), kind);
                if (requested is not null)
                    throw new InvalidOperationException(
                        $"device '{kind.Name()}' was requested but none was found; " +
                        $"available: {string.Join(", ", List().Select(d => d.Kind.Name()))}. " +
                        $"Pick another with --device or {DeviceKinds.EnvironmentVariable}.");
            }
            throw new InvalidOperationException("no accelerator found (not even the CPU accelerator)");
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Opens device <paramref name="index"/> (0-based, in <see cref="List"/>'s order) of one kind, for a
    /// <see cref="DeviceSet"/> that runs on several devices of a machine. Each call makes its own context and
    /// accelerator, so two calls with the same index give two independent devices (two CPU accelerators share the
    /// host's cores).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">There is no device <paramref name="index"/> of that kind.</exception>
    public static GpuDevice Open(DeviceKind kind, int index)
    {
        var context = CreateContext();
        try
        {
            var devices = DevicesOf(context, kind);
            if (index < 0 || index >= devices.Count)
                throw new ArgumentOutOfRangeException(nameof(index), index,
                    $"there are {devices.Count} {kind.Name()} device(s); index must lie in [0, {devices.Count})");
            return new GpuDevice(context, CreateAccelerator(context, devices[index], kind), kind);
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    /// <summary>How many devices of <paramref name="kind"/> ILGPU sees (OpenCL CPU drivers not counted).</summary>
    public static int Count(DeviceKind kind)
    {
        using var context = CreateContext();
        return DevicesOf(context, kind).Count;
    }

    /// <summary>Opens ILGPU's CPU accelerator; the device all tests can rely on.</summary>
    public static GpuDevice OpenCpu() => Open(DeviceKind.Cpu);

    /// <summary>Lists the devices ILGPU can see, in choice order.</summary>
    public static IReadOnlyList<DeviceInfo> List()
    {
        using var context = CreateContext();
        var list = new List<DeviceInfo>();
        foreach (var kind in new[] { DeviceKind.Cuda, DeviceKind.OpenCL, DeviceKind.Cpu })
            foreach (var d in DevicesOf(context, kind))
                list.Add(new DeviceInfo(kind, d.Name, d.MemorySize, d.MaxNumThreadsPerGroup));
        return list;
    }

    /// <summary>The context every device (and bench's kernel-report, which compiles PTX without a GPU) uses:
    /// ILGPU's defaults, its algorithms library and fast 32-bit math.</summary>
    internal static Context CreateContext() =>
        Context.Create(b => b.Default().EnableAlgorithms().Math(MathMode.Fast32BitOnly).Optimize(OptimizationLevel.O2));

    private static List<ILGPU.Runtime.Device> DevicesOf(Context context, DeviceKind kind)
    {
        // DeviceCollection is enumerable by foreach only (no LINQ).
        var list = new List<ILGPU.Runtime.Device>();
        switch (kind)
        {
            case DeviceKind.Cuda:
                foreach (var d in context.GetCudaDevices()) list.Add(d);
                break;
            case DeviceKind.OpenCL:
                // OpenCL CPU drivers are skipped: the CPU accelerator is the CPU path.
                foreach (var d in context.GetCLDevices())
                    if (d.DeviceType != CLDeviceType.CL_DEVICE_TYPE_CPU) list.Add(d);
                break;
            default:
                foreach (var d in context.GetCPUDevices()) list.Add(d);
                break;
        }
        return list;
    }

    private static ILGPU.Runtime.Device? FindDevice(Context context, DeviceKind kind) =>
        DevicesOf(context, kind).FirstOrDefault();

    private static Accelerator CreateAccelerator(Context context, ILGPU.Runtime.Device device, DeviceKind kind) =>
        kind == DeviceKind.Cpu
            // Parallel mode: ILGPU threads run on the host's cores.
            ? ((CPUDevice)device).CreateCPUAccelerator(context, CPUAcceleratorMode.Parallel)
            : device.CreateAccelerator(context);

    /// <summary>Returns the cached kernel named <paramref name="key"/>, loading it on first use.</summary>
    public T Kernel<T>(string key, Func<Accelerator, T> load) where T : class
    {
        // The loader travels as the state of a static lambda: nothing is allocated per lookup.
        return Kernel(key, load, static (acc, load) => load(acc));
    }

    /// <summary><see cref="Kernel{T}(string, Func{Accelerator, T})"/> with a state for the loader (a static lambda with its
    /// state allocates nothing per launch, where a capturing one allocates its closure on every call).</summary>
    public T Kernel<T, TState>(string key, TState state, Func<Accelerator, TState, T> load) where T : class
    {
        Interlocked.Increment(ref kernelLookups);
        launchesByKernel.AddOrUpdate(key, 1, static (_, v) => v + 1);
        if (countOnly) return (T)kernels.GetOrAdd(key, static _ => NoLaunch(typeof(T)));
        profile?.Enter(Accelerator, key);
        var kernel = (T)kernels.GetOrAdd(key, static (_, s) => s.load(s.acc, s.state)!, (load, acc: Accelerator, state));
        profile?.Loaded();
        return kernel;
    }

    /// <summary>A launcher delegate of the given type that does nothing (ILGPU's launchers are Actions).</summary>
    private static object NoLaunch(Type delegateType)
    {
        var parameters = delegateType.GetMethod("Invoke")!.GetParameters()
            .Select(p => System.Linq.Expressions.Expression.Parameter(p.ParameterType)).ToArray();
        return System.Linq.Expressions.Expression.Lambda(delegateType, System.Linq.Expressions.Expression.Empty(), parameters).Compile();
    }

    private bool countOnly;
    private readonly KernelProfile? profile = KernelProfile.FromEnvironment();

    /// <summary>Whether the per-launch profiler is on (POSTERIORGPU_PROFILE=1): it synchronises after every launch.</summary>
    internal bool Profiling => profile is not null;

    /// <summary>Raised when a device opened with POSTERIORGPU_PROFILE=1 is disposed, with its per-kernel wall-time table
    /// (markdown). The library writes nothing itself; the command-line tool and the benchmarks print it to stderr.</summary>
    public static event Action<string>? ProfileReported;
    private int? plannedMultiprocessors;

    /// <summary>Multiprocessors the launchers plan for (grid and split-K choices): the accelerator's, or those of the GPU a
    /// <see cref="OpenLaunchCounter"/> stands in for.</summary>
    internal int Multiprocessors => plannedMultiprocessors ?? Accelerator.NumMultiprocessors;

    /// <summary>
    /// A device that counts the launches a GPU with <paramref name="multiprocessors"/> multiprocessors would make, without
    /// running them: launchers take their GPU choices (<see cref="UsesGpuKernels"/>) and plan for that many
    /// multiprocessors, and every launch is counted (<see cref="Counters"/>, <see cref="LaunchesByKernel"/>) but does
    /// nothing, so tensors hold no results. For work whose launches do not depend on the data read back (a forward pass).
    /// </summary>
    internal static GpuDevice OpenLaunchCounter(int multiprocessors, int threadsPerGroup = 256)
    {
        var device = OpenCpuOnGpuPaths(threadsPerGroup);
        device.countOnly = true;
        device.plannedMultiprocessors = multiprocessors;
        return device;
    }

    private long kernelLookups;
    private readonly ConcurrentDictionary<string, long> launchesByKernel = new();

    /// <summary>Launches so far per kernel key (a snapshot): where a forward pass's launches go, for the benchmarks'
    /// and kernel-report's launch tables.</summary>
    public IReadOnlyDictionary<string, long> LaunchesByKernel => new Dictionary<string, long>(launchesByKernel);

    /// <summary>Calls of <see cref="Kernel{T}"/> so far: every launcher looks its kernel up once per launch, so this
    /// counts launches (the allocation test uses it to tell ILGPU's per-launch cost on the CPU accelerator from ours).</summary>
    public long KernelLookups => Interlocked.Read(ref kernelLookups);

    /// <summary>
    /// A cap on the bytes this device may hold through <see cref="Allocate"/> (null: none). Lets a host
    /// bound the library's memory, or try a smaller device's limits; a request beyond it fails with
    /// <see cref="InsufficientDeviceMemoryException"/> before anything is allocated.
    /// </summary>
    public long? MemoryLimitBytes { get; set; }

    /// <summary>
    /// Free memory now: the driver's figure on CUDA; on the CPU accelerator, the host memory the runtime
    /// reports available (physical or container limit, less the load at the last garbage collection);
    /// null where the backend does not say (OpenCL).
    /// </summary>
    public long? FreeBytes => Accelerator switch
    {
        CudaAccelerator cuda => cuda.GetFreeMemory(),
        CPUAccelerator => HostAvailableBytes(),
        _ => null,
    };

    private static long HostAvailableBytes()
    {
        var info = GC.GetGCMemoryInfo();
        return Math.Max(0, info.TotalAvailableMemoryBytes - info.MemoryLoadBytes);
    }

    /// <summary>Allocates a dense float buffer and counts it; <see cref="Free"/> releases it. On the CPU
    /// accelerator a request beyond the available host memory is refused up front: the operating system
    /// would promise it and end the process when the memory is touched.</summary>
    /// <exception cref="InsufficientDeviceMemoryException">The device (or <see cref="MemoryLimitBytes"/>)
    /// cannot hold the buffer; the device stays usable.</exception>
    public MemoryBuffer1D<float, Stride1D.Dense> Allocate(long length)
    {
        if (length < 0) throw new ArgumentOutOfRangeException(nameof(length), length, "length must be >= 0");
        long bytes = Math.Max(length, 1) > long.MaxValue / sizeof(float) ? long.MaxValue : Math.Max(length, 1) * sizeof(float);
        if (MemoryLimitBytes is long limit && bytes > limit - LiveBytes)
            throw new InsufficientDeviceMemoryException(bytes, Math.Max(0, limit - LiveBytes), limit, Description + " (MemoryLimitBytes)", null);
        if (IsCpu && HostAvailableBytes() is var available && bytes > available)
            throw new InsufficientDeviceMemoryException(bytes, available, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes, Description, null);
        MemoryBuffer1D<float, Stride1D.Dense> buffer;
        try
        {
            buffer = Accelerator.Allocate1D<float>(Math.Max(length, 1));
        }
        catch (Exception e) when (e is OutOfMemoryException or AcceleratorException)
        {
            long? free = null;
            try { free = FreeBytes; }
            catch (AcceleratorException) { }
            throw new InsufficientDeviceMemoryException(bytes, free, Accelerator.MemorySize, Description, e);
        }
        Interlocked.Increment(ref liveBuffers);
        Interlocked.Add(ref liveBytes, buffer.LengthInBytes);
        return buffer;
    }

    /// <summary>Frees a buffer from <see cref="Allocate"/>.</summary>
    public void Free(MemoryBuffer1D<float, Stride1D.Dense> buffer)
    {
        Interlocked.Decrement(ref liveBuffers);
        Interlocked.Add(ref liveBytes, -buffer.LengthInBytes);
        buffer.Dispose();
    }

    /// <summary>
    /// Holds the device for one run (a sampler call, or any sequence of launches and copies): another
    /// thread's <see cref="Exclusive"/> waits until this one is disposed, so concurrent runs take turns.
    /// Reentrant on one thread (a sampler may call another). Also makes the accelerator current on the
    /// calling thread, which CUDA needs. Dispose it on the thread that took it.
    /// </summary>
    /// <exception cref="OperationCanceledException">The token was cancelled while waiting.</exception>
    public ExclusiveUse Exclusive(CancellationToken cancellationToken = default)
    {
        while (!Monitor.TryEnter(runGate, 50)) cancellationToken.ThrowIfCancellationRequested();
        try
        {
            Accelerator.Bind();
        }
        catch
        {
            Monitor.Exit(runGate);
            throw;
        }
        return new ExclusiveUse(runGate);
    }

    private MemoryBuffer1D<float, Stride1D.Dense>? scratch;

    /// <summary>
    /// A device scratch area of at least <paramref name="length"/> floats, reused by every call (it
    /// grows, never shrinks). Only leaf launchers (that call no other launcher while they use it)
    /// may take it; its contents are undefined on entry.
    /// </summary>
    public ArrayView<float> Scratch(int length) => Grow(ref scratch, length, zeroed: false).SubView(0, length);

    private MemoryBuffer1D<float, Stride1D.Dense>? splitK;

    /// <summary>
    /// A second grow-only scratch area, for the split-K partial products of the GEMM core only: a GEMM
    /// may run inside a launcher that holds <see cref="Scratch"/> (the convolution's input gradient).
    /// </summary>
    internal ArrayView<float> SplitKScratch(int length) => Grow(ref splitK, length, zeroed: false).SubView(0, length);

    private MemoryBuffer1D<float, Stride1D.Dense>? splitKCounters;

    /// <summary>
    /// The GEMM core's split-K tile counters: <paramref name="length"/> ints that are zero between launches (each
    /// split-K launch leaves them as it found them). Grow-only; a new table is zeroed once, with one counted memset.
    /// </summary>
    internal ArrayView<int> SplitKTileCounters(int length) => Grow(ref splitKCounters, length, zeroed: true).Cast<int>().SubView(0, length);

    private MemoryBuffer1D<float, Stride1D.Dense>? normPartials, preparedNormEven, preparedNormOdd;

    /// <summary>The per-tile statistics a preparing launch (<see cref="Gemm.GemmNormStats"/>) writes and merges
    /// within itself. Grow-only.</summary>
    internal ArrayView<float> NormStatsPartials(int length) => Grow(ref normPartials, length, zeroed: false).SubView(0, length);

    /// <summary>A new prepared GroupNorm table of <paramref name="length"/> floats: every call advances
    /// <see cref="PreparedNormGeneration"/>, so a table handed out before is known to be stale. Two grow-only buffers taken in
    /// turn: a preparing launch that consumes the current table (its own input's norm) writes the next one into the other.</summary>
    internal (ArrayView<float> Table, long Generation) NextPreparedNormTable(int length)
    {
        long generation = ++PreparedNormGeneration;
        var table = generation % 2 == 0 ? Grow(ref preparedNormEven, length, zeroed: false) : Grow(ref preparedNormOdd, length, zeroed: false);
        return (table.SubView(0, length), generation);
    }

    /// <summary>How many prepared GroupNorm tables have been handed out (the current one's number).</summary>
    internal long PreparedNormGeneration { get; private set; }

    /// <summary>A grow-only buffer of at least <paramref name="length"/> floats (1,024 at least); a new one zeroed on request
    /// (a counted memset).</summary>
    private ArrayView<float> Grow(ref MemoryBuffer1D<float, Stride1D.Dense>? buffer, int length, bool zeroed)
    {
        if (buffer is null || buffer.Length < length)
        {
            if (buffer is not null) Free(buffer);
            buffer = null;
            buffer = Allocate(Math.Max(length, 1024));
            if (zeroed)
            {
                buffer.MemSetToZero();
                CountDeviceOp();
            }
        }
        return buffer.View;
    }

    /// <summary>
    /// A CPU accelerator that simulates groups of <paramref name="threadsPerGroup"/> threads (the default
    /// one allows 16), so that the GPU tile configurations of the GEMM core can be tested without a GPU.
    /// </summary>
    internal static GpuDevice OpenCpu(int threadsPerGroup)
    {
        var context = CreateContext();
        try
        {
            var device = new CPUDevice(32, Math.Max(1, threadsPerGroup / 32), 1);
            return new GpuDevice(context, device.CreateCPUAccelerator(context, CPUAcceleratorMode.Parallel), DeviceKind.Cpu);
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    /// <summary>A CPU accelerator with groups of <paramref name="threadsPerGroup"/> threads on which launchers choose the
    /// kernels they choose on a GPU (<see cref="UsesGpuKernels"/>); each launch runs the GPU kernel on the CPU.</summary>
    internal static GpuDevice OpenCpuOnGpuPaths(int threadsPerGroup = 256)
    {
        var device = OpenCpu(threadsPerGroup);
        device.takesGpuPaths = true;
        return device;
    }

    /// <summary>Waits until every launched kernel has finished (counted in <see cref="Counters"/>).</summary>
    public void Synchronize()
    {
        Interlocked.Increment(ref hostSyncs);
        Accelerator.Synchronize();
    }

    private long deviceOps, hostSyncs, hostToDevice, deviceToHost;

    /// <summary>Launches, host syncs and host copies so far (a snapshot; subtract two to count a call). Launches are
    /// <see cref="KernelLookups"/> plus the device-side memsets and copies of <see cref="Tensors.Tensor"/>.</summary>
    public DeviceCounters Counters => new(
        Interlocked.Read(ref kernelLookups) + Interlocked.Read(ref deviceOps), Interlocked.Read(ref hostSyncs),
        Interlocked.Read(ref hostToDevice), Interlocked.Read(ref deviceToHost));

    /// <summary>Counts a device-side memset or device-to-device copy (a launch that does not go through <see cref="Kernel{T}"/>).</summary>
    internal void CountDeviceOp() => Interlocked.Increment(ref deviceOps);

    /// <summary>Counts a copy of host data into device memory.</summary>
    internal void CountHostToDevice() => Interlocked.Increment(ref hostToDevice);

    /// <summary>Counts a read-back of device memory to the host.</summary>
    internal void CountDeviceToHost() => Interlocked.Increment(ref deviceToHost);

    /// <summary>A launch plan for <paramref name="total"/> independent elements on this device.</summary>
    public ElementRange Plan(long total) => ElementRange.For(total, IsCpu);

    /// <inheritdoc/>
    public void Dispose()
    {
        if (profile is not null) ProfileReported?.Invoke(profile.Report(Accelerator, Description));
        kernels.Clear();
        if (scratch is not null) Free(scratch);
        scratch = null;
        if (splitK is not null) Free(splitK);
        splitK = null;
        if (splitKCounters is not null) Free(splitKCounters);
        splitKCounters = null;
        if (normPartials is not null) Free(normPartials);
        normPartials = null;
        if (preparedNormEven is not null) Free(preparedNormEven);
        preparedNormEven = null;
        if (preparedNormOdd is not null) Free(preparedNormOdd);
        preparedNormOdd = null;
        Accelerator.Dispose();
        Context.Dispose();
    }
}

/// <summary>What <see cref="GpuDevice.List"/> reports about one device.</summary>
public sealed record DeviceInfo(DeviceKind Kind, string Name, long MemoryBytes, int MaxThreadsPerGroup)
{
    /// <inheritdoc/>
    public override string ToString() =>
        $"{Kind.Name(),-7} {Name}  memory {MemoryBytes / (1024 * 1024)} MiB  max threads/group {MaxThreadsPerGroup}";
}

/// <summary>Held use of a device from <see cref="GpuDevice.Exclusive"/>; disposing releases it. Dispose it on the thread that took it.</summary>
public sealed class ExclusiveUse : IDisposable
{
    private object? gate;

    internal ExclusiveUse(object gate) => this.gate = gate;

    /// <summary>Releases the device (once; later calls do nothing).</summary>
    public void Dispose()
    {
        var g = Interlocked.Exchange(ref gate, null);
        if (g is not null) Monitor.Exit(g);
    }
}

/// <summary>Thrown when a device allocation does not fit; says how much was asked, how much is free
/// and how much the device has. Nothing was allocated, and the device stays usable.</summary>
public sealed class InsufficientDeviceMemoryException(long requestedBytes, long? freeBytes, long deviceBytes, string device, Exception? inner)
    : Exception($"out of device memory on {device}: asked for {MiB(requestedBytes)} MiB, " +
                (freeBytes is long f ? $"{MiB(f)} MiB free" : "free memory unknown") +
                $" of {MiB(deviceBytes)} MiB; use a smaller batch", inner)
{
    /// <summary>Bytes requested by the failing allocation.</summary>
    public long RequestedBytes { get; } = requestedBytes;

    /// <summary>Bytes free when it failed (null where the backend does not say).</summary>
    public long? FreeBytes { get; } = freeBytes;

    /// <summary>The device's memory in all (or the limit that was set).</summary>
    public long DeviceBytes { get; } = deviceBytes;

    private static string MiB(long bytes) => (bytes / (1024.0 * 1024)).ToString("F1", System.Globalization.CultureInfo.InvariantCulture);
}

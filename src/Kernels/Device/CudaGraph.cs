using System.Reflection;
using System.Runtime.InteropServices;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace PosteriorGpu.Kernels.Device;

/// <summary>
/// A CUDA graph: a sequence of launches captured once and replayed with one call (cuGraphLaunch), which removes the
/// host's per-launch cost (a few microseconds each, 60-170 launches a U-Net step). ILGPU 1.5.3 has no capture API and
/// launches everything on the legacy NULL stream, which cannot be captured, so <see cref="Capture"/> goes to the CUDA
/// driver API itself: it creates a non-blocking stream, makes it the accelerator's default stream for the duration
/// (ILGPU's stream launchers and memsets read <see cref="Accelerator.DefaultStream"/> at every call, so every launch of
/// the captured work lands there), captures in relaxed mode, restores the NULL stream and instantiates the graph.
/// <see cref="Launch"/> replays it on the NULL stream, so it stays ordered with every other launch of the device.
/// <para>What a graph replays is fixed at capture: kernels, their arguments and every buffer address. Work whose
/// scalars change per call must read them on the device (a per-run table and a device-side step counter:
/// <see cref="Elementwise.StepTable"/>), and the buffers the work touches must outlive the graph (pools that never
/// free, as the samplers' and the U-Net's). The captured work must not synchronise with or copy to the host.</para>
/// </summary>
public sealed unsafe class CudaGraph : ILaunchReplay
{
    private readonly GpuDevice device;
    private IntPtr graph, exec;

    private CudaGraph(GpuDevice device, IntPtr graph, IntPtr exec, int nodes)
    {
        this.device = device;
        this.graph = graph;
        this.exec = exec;
        Nodes = nodes;
    }

    /// <summary>Nodes of the captured graph: its kernel launches and memsets.</summary>
    public int Nodes { get; }

    /// <summary>Times <see cref="Launch"/> was called.</summary>
    public int Launches { get; private set; }

    /// <summary>Null when graphs can be captured on <paramref name="device"/>; otherwise why not (not a CUDA device, the
    /// per-launch profiler is on, or the driver lacks the graph API).</summary>
    public static string? Unavailable(GpuDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (device.Accelerator is not CudaAccelerator) return $"graphs need a CUDA device; this one is {device.Description}";
        if (device.Profiling) return "POSTERIORGPU_PROFILE synchronises after every launch, which a capture forbids";
        return Driver.Missing;
    }

    /// <summary>Captures the launches <paramref name="work"/> makes on <paramref name="device"/> (they do not run) and
    /// instantiates them as a graph. The device is synchronised first (once).</summary>
    /// <exception cref="CudaGraphException">Capture is unavailable (<see cref="Unavailable"/>) or the driver refused it
    /// (for instance: the work synchronised or copied to the host); nothing is left captured, the device's default stream
    /// is restored, and the work's launches did not run.</exception>
    public static CudaGraph Capture(GpuDevice device, Action work)
    {
        ArgumentNullException.ThrowIfNull(work);
        if (Unavailable(device) is { } why) throw new CudaGraphException(why);
        var cuda = (CudaAccelerator)device.Accelerator;
        device.Synchronize();
        using var binding = cuda.BindScoped();
        var nullStream = cuda.DefaultStream;
        using var stream = cuda.CreateStream(StreamFlags.CU_STREAM_NON_BLOCKING);
        IntPtr captured = IntPtr.Zero, instance = IntPtr.Zero;
        SetDefaultStream(cuda, stream);
        try
        {
            Driver.Check(Driver.BeginCapture(stream.StreamPtr, RelaxedCapture), "cuStreamBeginCapture");
            try
            {
                work();
            }
            catch (Exception e)
            {
                Driver.EndCapture(stream.StreamPtr, &captured);
                if (captured != IntPtr.Zero) Driver.GraphDestroy(captured);
                // A driver call the capture forbids (a synchronisation, a blocking copy) fails inside ILGPU: the capture is
                // what failed, not the work, which runs as it is when launched plainly.
                if (e is CudaException) throw new CudaGraphException($"the captured work made a call a capture forbids: {e.Message}", e);
                throw;
            }
            Driver.Check(Driver.EndCapture(stream.StreamPtr, &captured), "cuStreamEndCapture");
        }
        finally
        {
            SetDefaultStream(cuda, nullStream);
        }
        try
        {
            nuint count = 0;
            Driver.Check(Driver.GraphGetNodes(captured, null, &count), "cuGraphGetNodes");
            Driver.Check(Driver.Instantiate(&instance, captured, 0), "cuGraphInstantiateWithFlags");
            return new CudaGraph(device, captured, instance, (int)count);
        }
        catch
        {
            Driver.GraphDestroy(captured);
            throw;
        }
    }

    /// <summary>Replays the graph on the device's NULL stream (asynchronous, like a launch).</summary>
    /// <exception cref="ObjectDisposedException">The graph was disposed.</exception>
    public void Launch()
    {
        ObjectDisposedException.ThrowIf(exec == IntPtr.Zero, this);
        using var binding = device.Accelerator.BindScoped();
        Driver.Check(Driver.GraphLaunch(exec, IntPtr.Zero), "cuGraphLaunch");
        device.CountDeviceOp();
        Launches++;
    }

    /// <summary>Destroys the graph (a replay still in flight completes first: the driver frees it afterwards).</summary>
    public void Dispose()
    {
        if (exec == IntPtr.Zero) return;
        using var binding = device.Accelerator.BindScoped();
        Driver.GraphExecDestroy(exec);
        Driver.GraphDestroy(graph);
        exec = graph = IntPtr.Zero;
    }

    // CU_STREAM_CAPTURE_MODE_RELAXED: the capturing thread may still make calls that are unsafe during a capture
    // (module loads, allocations) without failing it; the samplers warm up first, so none happen, but a pool that grows
    // does not break the capture.
    private const int RelaxedCapture = 2;

    private static readonly MethodInfo DefaultStreamSetter =
        typeof(Accelerator).GetProperty(nameof(Accelerator.DefaultStream))!.GetSetMethod(nonPublic: true)!;

    private static void SetDefaultStream(Accelerator accelerator, AcceleratorStream stream) =>
        DefaultStreamSetter.Invoke(accelerator, [stream]);

    /// <summary>The few driver entry points ILGPU does not bind, resolved once from the driver library.</summary>
    private static class Driver
    {
        public static readonly string? Missing;
        public static readonly delegate* unmanaged<IntPtr, int, int> BeginCapture;
        public static readonly delegate* unmanaged<IntPtr, IntPtr*, int> EndCapture;
        public static readonly delegate* unmanaged<IntPtr, IntPtr*, nuint*, int> GraphGetNodes;
        public static readonly delegate* unmanaged<IntPtr*, IntPtr, ulong, int> Instantiate;
        public static readonly delegate* unmanaged<IntPtr, IntPtr, int> GraphLaunch;
        public static readonly delegate* unmanaged<IntPtr, int> GraphExecDestroy;
        public static readonly delegate* unmanaged<IntPtr, int> GraphDestroy;
        private static readonly delegate* unmanaged<int, byte**, int> ErrorName;

        static Driver()
        {
            IntPtr lib = IntPtr.Zero;
            foreach (var name in new[] { "libcuda.so", "libcuda.so.1", "nvcuda.dll", "nvcuda" })
                if (NativeLibrary.TryLoad(name, out lib)) break;
            if (lib == IntPtr.Zero)
            {
                Missing = "the CUDA driver library (libcuda.so, nvcuda.dll) could not be loaded";
                return;
            }
            IntPtr Export(string symbol) => NativeLibrary.TryGetExport(lib, symbol, out var f) ? f : IntPtr.Zero;
            var symbols = new[] { "cuStreamBeginCapture_v2", "cuStreamEndCapture", "cuGraphGetNodes", "cuGraphInstantiateWithFlags",
                "cuGraphLaunch", "cuGraphExecDestroy", "cuGraphDestroy", "cuGetErrorName" };
            var f = symbols.Select(Export).ToArray();
            var absent = symbols.Where((_, i) => f[i] == IntPtr.Zero).ToArray();
            if (absent.Length > 0)
            {
                Missing = $"the CUDA driver lacks {string.Join(", ", absent)} (graphs need a driver for CUDA 11.4 or later)";
                return;
            }
            BeginCapture = (delegate* unmanaged<IntPtr, int, int>)f[0];
            EndCapture = (delegate* unmanaged<IntPtr, IntPtr*, int>)f[1];
            GraphGetNodes = (delegate* unmanaged<IntPtr, IntPtr*, nuint*, int>)f[2];
            Instantiate = (delegate* unmanaged<IntPtr*, IntPtr, ulong, int>)f[3];
            GraphLaunch = (delegate* unmanaged<IntPtr, IntPtr, int>)f[4];
            GraphExecDestroy = (delegate* unmanaged<IntPtr, int>)f[5];
            GraphDestroy = (delegate* unmanaged<IntPtr, int>)f[6];
            ErrorName = (delegate* unmanaged<int, byte**, int>)f[7];
        }

        public static void Check(int result, string call)
        {
            if (result == 0) return;
            byte* name = null;
            string text = ErrorName != null && ErrorName(result, &name) == 0 && name != null
                ? Marshal.PtrToStringAnsi((IntPtr)name) ?? $"error {result}" : $"error {result}";
            throw new CudaGraphException($"{call} failed: {text} ({result})");
        }
    }
}

/// <summary>A captured sequence of launches, replayed whole by <see cref="Launch"/> (<see cref="CudaGraph"/>).</summary>
public interface ILaunchReplay : IDisposable
{
    /// <summary>Launches (and memsets) one replay runs.</summary>
    int Nodes { get; }

    /// <summary>Times <see cref="Launch"/> was called.</summary>
    int Launches { get; }

    /// <summary>Replays the captured launches (asynchronously, in order with the device's other launches).</summary>
    void Launch();
}

/// <summary>A CUDA graph could not be captured, instantiated or launched (the message names the driver call and its error).</summary>
public sealed class CudaGraphException(string message, Exception? inner = null) : Exception(message, inner);

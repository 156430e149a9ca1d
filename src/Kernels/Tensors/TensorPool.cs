using PosteriorGpu.Kernels.Device;

namespace PosteriorGpu.Kernels.Tensors;

/// <summary>
/// Reuses device buffers across the steps of a sampler run: <see cref="Rent"/> returns a tensor
/// whose Dispose gives it back, so a loop that rents and disposes the same shapes allocates device
/// memory only in its first step. Disposing the pool frees every buffer it made. Not thread-safe:
/// one pool per run.
/// </summary>
public sealed class TensorPool(GpuDevice device) : IDisposable
{
    private readonly Dictionary<int, Stack<Tensor>> free = new();
    private readonly List<Tensor> all = new();
    private bool disposed;

    /// <summary>The device the buffers live on.</summary>
    public GpuDevice Device { get; } = device;

    /// <summary>Device buffers this pool has allocated so far (grows only when a rent finds none free).</summary>
    public int Allocations => all.Count;

    /// <summary>Tensors rented and not yet returned.</summary>
    public int Outstanding { get; private set; }

    /// <summary>Rents a tensor of this shape (contents undefined); dispose it to give it back.</summary>
    /// <exception cref="InsufficientDeviceMemoryException">A new buffer does not fit on the device (the pool is unchanged).</exception>
    /// <remarks>The shape is taken as a span (a call like Rent(n, c, h, w) allocates nothing) and copied only when
    /// the reused tensor had another shape, so a sampler loop that rents the same shapes allocates nothing.</remarks>
    public Tensor Rent(params ReadOnlySpan<int> shape)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        int n = Shape.Elements(shape);
        if (free.TryGetValue(n, out var stack) && stack.Count > 0)
        {
            var t = stack.Pop();
            // Same rank: the dims are written into the tensor's own shape array (nothing allocated); a pooled
            // tensor's Shape array is therefore valid only while it is rented.
            var own = t.Shape;
            if (own.Length == shape.Length) shape.CopyTo(own);
            t.ReshapeInPlace(own.Length == shape.Length ? own : shape.ToArray());   // also revives it
            Outstanding++;
            return t;
        }
        var buffer = Device.Allocate(n);   // counted only once it exists: a failed rent leaves the pool as it was
        var tensor = new Tensor(Device, buffer, buffer.View.SubView(0, n), shape.ToArray(), this);
        all.Add(tensor);
        Outstanding++;
        return tensor;
    }

    /// <summary>Rents a tensor of this shape filled with zeros.</summary>
    public Tensor RentZeros(params ReadOnlySpan<int> shape)
    {
        var t = Rent(shape);
        t.Clear();
        return t;
    }

    internal void Return(Tensor t)
    {
        Outstanding--;
        if (disposed)
        {
            t.ReleaseBuffer();
            return;
        }
        if (!free.TryGetValue(t.Length, out var stack))
            free[t.Length] = stack = new Stack<Tensor>();
        stack.Push(t);
    }

    /// <summary>Frees every buffer the pool allocated, rented or not.</summary>
    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        foreach (var t in all) t.ReleaseBuffer();
        all.Clear();
        free.Clear();
    }
}

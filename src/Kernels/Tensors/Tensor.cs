using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;

namespace PosteriorGpu.Kernels.Tensors;

/// <summary>
/// A float32 tensor in device memory, row-major (NCHW for images). A tensor either owns its buffer
/// (disposing frees it, or returns it to the <see cref="TensorPool"/> it came from) or is a view
/// of another tensor's memory (<see cref="Reshape"/>, <see cref="SliceBatch"/>; disposing a view
/// does nothing). Not thread-safe: use a tensor from one thread at a time.
/// </summary>
public sealed class Tensor : IDisposable
{
    private MemoryBuffer1D<float, Stride1D.Dense>? owned;
    private readonly TensorPool? pool;
    private int[] shape;
    private bool disposed;

    internal Tensor(GpuDevice device, MemoryBuffer1D<float, Stride1D.Dense>? owned, ArrayView<float> view, int[] shape, TensorPool? pool)
    {
        Device = device;
        this.owned = owned;
        this.pool = pool;
        this.shape = shape;
        View = view;
    }

    /// <summary>The device holding the data.</summary>
    public GpuDevice Device { get; }

    /// <summary>The elements, as a dense view kernels take.</summary>
    public ArrayView<float> View { get; private set; }

    /// <summary>The dimensions (do not modify).</summary>
    public int[] Shape => shape;

    /// <summary>Number of dimensions.</summary>
    public int Rank => shape.Length;

    /// <summary>Number of elements.</summary>
    public int Length => (int)View.Length;

    /// <summary>Batch size: the first dimension (1 for a scalar).</summary>
    public int N => shape.Length > 0 ? shape[0] : 1;

    /// <summary>Channels of an NCHW tensor.</summary>
    public int C => Dim(1, "C");

    /// <summary>Height of an NCHW tensor.</summary>
    public int H => Dim(2, "H");

    /// <summary>Width of an NCHW tensor.</summary>
    public int W => Dim(3, "W");

    /// <summary>Elements per batch item.</summary>
    public int ItemLength => shape.Length > 0 && shape[0] > 0 ? Length / shape[0] : Length;

    /// <summary>True when this tensor owns its memory rather than viewing another's.</summary>
    public bool OwnsMemory => owned is not null;

    private int Dim(int i, string name) => shape.Length == 4
        ? shape[i]
        : throw new InvalidOperationException($"{name} needs an NCHW tensor but the shape is {Tensors.Shape.Format(shape)}");

    /// <summary>Allocates an uninitialised tensor.</summary>
    /// <exception cref="InsufficientDeviceMemoryException">The device cannot hold it (nothing is allocated).</exception>
    public static Tensor Empty(GpuDevice device, params int[] shape)
    {
        int n = Tensors.Shape.Elements(shape);
        var buffer = device.Allocate(n);
        return new Tensor(device, buffer, buffer.View.SubView(0, n), (int[])shape.Clone(), null);
    }

    /// <summary>Allocates a tensor filled with zeros.</summary>
    public static Tensor Zeros(GpuDevice device, params int[] shape)
    {
        var t = Empty(device, shape);
        device.CountDeviceOp();
        t.View.MemSetToZero();
        return t;
    }

    /// <summary>Copies host data into a new tensor of the given shape.</summary>
    /// <exception cref="ArgumentException">The data length is not the product of the shape.</exception>
    public static Tensor FromHost(GpuDevice device, ReadOnlySpan<float> data, params int[] shape)
    {
        int n = Tensors.Shape.Elements(shape);
        if (data.Length != n)
            throw new ArgumentException($"FromHost: {data.Length} values do not fill shape {Tensors.Shape.Format(shape)} ({n} elements)");
        var t = Empty(device, shape);
        t.CopyFrom(data);
        return t;
    }

    /// <summary>Copies host data into this tensor (same element count).</summary>
    public void CopyFrom(ReadOnlySpan<float> data)
    {
        ThrowIfDisposed();
        if (data.Length != Length)
            throw new ArgumentException($"CopyFrom: {data.Length} values for a tensor of shape {Tensors.Shape.Format(shape)} ({Length} elements)");
        Device.CountHostToDevice();
        View.CopyFromCPU(data);
    }

    /// <summary>Copies another tensor of the same shape into this one (device to device).</summary>
    public void CopyFrom(Tensor source)
    {
        ThrowIfDisposed();
        Tensors.Shape.RequireSame("CopyFrom", source, "source", this, "destination");
        Device.CountDeviceOp();
        source.View.CopyTo(View);
    }

    /// <summary>Copies the data to a new host array (waits for pending kernels).</summary>
    public float[] ToHost()
    {
        var a = new float[Length];
        CopyTo(a);
        return a;
    }

    /// <summary>Copies the data to a host span of exactly <see cref="Length"/> elements.</summary>
    public void CopyTo(Span<float> destination)
    {
        ThrowIfDisposed();
        if (destination.Length != Length)
            throw new ArgumentException($"CopyTo: destination holds {destination.Length} values, tensor {Tensors.Shape.Format(shape)} has {Length}");
        Device.Synchronize();
        Device.CountDeviceToHost();
        View.CopyToCPU(destination);
    }

    /// <summary>A view with another shape of the same element count (shares memory).</summary>
    public Tensor Reshape(params int[] newShape)
    {
        ThrowIfDisposed();
        int n = Tensors.Shape.Elements(newShape);
        if (n != Length)
            throw new ArgumentException($"Reshape: cannot view shape {Tensors.Shape.Format(shape)} ({Length} elements) as {Tensors.Shape.Format(newShape)} ({n} elements)");
        return new Tensor(Device, null, View, (int[])newShape.Clone(), null);
    }

    /// <summary>A view of batch items [start, start + count) (shares memory).</summary>
    public Tensor SliceBatch(int start, int count)
    {
        ThrowIfDisposed();
        if (shape.Length == 0 || start < 0 || count < 0 || start + count > N)
            throw new ArgumentOutOfRangeException(nameof(start), $"SliceBatch({start}, {count}) outside batch of {N} (shape {Tensors.Shape.Format(shape)})");
        var s = (int[])shape.Clone();
        s[0] = count;
        return new Tensor(Device, null, View.SubView((long)start * ItemLength, (long)count * ItemLength), s, null);
    }

    /// <summary>A view of channels [start, start + count) of a one-item tensor [1, C, ...] (shares memory: at batch 1 a
    /// channel range is contiguous), so that a layer can write its output straight into its part of a concatenation.</summary>
    public Tensor SliceChannels(int start, int count)
    {
        ThrowIfDisposed();
        if (shape.Length < 2 || shape[0] != 1)
            throw new ArgumentException($"SliceChannels: needs a one-item tensor [1, C, ...] but got {Tensors.Shape.Format(shape)}");
        if (start < 0 || count < 0 || start + count > shape[1])
            throw new ArgumentOutOfRangeException(nameof(start), $"SliceChannels({start}, {count}) outside {shape[1]} channels (shape {Tensors.Shape.Format(shape)})");
        var s = (int[])shape.Clone();
        s[1] = count;
        long plane = shape[1] == 0 ? 0 : Length / shape[1];
        return new Tensor(Device, null, View.SubView(start * plane, count * plane), s, null);
    }

    /// <summary>Sets every element to zero.</summary>
    public void Clear()
    {
        ThrowIfDisposed();
        Device.CountDeviceOp();
        View.MemSetToZero();
    }

    internal void ReshapeInPlace(int[] newShape)
    {
        shape = newShape;
        disposed = false;
    }

    internal MemoryBuffer1D<float, Stride1D.Dense>? Buffer => owned;

    internal void ReleaseBuffer()
    {
        if (owned is not null) Device.Free(owned);
        owned = null;
        View = default;
        disposed = true;
    }

    private void ThrowIfDisposed()
    {
        if (disposed) throw new ObjectDisposedException(nameof(Tensor), $"tensor {Tensors.Shape.Format(shape)} was disposed");
    }

    /// <summary>Frees owned memory, returns pooled memory to its pool; a view does nothing.</summary>
    public void Dispose()
    {
        if (disposed) return;
        if (pool is not null)
        {
            disposed = true;
            pool.Return(this);
        }
        else if (owned is not null)
        {
            ReleaseBuffer();
        }
        else
        {
            disposed = true;
        }
    }

    /// <inheritdoc/>
    public override string ToString() => $"Tensor{Tensors.Shape.Format(shape)} on {Device.Kind.Name()}";
}

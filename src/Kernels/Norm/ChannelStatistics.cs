using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Norm;

/// <summary>
/// Per-channel statistics of a tensor x [N, C, ...]: for each (n, c) the mean over the positions and the squared
/// deviations from it (their sum, not divided), saved in device memory by the launch that produced x
/// (<see cref="Gemm.GemmNormStats"/>, asked with <see cref="OutputNorm.Save"/>). They are what a GroupNorm over a
/// concatenation containing x needs of x: a U-Net's skip is made on the down path and concatenated on the up path, and the
/// launch that makes the other part of that concatenation merges these into the concatenation's table
/// (<see cref="OutputNorm.Following"/>), so no launch reads the concatenation for its statistics.
/// </summary>
public sealed class ChannelStatistics : IDisposable
{
    private Tensor? buffer;
    private int length;

    /// <summary>Statistics on <paramref name="device"/>; the buffer is made (and grown) by the launches that write it.</summary>
    public ChannelStatistics(GpuDevice device) => Device = device;

    /// <summary>The device the statistics live on.</summary>
    public GpuDevice Device { get; }

    /// <summary>The tensor whose statistics the buffer holds: set by the launch that wrote them, null before (and while a
    /// launch that will write them is being prepared).</summary>
    public Tensor? Of { get; private set; }

    /// <summary>Channels of <see cref="Of"/> (0 when nothing is saved).</summary>
    public int Channels => Of is { Rank: >= 2 } x ? x.Shape[1] : 0;

    /// <summary>A view of 2 N C floats for the statistics of x, which a launch is about to write; <see cref="Of"/> is
    /// cleared until <see cref="Written"/>.</summary>
    internal ArrayView<float> Reserve(Tensor x)
    {
        int pairs = 2 * x.N * (x.Rank >= 2 ? x.Shape[1] : 1);
        Of = null;
        if (buffer is null || buffer.Length < pairs)
        {
            buffer?.Dispose();
            buffer = null;
            buffer = Tensor.Empty(Device, Math.Max(pairs, 64));
        }
        length = pairs;
        return buffer.View.SubView(0, pairs);
    }

    /// <summary>The launch that <see cref="Reserve"/>d the view for x has been enqueued.</summary>
    internal void Written(Tensor x) => Of = x;

    /// <summary>The saved pairs [N, C, (mean, squared deviations)] (device view).</summary>
    /// <exception cref="InvalidOperationException">Nothing is saved.</exception>
    internal ArrayView<float> Pairs => Of is not null && buffer is not null
        ? buffer.View.SubView(0, length)
        : throw new InvalidOperationException("channel statistics: nothing was saved (no launch wrote them)");

    /// <summary>The saved pairs, copied to the host: [N, C, 2] as (mean, squared deviations).</summary>
    /// <exception cref="InvalidOperationException">Nothing is saved.</exception>
    public float[] ToHost()
    {
        _ = Pairs;   // throws when nothing is saved
        return buffer!.ToHost()[..length];
    }

    /// <summary>The specification, in double: pairs[2 (n C + c)] = mean of x[n, c, :], [+1] = sum of (x - mean)^2.</summary>
    public static void Reference(ReadOnlySpan<float> x, int batch, int channels, int spatial, Span<float> pairs)
    {
        for (int row = 0; row < batch * channels; row++)
        {
            var plane = x.Slice(row * spatial, spatial);
            double mean = 0, sq = 0;
            foreach (float v in plane) mean += v;
            mean /= Math.Max(1, spatial);
            foreach (float v in plane) sq += (v - mean) * (v - mean);
            pairs[2 * row] = (float)mean;
            pairs[2 * row + 1] = (float)sq;
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        buffer?.Dispose();
        buffer = null;
        Of = null;
    }
}

using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Gemm;

/// <summary>
/// Several nn.Linear layers that share one input, in one launch: y_g = x W_g^T + b_g for every layer g, where x is
/// [N, K] and each W_g [rows_g, K] and b_g [rows_g] lie anywhere in one flat parameter buffer. The outputs are packed
/// one layer after another, each a dense [N, rows_g] block. The U-Net's time-embedding projections (one per resnet,
/// all reading silu(temb)) are its use: 17 launches of 64-row GEMM tiles on a 1-row problem become one.
/// </summary>
/// <remarks>
/// One thread per output element (chunked on the CPU) runs the K-long dot product; at batch 1 the whole product is a
/// few hundred KFLOP and the launch, not the arithmetic, is the cost being removed. The layers' places go to the
/// kernel as a small device table (<see cref="GroupedLinearPlan"/>, made once per network), so a forward pass copies
/// nothing from the host.
/// </remarks>
public static class GroupedLinear
{
    /// <summary>The specification: for each layer, each item and each output row, bias plus the dot product in double.</summary>
    public static void Reference(ReadOnlySpan<float> x, int batch, int k, ReadOnlySpan<float> parameters,
        IReadOnlyList<GroupedLinearPlan.Layer> layers, Span<float> y)
    {
        int at = 0;
        foreach (var l in layers)
        {
            for (int n = 0; n < batch; n++)
                for (int j = 0; j < l.Rows; j++)
                {
                    double acc = parameters[l.BiasOffset + j];
                    for (int i = 0; i < k; i++) acc += (double)parameters[l.WeightOffset + j * k + i] * x[n * k + i];
                    y[at + n * l.Rows + j] = (float)acc;
                }
            at += batch * l.Rows;
        }
    }

    /// <summary>Thread per output element: finds its layer in the table (a short linear scan), then the dot product.</summary>
    internal static void Kernel(Index1D tid, ElementRange r, int batch, int k, int layers,
        ArrayView<float> table, ArrayView<float> x, ArrayView<float> parameters, ArrayView<float> y)
    {
        for (int c = 0; c < r.Count; c++)
        {
            int idx = r.Index(tid, c);
            if (idx >= r.Total) return;
            int g = 0;
            while (g + 1 < layers && batch * GroupedLinearPlan.RowStart(table, g + 1) <= idx) g++;
            int rows = GroupedLinearPlan.Rows(table, g);
            int local = idx - batch * GroupedLinearPlan.RowStart(table, g);
            int n = local / rows;
            int j = local - n * rows;
            int w = GroupedLinearPlan.WeightOffset(table, g) + j * k;
            int xi = n * k;
            float acc = parameters[GroupedLinearPlan.BiasOffset(table, g) + j];
            for (int i = 0; i < k; i++) acc += parameters[w + i] * x[xi + i];
            y[idx] = acc;
        }
    }

    /// <summary>Every layer of <paramref name="plan"/> applied to x ([N, K]): y ([N * plan.TotalRows]) holds layer g's
    /// [N, rows_g] output at N * (the rows of the layers before it).</summary>
    /// <exception cref="ArgumentException">x is not [N, plan.InFeatures], the parameters are shorter than the plan needs,
    /// or y is not [N * plan.TotalRows].</exception>
    public static void Run(GroupedLinearPlan plan, Tensor x, Tensor parameters, Tensor y)
    {
        ArgumentNullException.ThrowIfNull(plan);
        const string op = "grouped linear";
        Shape.RequireRank(op, x, "x", 2);
        if (x.Shape[1] != plan.InFeatures)
            throw new ArgumentException($"{op}: the layers take {plan.InFeatures} input features but x has shape {Shape.Format(x.Shape)}");
        if (parameters.Length < plan.ParametersNeeded)
            throw new ArgumentException($"{op}: the layers read parameters up to element {plan.ParametersNeeded} but the buffer holds {parameters.Length}");
        int batch = x.Shape[0];
        Shape.Require(op, y, "y", batch * plan.TotalRows);
        Shape.RequireSameDevice(op, x, y);
        Shape.RequireSameDevice(op, parameters, y);
        Shape.RequireSameDevice(op, plan.Table, y);
        if (y.Length == 0) return;
        var device = y.Device;
        var range = device.Plan(y.Length);
        var kernel = device.Kernel("grouped-linear", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int, int, int,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(Kernel));
        kernel(range.Threads, range, batch, plan.InFeatures, plan.Layers.Count, plan.Table.View, x.View, parameters.View, y.View);
    }
}

/// <summary>Where the layers of a <see cref="GroupedLinear"/> product lie in the parameter buffer, as a device table made
/// once (offsets split in 16-bit halves so that float entries hold them exactly). Holds device memory: dispose it.</summary>
public sealed class GroupedLinearPlan : IDisposable
{
    /// <summary>One layer: weight [Rows, K] at <paramref name="WeightOffset"/>, bias [Rows] at <paramref name="BiasOffset"/>
    /// (element offsets into the flat parameter buffer).</summary>
    public readonly record struct Layer(int WeightOffset, int BiasOffset, int Rows);

    private const int Fields = 6;

    /// <summary>Makes the table on <paramref name="device"/> for layers of <paramref name="inFeatures"/> inputs.</summary>
    /// <exception cref="ArgumentException">No layers, a negative offset, or a layer with no rows.</exception>
    public GroupedLinearPlan(GpuDevice device, int inFeatures, IReadOnlyList<Layer> layers)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(layers);
        if (layers.Count == 0) throw new ArgumentException("grouped linear: no layers");
        if (inFeatures < 1) throw new ArgumentOutOfRangeException(nameof(inFeatures), inFeatures, "grouped linear: inFeatures must be >= 1");
        var host = new float[layers.Count * Fields];
        int rows = 0;
        long needed = 0;
        for (int g = 0; g < layers.Count; g++)
        {
            var l = layers[g];
            if (l.Rows < 1 || l.WeightOffset < 0 || l.BiasOffset < 0)
                throw new ArgumentException($"grouped linear: layer {g} has {l.Rows} rows at weight offset {l.WeightOffset}, bias offset {l.BiasOffset}");
            host[g * Fields] = l.WeightOffset >> 16;
            host[g * Fields + 1] = l.WeightOffset & 0xFFFF;
            host[g * Fields + 2] = l.BiasOffset >> 16;
            host[g * Fields + 3] = l.BiasOffset & 0xFFFF;
            host[g * Fields + 4] = rows;
            host[g * Fields + 5] = l.Rows;
            rows = checked(rows + l.Rows);
            needed = Math.Max(needed, Math.Max((long)l.WeightOffset + (long)l.Rows * inFeatures, (long)l.BiasOffset + l.Rows));
        }
        if (rows >= 1 << 24) throw new ArgumentException($"grouped linear: {rows} rows in all; a float table holds row starts below 2^24 exactly");
        InFeatures = inFeatures;
        Layers = layers.ToArray();
        TotalRows = rows;
        ParametersNeeded = needed;
        Table = Tensor.FromHost(device, host, host.Length);
    }

    /// <summary>K, the input features every layer takes.</summary>
    public int InFeatures { get; }

    /// <summary>The layers, in output order.</summary>
    public IReadOnlyList<Layer> Layers { get; }

    /// <summary>Output rows of all layers together (per batch item).</summary>
    public int TotalRows { get; }

    /// <summary>The parameter buffer must hold at least this many elements.</summary>
    public long ParametersNeeded { get; }

    /// <summary>The device table the kernel reads.</summary>
    public Tensor Table { get; }

    /// <summary>Where layer <paramref name="g"/>'s [N, rows] output starts in y, for a batch of <paramref name="batch"/>.</summary>
    public int OutputOffset(int g, int batch)
    {
        int start = 0;
        for (int i = 0; i < g; i++) start += Layers[i].Rows;
        return batch * start;
    }

    internal static int WeightOffset(ArrayView<float> t, int g) => ((int)t[g * Fields] << 16) + (int)t[g * Fields + 1];
    internal static int BiasOffset(ArrayView<float> t, int g) => ((int)t[g * Fields + 2] << 16) + (int)t[g * Fields + 3];
    internal static int RowStart(ArrayView<float> t, int g) => (int)t[g * Fields + 4];
    internal static int Rows(ArrayView<float> t, int g) => (int)t[g * Fields + 5];

    /// <summary>Frees the table.</summary>
    public void Dispose() => Table.Dispose();
}

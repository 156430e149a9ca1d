using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Embedding;

/// <summary>y[n, :] += table[labels[n], :]: a learned embedding lookup added in place (the class
/// embedding of a class-conditional U-Net, nn.Embedding). Labels are integers stored as floats.</summary>
public static class EmbeddingAdd
{
    /// <summary>The specification: a plain loop.</summary>
    public static void Reference(ReadOnlySpan<float> table, ReadOnlySpan<int> labels, int dim, Span<float> y)
    {
        for (int n = 0; n < labels.Length; n++)
            for (int j = 0; j < dim; j++) y[n * dim + j] += table[labels[n] * dim + j];
    }

    internal static void Kernel(Index1D tid, ElementRange r, int dim, ArrayView<float> table, ArrayView<float> labels, ArrayView<float> y)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            int n = i / dim;
            y[i] += table[(int)labels[n] * dim + (i - n * dim)];
        }
    }

    /// <summary>y[n] += table[labels[n]]; table [K, D], labels [N] (integral values in [0, K), checked
    /// by the caller on the host), y [N, D].</summary>
    public static void Run(Tensor table, Tensor labels, Tensor y)
    {
        Shape.RequireRank("embedding add", table, "table", 2);
        Shape.Require("embedding add", y, "y", labels.Length, table.Shape[1]);
        var plan = y.Device.Plan(y.Length);
        var k = y.Device.Kernel("embedding-add", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int,
            ArrayView<float>, ArrayView<float>, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, table.Shape[1], table.View, labels.View, y.View);
    }
}

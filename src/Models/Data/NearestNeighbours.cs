using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Gemm;
using PosteriorGpu.Kernels.Reductions;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Models.Data;

/// <summary>
/// Euclidean nearest-neighbour distances between two sets of flattened images, for a simple sample
/// quality figure: how far each generated image is from the closest real one. The squared distances
/// ||q||^2 + ||r||^2 - 2 q.r come from one GEMM per block of references on the device.
/// </summary>
public static class NearestNeighbours
{
    /// <summary>The specification of <see cref="Distances"/>: the nearest of <see cref="NearestReference"/>.</summary>
    public static double[] Reference(ReadOnlySpan<float> queries, ReadOnlySpan<float> references, int dim) =>
        NearestReference(queries, references, dim, 1).SquaredDistance.Select(Math.Sqrt).ToArray();

    /// <summary>The specification of <see cref="Nearest"/>: a plain double loop and a stable sort (ties keep the
    /// lower reference index first).</summary>
    public static (int[] Index, double[] SquaredDistance) NearestReference(ReadOnlySpan<float> queries, ReadOnlySpan<float> references, int dim, int k)
    {
        int nq = queries.Length / dim, nr = references.Length / dim;
        var index = new int[nq * k];
        var distance = new double[nq * k];
        var d = new double[nr];
        for (int i = 0; i < nq; i++)
        {
            for (int j = 0; j < nr; j++)
            {
                double sum = 0;
                for (int c = 0; c < dim; c++)
                {
                    double e = queries[i * dim + c] - references[j * dim + c];
                    sum += e * e;
                }
                d[j] = sum;
            }
            var order = Enumerable.Range(0, nr).OrderBy(j => d[j]).Take(k).ToArray();
            for (int r = 0; r < k; r++) (index[i * k + r], distance[i * k + r]) = (order[r], d[order[r]]);
        }
        return (index, distance);
    }

    /// <summary>For each of the <paramref name="queries"/> (row-major, <paramref name="dim"/> values each),
    /// the distance to the nearest of the <paramref name="references"/>.</summary>
    /// <exception cref="ArgumentException">An array is empty or not a whole number of rows.</exception>
    public static double[] Distances(GpuDevice device, float[] queries, float[] references, int dim, int block = 4096) =>
        Nearest(device, queries, references, dim, 1, block).SquaredDistance.Select(Math.Sqrt).ToArray();

    /// <summary>For each query, the indices of its <paramref name="k"/> nearest references and their squared
    /// distances, nearest first ([queries * k] each).</summary>
    /// <exception cref="ArgumentException">An array is empty or not a whole number of rows, or k is not in
    /// 1..references.</exception>
    public static (int[] Index, double[] SquaredDistance) Nearest(GpuDevice device, float[] queries, float[] references, int dim, int k, int block = 4096)
    {
        if (dim < 1 || queries.Length == 0 || references.Length == 0 || queries.Length % dim != 0 || references.Length % dim != 0)
            throw new ArgumentException($"nearest neighbours: {queries.Length} query and {references.Length} reference values are not whole, non-empty sets of rows of {dim}");
        int nq = queries.Length / dim, nr = references.Length / dim;
        if (k < 1 || k > nr) throw new ArgumentException($"nearest neighbours: k = {k} must lie in 1..{nr} (the number of references)", nameof(k));
        var index = new int[nq * k];
        var best = new double[nq * k];
        Array.Fill(best, double.PositiveInfinity);
        using var q = Tensor.FromHost(device, queries, nq, dim);
        using var qNorms = Tensor.Empty(device, nq);
        BatchReduce.SquaredNorm(q, qNorms);
        var qn = qNorms.ToHost();
        for (int start = 0; start < nr; start += block)
        {
            int count = Math.Min(block, nr - start);
            using var r = Tensor.FromHost(device, references.AsSpan(start * dim, count * dim), count, dim);
            using var rNorms = Tensor.Empty(device, count);
            using var dots = Tensor.Empty(device, nq, count);
            BatchReduce.SquaredNorm(r, rNorms);
            Gemm.Run(q, false, r, true, dots);
            var rn = rNorms.ToHost();
            var d = dots.ToHost();
            for (int i = 0; i < nq; i++)
                for (int j = 0; j < count; j++)
                    Insert(index.AsSpan(i * k, k), best.AsSpan(i * k, k), start + j, Math.Max(0, qn[i] + rn[j] - 2.0 * d[i * count + j]));
        }
        return (index, best);
    }

    /// <summary>Keeps the k smallest distances sorted: the new one goes in after every equal or smaller one.</summary>
    private static void Insert(Span<int> index, Span<double> best, int j, double distance)
    {
        int at = best.Length;
        while (at > 0 && distance < best[at - 1]) at--;
        if (at == best.Length) return;
        for (int m = best.Length - 1; m > at; m--) (index[m], best[m]) = (index[m - 1], best[m - 1]);
        (index[at], best[at]) = (j, distance);
    }
}

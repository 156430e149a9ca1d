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
    /// <summary>The specification: a plain double loop.</summary>
    public static double[] Reference(ReadOnlySpan<float> queries, ReadOnlySpan<float> references, int dim)
    {
        int nq = queries.Length / dim, nr = references.Length / dim;
        var result = new double[nq];
        for (int i = 0; i < nq; i++)
        {
            double best = double.PositiveInfinity;
            for (int j = 0; j < nr; j++)
            {
                double d = 0;
                for (int k = 0; k < dim; k++)
                {
                    double e = queries[i * dim + k] - references[j * dim + k];
                    d += e * e;
                }
                best = Math.Min(best, d);
            }
            result[i] = Math.Sqrt(best);
        }
        return result;
    }

    /// <summary>For each of the <paramref name="queries"/> (row-major, <paramref name="dim"/> values each),
    /// the distance to the nearest of the <paramref name="references"/>.</summary>
    /// <exception cref="ArgumentException">An array is empty or not a whole number of rows.</exception>
    public static double[] Distances(GpuDevice device, float[] queries, float[] references, int dim, int block = 4096)
    {
        if (dim < 1 || queries.Length == 0 || references.Length == 0 || queries.Length % dim != 0 || references.Length % dim != 0)
            throw new ArgumentException($"nearest neighbours: {queries.Length} query and {references.Length} reference values are not whole, non-empty sets of rows of {dim}");
        int nq = queries.Length / dim, nr = references.Length / dim;
        var best = new double[nq];
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
                    best[i] = Math.Min(best[i], qn[i] + rn[j] - 2.0 * d[i * count + j]);
        }
        for (int i = 0; i < nq; i++) best[i] = Math.Sqrt(Math.Max(0, best[i]));
        return best;
    }
}

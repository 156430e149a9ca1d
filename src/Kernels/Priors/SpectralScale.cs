using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Priors;

/// <summary>
/// The eigenbasis step of a Gaussian's epsilon: out[n, j] = (z[n, j] - sqrt(a_n) m[j]) sqrt(1 - a_n) / (a_n lambda[j] + 1 - a_n).
/// With z = U^T x, m = U^T mu and Sigma = U diag(lambda) U^T this is U^T eps of the marginal
/// N(sqrt(a) mu, a Sigma + (1 - a) I); with U = I (a diagonal Sigma) it is eps itself.
/// </summary>
public static class SpectralScale
{
    /// <summary>The specification, in double: <paramref name="levels"/> holds (a, 1 - a, sqrt a, sqrt(1 - a)) per item.</summary>
    public static void Reference(ReadOnlySpan<float> z, ReadOnlySpan<float> shift, ReadOnlySpan<float> lambda, ReadOnlySpan<float> levels, Span<float> output)
    {
        int d = shift.Length;
        for (int i = 0; i < z.Length; i++)
        {
            int n = i / d, j = i - n * d;
            double a = levels[n * 4], b = levels[n * 4 + 1], sa = levels[n * 4 + 2], sb = levels[n * 4 + 3];
            output[i] = (float)((z[i] - sa * shift[j]) * sb / (a * lambda[j] + b));
        }
    }

    internal static void Kernel(Index1D tid, ElementRange r, int d, ArrayView<float> z, ArrayView<float> shift,
        ArrayView<float> lambda, ArrayView<float> levels, ArrayView<float> output)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            int n = i / d, j = i - n * d;
            float a = levels[n * 4], b = levels[n * 4 + 1], sa = levels[n * 4 + 2], sb = levels[n * 4 + 3];
            output[i] = (z[i] - sa * shift[j]) * sb / (a * lambda[j] + b);
        }
    }

    /// <summary>output = (z - sqrt(a) shift) sqrt(1 - a) / (a lambda + 1 - a) per item; z and output are [N, d],
    /// shift and lambda [d], levels [N, 4]; output may be z.</summary>
    /// <exception cref="ArgumentException">A shape does not fit (the message names it).</exception>
    public static void Run(Tensor z, Tensor shift, Tensor lambda, Tensor levels, Tensor output)
    {
        const string op = "spectral scale";
        Shape.RequireRank(op, z, "z", 2);
        Shape.RequireSame(op, z, "z", output, "output");
        int n = z.Shape[0], d = z.Shape[1];
        Shape.Require(op, shift, "shift", d);
        Shape.Require(op, lambda, "lambda", d);
        Shape.Require(op, levels, "levels", n, NoiseLevelTable.Stride);
        var plan = z.Device.Plan(z.Length);
        var k = z.Device.Kernel("prior-spectral-scale", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, Math.Max(d, 1), z.View, shift.View, lambda.View, levels.View, output.View);
    }
}

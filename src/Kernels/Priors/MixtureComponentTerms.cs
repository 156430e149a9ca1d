using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Priors;

/// <summary>
/// Per item n and component k of a Gaussian mixture at level a_n, given z[n, k, :] = U_k^T x_n:
/// v = z - sqrt(a_n) m_k (m_k = U_k^T mu_k) is x_n - sqrt(a_n) mu_k in component k's eigenbasis, with
/// variances s_j = a_n lambda_kj + 1 - a_n. Writes the component's log weight plus log density up to
/// the shared constant, logit[n, k] = log w_k - (sum_j v_j^2 / s_j + sum_j log s_j) / 2, and replaces
/// z[n, k, :] by U_k^T eps_k = sqrt(1 - a_n) v / s (the component's own epsilon in its eigenbasis).
/// The log-determinant is summed here in float (d terms of relative error 1e-7), not on the host.
/// </summary>
public static class MixtureComponentTerms
{
    /// <summary>The specification, in double: z is [N, K, d], shifts and lambdas [K, d], logWeights [K],
    /// levels [N, 4] (a, 1 - a, sqrt a, sqrt(1 - a)), logits [N, K].</summary>
    public static void Reference(Span<float> z, ReadOnlySpan<float> shifts, ReadOnlySpan<float> lambdas, ReadOnlySpan<float> logWeights,
        ReadOnlySpan<float> levels, Span<float> logits)
    {
        int k = logWeights.Length, d = shifts.Length / k, rows = z.Length / d;
        for (int row = 0; row < rows; row++)
        {
            int n = row / k, c = row - n * k;
            double a = levels[n * 4], b = levels[n * 4 + 1], sa = levels[n * 4 + 2], sb = levels[n * 4 + 3];
            double maha = 0, logDet = 0;
            for (int j = 0; j < d; j++)
            {
                double v = z[row * d + j] - sa * shifts[c * d + j];
                double s = a * lambdas[c * d + j] + b;
                maha += v * v / s;
                logDet += Math.Log(s);
                z[row * d + j] = (float)(sb * v / s);
            }
            logits[row] = (float)(logWeights[c] - 0.5 * (maha + logDet));
        }
    }

    internal static void Kernel(Index1D tid, ElementRange r, int components, int d, ArrayView<float> z, ArrayView<float> shifts,
        ArrayView<float> lambdas, ArrayView<float> logWeights, ArrayView<float> levels, ArrayView<float> logits)
    {
        for (int it = 0; it < r.Count; it++)
        {
            int row = r.Index(tid, it);
            if (row >= r.Total) return;
            int n = row / components, c = row - n * components;
            float a = levels[n * 4], b = levels[n * 4 + 1], sa = levels[n * 4 + 2], sb = levels[n * 4 + 3];
            float maha = 0, logDet = 0;
            int zo = row * d, co = c * d;
            for (int j = 0; j < d; j++)
            {
                float v = z[zo + j] - sa * shifts[co + j];
                float s = a * lambdas[co + j] + b;
                float w = v / s;
                maha += v * w;
                logDet += MathF.Log(s);
                z[zo + j] = sb * w;
            }
            logits[row] = logWeights[c] - 0.5f * (maha + logDet);
        }
    }

    /// <summary>Runs the step in place on z ([N, K d]); see the type's summary.</summary>
    /// <exception cref="ArgumentException">A shape does not fit (the message names it).</exception>
    public static void Run(Tensor z, Tensor shifts, Tensor lambdas, Tensor logWeights, Tensor levels, Tensor logits)
    {
        const string op = "mixture component terms";
        Shape.RequireRank(op, logWeights, "log weights", 1);
        Shape.RequireRank(op, shifts, "shifts", 2);
        int k = logWeights.Shape[0], d = shifts.Shape[1];
        Shape.Require(op, shifts, "shifts", k, d);
        Shape.Require(op, lambdas, "lambdas", k, d);
        Shape.RequireRank(op, z, "z", 2);
        int n = z.Shape[0];
        Shape.Require(op, z, "z", n, k * d);
        Shape.Require(op, levels, "levels", n, NoiseLevelTable.Stride);
        Shape.Require(op, logits, "logits", n, k);
        var device = z.Device;
        int rows = n * k;
        if (rows == 0 || d == 0) return;
        // A row is d multiply-adds and a log: on the CPU give each thread about 2048 elements' work.
        var plan = device.IsCpu
            ? ElementRange.Explicit(rows, (int)Math.Clamp((long)rows * d / ElementRange.CpuMinChunk, 1, Math.Min(rows, ElementRange.CpuThreads)), chunked: true)
            : device.Plan(rows);
        var kernel = device.Kernel("prior-mixture-component-terms", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int, int,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(Kernel));
        kernel(plan.Threads, plan, k, d, z.View, shifts.View, lambdas.View, logWeights.View, levels.View, logits.View);
    }
}

using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Norm;

/// <summary>
/// Gradients of <see cref="GroupNorm"/> (optionally with its fused SiLU) with respect to x, gamma and
/// beta. With xhat = (x - mean) rstd, z = gamma xhat + beta and dz = dy (times silu'(z) when fused):
/// dgamma[c] = sum dz xhat, dbeta[c] = sum dz over the batch and positions, and per group
/// dx = rstd (g - mean(g) - xhat mean(g xhat)) with g = gamma dz, the means taken over the group.
/// </summary>
/// <remarks>
/// Barrier-free: one thread per (n, group) recomputes the group's statistics (two-pass, as the
/// forward), then sums mean(g) and mean(g xhat) and per-(n, c) partials of dgamma and dbeta, then
/// writes dx; a second kernel sums the partials over n in a fixed order. The forward activations
/// are recomputed rather than stored, so training keeps only x.
/// </remarks>
public static class GroupNormBackward
{
    /// <summary>The specification, in double. dx, dGamma and dBeta are overwritten.</summary>
    public static void Reference(ReadOnlySpan<float> x, int batch, int channels, int spatial, int groups,
        ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta, float eps, bool silu, ReadOnlySpan<float> dy,
        Span<float> dx, Span<float> dGamma, Span<float> dBeta)
    {
        int perGroup = channels / groups, length = perGroup * spatial;
        var dg = new double[channels];
        var db = new double[channels];
        var dz = new double[length];
        var xhat = new double[length];
        for (int item = 0; item < batch * groups; item++)
        {
            int offset = item * length, g0 = item % groups * perGroup;
            double mean = 0;
            for (int i = 0; i < length; i++) mean += x[offset + i];
            mean /= length;
            double sq = 0;
            for (int i = 0; i < length; i++) sq += (x[offset + i] - mean) * (x[offset + i] - mean);
            double rstd = 1 / Math.Sqrt(sq / length + eps);
            double mg = 0, mgx = 0;
            for (int i = 0; i < length; i++)
            {
                int c = g0 + i / spatial;
                xhat[i] = (x[offset + i] - mean) * rstd;
                double z = gamma[c] * xhat[i] + beta[c];
                double d = dy[offset + i];
                if (silu)
                {
                    double s = 1 / (1 + Math.Exp(-z));
                    d *= s * (1 + z * (1 - s));
                }
                dz[i] = d;
                dg[c] += d * xhat[i];
                db[c] += d;
                mg += gamma[c] * d;
                mgx += gamma[c] * d * xhat[i];
            }
            mg /= length;
            mgx /= length;
            for (int i = 0; i < length; i++)
                dx[offset + i] = (float)(rstd * (gamma[g0 + i / spatial] * dz[i] - mg - xhat[i] * mgx));
        }
        for (int c = 0; c < channels; c++)
        {
            dGamma[c] = (float)dg[c];
            dBeta[c] = (float)db[c];
        }
    }

    internal static void GroupKernel(Index1D tid, int items, int groups, int perGroup, int spatial, float eps, int silu, int accumulate,
        ArrayView<float> x, ArrayView<float> gamma, ArrayView<float> beta, ArrayView<float> dy, ArrayView<float> dx, ArrayView<float> partial)
    {
        if (tid >= items) return;
        int length = perGroup * spatial, offset = tid * length;
        int n = tid / groups, g0 = (tid - n * groups) * perGroup, channels = groups * perGroup;
        float sum = 0;
        for (int i = 0; i < length; i++) sum += x[offset + i];
        float mean = sum / length, sq = 0;
        for (int i = 0; i < length; i++)
        {
            float d = x[offset + i] - mean;
            sq += d * d;
        }
        float rstd = 1f / MathF.Sqrt(sq / length + eps);
        float mg = 0, mgx = 0;
        for (int cc = 0; cc < perGroup; cc++)
        {
            int c = g0 + cc, o = offset + cc * spatial;
            float ga = gamma[c], be = beta[c], pg = 0, pb = 0;
            for (int s = 0; s < spatial; s++)
            {
                float xh = (x[o + s] - mean) * rstd;
                float d = dy[o + s];
                if (silu != 0) d *= Activations.SiluBackward.Derivative(ga * xh + be);
                pg += d * xh;
                pb += d;
            }
            partial[(n * channels + c) * 2] = pg;
            partial[(n * channels + c) * 2 + 1] = pb;
            mg += ga * pb;
            mgx += ga * pg;
        }
        InputGradient(x, gamma, beta, dy, dx, offset, g0, perGroup, spatial, 0, 1, mean, rstd, mg / length, mgx / length, silu, accumulate);
    }

    /// <summary>dx of one (n, group) slab from its statistics and the two channel means (mg = mean of gamma dL/dy-hat terms,
    /// mgx = mean of gamma x-hat dL/dy-hat terms), positions first, first + step, ... of each channel: the thread kernel
    /// takes them all (0, 1), a slab group's thread t every threads-th (t, threads).</summary>
    private static void InputGradient(ArrayView<float> x, ArrayView<float> gamma, ArrayView<float> beta, ArrayView<float> dy,
        ArrayView<float> dx, int offset, int g0, int perGroup, int spatial, int first, int step, float mean, float rstd, float mg, float mgx,
        int silu, int accumulate)
    {
        for (int cc = 0; cc < perGroup; cc++)
        {
            int c = g0 + cc, o = offset + cc * spatial;
            float ga = gamma[c], be = beta[c];
            for (int s = first; s < spatial; s += step)
            {
                float xh = (x[o + s] - mean) * rstd;
                float d = dy[o + s];
                if (silu != 0) d *= Activations.SiluBackward.Derivative(ga * xh + be);
                float v = rstd * (ga * d - mg - xh * mgx);
                dx[o + s] = accumulate != 0 ? dx[o + s] + v : v;
            }
        }
    }

    /// <summary>The GPU variant of <see cref="GroupKernel"/>: one group of threads per (n, group) instead of one thread,
    /// its threads striding over the slab (adjacent threads, adjacent positions) and meeting in warp-shuffle group sums
    /// for the mean, the variance and each channel's two partial sums. The one-thread kernel reads the slab four times
    /// in a row per thread: 2.9 ms a launch on an H200 for the MNIST model at batch 64 (bench/results/2026-12-04-h200).
    /// Every thread takes part in every group sum (the loops are uniform across the group).</summary>
    internal static void SlabKernel(int groups, int perGroup, int spatial, float eps, int silu, int accumulate,
        ArrayView<float> x, ArrayView<float> gamma, ArrayView<float> beta, ArrayView<float> dy, ArrayView<float> dx, ArrayView<float> partial)
    {
        var sums = SharedMemory.Allocate<float>(GroupNormSlab.MaxWarps);
        int item = Grid.IdxX, t = Group.IdxX, threads = Group.DimX;
        int length = perGroup * spatial, offset = item * length;
        int n = item / groups, g0 = (item - n * groups) * perGroup, channels = groups * perGroup;
        float sum = 0;
        for (int i = t; i < length; i += threads) sum += x[offset + i];
        float mean = GroupNormSlab.GroupSum(sums, sum) / length;
        float sq = 0;
        for (int i = t; i < length; i += threads)
        {
            float d = x[offset + i] - mean;
            sq += d * d;
        }
        float rstd = 1f / MathF.Sqrt(GroupNormSlab.GroupSum(sums, sq) / length + eps);
        float mg = 0, mgx = 0;
        for (int cc = 0; cc < perGroup; cc++)
        {
            int c = g0 + cc, o = offset + cc * spatial;
            float ga = gamma[c], be = beta[c], pg = 0, pb = 0;
            for (int s = t; s < spatial; s += threads)
            {
                float xh = (x[o + s] - mean) * rstd;
                float d = dy[o + s];
                if (silu != 0) d *= Activations.SiluBackward.Derivative(ga * xh + be);
                pg += d * xh;
                pb += d;
            }
            pg = GroupNormSlab.GroupSum(sums, pg);
            pb = GroupNormSlab.GroupSum(sums, pb);
            if (t == 0)
            {
                partial[(n * channels + c) * 2] = pg;
                partial[(n * channels + c) * 2 + 1] = pb;
            }
            mg += ga * pb;
            mgx += ga * pg;
        }
        InputGradient(x, gamma, beta, dy, dx, offset, g0, perGroup, spatial, t, threads, mean, rstd, mg / length, mgx / length, silu, accumulate);
    }

    internal static void ParamKernel(Index1D c, int batch, int channels, int accumulate, ArrayView<float> partial,
        ArrayView<float> dGamma, ArrayView<float> dBeta)
    {
        if (c >= channels) return;
        float g = 0, b = 0;
        for (int n = 0; n < batch; n++)
        {
            g += partial[(n * channels + c) * 2];
            b += partial[(n * channels + c) * 2 + 1];
        }
        dGamma[c] = accumulate != 0 ? dGamma[c] + g : g;
        dBeta[c] = accumulate != 0 ? dBeta[c] + b : b;
    }

    /// <summary>
    /// dx (+)= dL/dx (when <paramref name="accumulateInput"/>, added to dx) and dGamma, dBeta (+)= dL/dgamma,
    /// dL/dbeta (when <paramref name="accumulateParameters"/>) for y = GroupNorm(x) (then SiLU when
    /// <paramref name="silu"/>); x, dy and dx are [N, C, ...], gamma, beta, dGamma and dBeta [C]. dx may be dy.
    /// </summary>
    /// <exception cref="ArgumentException">Shapes do not fit, or C is not a multiple of groups.</exception>
    public static void Run(Tensor x, int groups, Tensor gamma, Tensor beta, float eps, bool silu, Tensor dy,
        Tensor dx, bool accumulateInput, Tensor dGamma, Tensor dBeta, bool accumulateParameters)
    {
        const string op = "group norm backward";
        if (x.Rank < 2) throw new ArgumentException($"{op}: expected x of rank >= 2 ([N, C, ...]) but got shape {Shape.Format(x.Shape)}");
        int batch = x.Shape[0], channels = x.Shape[1];
        if (groups < 1 || channels % groups != 0)
            throw new ArgumentException($"{op}: {channels} channels of x {Shape.Format(x.Shape)} do not split into {groups} groups");
        Shape.Require(op, gamma, "gamma", channels);
        Shape.Require(op, beta, "beta", channels);
        Shape.Require(op, dGamma, "dGamma", channels);
        Shape.Require(op, dBeta, "dBeta", channels);
        Shape.RequireSameDevice(op, x, gamma);
        Shape.RequireSameDevice(op, x, beta);
        Shape.RequireSameDevice(op, x, dGamma);
        Shape.RequireSameDevice(op, x, dBeta);
        Shape.RequireSame(op, x, "x", dy, "dy");
        Shape.RequireSame(op, x, "x", dx, "dx");
        Shape.RequireSameDevice(op, x, dy);
        Shape.RequireSameDevice(op, x, dx);
        if (x.Length == 0) return;
        int spatial = x.Length / (batch * channels), items = batch * groups;
        var device = x.Device;
        var partial = device.Scratch(batch * channels * 2);
        if (device.UsesGpuKernels)
        {
            var slab = device.Kernel("group-norm-backward-slab", static acc => acc.LoadStreamKernel<int, int, int, float, int, int,
                ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(SlabKernel));
            slab(new KernelConfig(items, GroupNorm.GroupThreads(device)), groups, channels / groups, spatial, eps, silu ? 1 : 0,
                accumulateInput ? 1 : 0, x.View, gamma.View, beta.View, dy.View, dx.View, partial);
        }
        else
        {
            var group = device.Kernel("group-norm-backward", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, int, int, int, int, float, int, int,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(GroupKernel));
            group(items, items, groups, channels / groups, spatial, eps, silu ? 1 : 0, accumulateInput ? 1 : 0,
                x.View, gamma.View, beta.View, dy.View, dx.View, partial);
        }
        var param = device.Kernel("group-norm-backward-params", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, int, int, int,
            ArrayView<float>, ArrayView<float>, ArrayView<float>>(ParamKernel));
        param(channels, batch, channels, accumulateParameters ? 1 : 0, partial, dGamma.View, dBeta.View);
    }
}

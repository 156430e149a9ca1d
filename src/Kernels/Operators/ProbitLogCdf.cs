using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Operators;

/// <summary>
/// The terms of the probit log-likelihood of one-bit sensing, t = log Phi(y t / sigma) in place (t holds A x + tau on
/// entry), summed per item by <see cref="Reductions.BatchReduce"/> into log p(y | x): so a Metropolis-adjusted step
/// or LGD-MC's particle weights never read the measurements back to the host. Evaluated in double with the erfcx fit
/// of <see cref="ProbitWeights"/> (fractional error below 1.2e-7, so each term is within about 1.2e-7 of log Phi in
/// absolute terms): with z = -u / sqrt 2, Phi(u) = erfc(z) / 2 = e^{-z^2} erfcx(z) / 2, so
/// log Phi(u) = -z^2 + log(erfcx(z) / 2) for z &gt;= 0 (u &lt;= 0; no underflow however negative u is), and
/// log Phi(u) = log1p(-e^{-z^2} erfcx(-z) / 2) for z &lt; 0 (u &gt; 0; no cancellation as Phi -> 1).
/// </summary>
public static class ProbitLogCdf
{
    private const double InvSqrtTwo = 0.7071067811865476;

    /// <summary>log Phi(u) as the kernel evaluates it (double; see the class summary).</summary>
    public static double LogCdf(double u)
    {
        double z = -u * InvSqrtTwo;
        if (z >= 0) return -z * z + Math.Log(0.5 * ProbitWeights.ErfcxNonNegativeDouble(z));
        return LogOnePlus(-0.5 * Math.Exp(-z * z) * ProbitWeights.ErfcxNonNegativeDouble(-z));
    }

    /// <summary>log(1 + x) for x in (-1, 1] without losing small x (Goldberg's correction: the rounding of 1 + x is
    /// divided out), since kernels have no log1p.</summary>
    private static double LogOnePlus(double x)
    {
        double w = 1 + x;
        return w == 1 ? x : Math.Log(w) * x / (w - 1);
    }

    /// <summary>The specification of the kernel: t[i] = log Phi(y[i] t[i] / sigma) as <see cref="LogCdf"/>, rounded to float.</summary>
    /// <exception cref="ArgumentException">y and t differ in length.</exception>
    public static void Reference(ReadOnlySpan<float> y, Span<float> t, float invSigma)
    {
        if (y.Length != t.Length) throw new ArgumentException($"probit log-CDF reference: y has {y.Length} values, t {t.Length}");
        for (int i = 0; i < t.Length; i++) t[i] = (float)LogCdf((double)y[i] * t[i] * invSigma);
    }

    internal static void Kernel(Index1D tid, ElementRange r, ArrayView<float> y, ArrayView<float> t, float invSigma)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            t[i] = (float)LogCdf((double)y[i] * t[i] * invSigma);
        }
    }

    /// <summary>t = log Phi(y t / sigma) in place, with <paramref name="invSigma"/> = 1 / sigma.</summary>
    /// <exception cref="ArgumentException">y and t differ in shape.</exception>
    public static void Run(Tensor y, Tensor t, float invSigma) =>
        ProbitWeights.RunInPlace("probit log-CDF", "one-bit-probit-log-cdf", Kernel, y, t, invSigma);
}

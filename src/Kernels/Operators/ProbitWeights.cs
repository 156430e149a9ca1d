using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Operators;

/// <summary>
/// The weights of the probit log-likelihood gradient of one-bit sensing, t = y R(y t / sigma) / sigma in place (t holds
/// A x + tau on entry), which A^T maps to grad log p(y | x). R(u) = phi(u) / Phi(u) is the inverse Mills ratio
/// (phi, Phi the standard normal density and CDF), evaluated without overflow, underflow or NaN for every finite u:
/// R(u) = sqrt(2/pi) / erfcx(-u / sqrt 2) with erfcx(z) = e^{z^2} erfc(z). For z &gt;= 0, erfcx is t exp(P(t)),
/// t = 1 / (1 + z/2), the Chebyshev fit of Numerical Recipes' erfcc (Press et al., 2nd ed., section 6.2; fractional
/// error below 1.2e-7 for all z) with its e^{-z^2} factor cancelled, so R(u) ~ -u as u -> -infinity comes out exact;
/// for z &lt; 0, erfcx(z) = 2 e^{z^2} - erfcx(-z), which overflows to infinity (R = 0) only where R is below 1e-38
/// anyway. The accuracy of R against an independent erfc is tested in the one-bit operator's tests.
/// </summary>
public static class ProbitWeights
{
    private const float SqrtTwoOverPi = 0.7978845608028654f;
    private const float InvSqrtTwo = 0.7071067811865476f;

    /// <summary>erfcx(z) = e^{z^2} erfc(z) for z &gt;= 0 (float; Numerical Recipes' erfcc without its Gaussian factor).</summary>
    public static float ErfcxNonNegative(float z)
    {
        float t = 1f / (1f + 0.5f * z);
        float p = -1.26551223f + t * (1.00002368f + t * (0.37409196f + t * (0.09678418f + t * (-0.18628806f
            + t * (0.27886807f + t * (-1.13520398f + t * (1.48851587f + t * (-0.82215223f + t * 0.17087277f))))))));
        return t * MathF.Exp(p);
    }

    /// <summary>R(u) = phi(u) / Phi(u) in float, as the kernel evaluates it (no NaN for finite u).</summary>
    public static float InverseMillsRatio(float u)
    {
        float z = -u * InvSqrtTwo;
        float e;
        if (z >= 0f) e = ErfcxNonNegative(z);
        else e = 2f * MathF.Exp(z * z) - ErfcxNonNegative(-z);
        return SqrtTwoOverPi / e;
    }

    /// <summary>The same fit evaluated in double: erfcx(z) for z &gt;= 0.</summary>
    internal static double ErfcxNonNegativeDouble(double z)
    {
        double t = 1 / (1 + 0.5 * z);
        double p = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
            + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
        return t * Math.Exp(p);
    }

    /// <summary>The specification of the kernel: t[i] = y[i] R(y[i] t[i] / sigma) / sigma with R from the same fit in double.</summary>
    /// <exception cref="ArgumentException">y and t differ in length.</exception>
    public static void Reference(ReadOnlySpan<float> y, Span<float> t, float invSigma)
    {
        if (y.Length != t.Length) throw new ArgumentException($"probit weights reference: y has {y.Length} values, t {t.Length}");
        for (int i = 0; i < t.Length; i++)
        {
            double u = (double)y[i] * t[i] * invSigma, z = -u / Math.Sqrt(2);
            double e = z >= 0 ? ErfcxNonNegativeDouble(z) : 2 * Math.Exp(z * z) - ErfcxNonNegativeDouble(-z);
            t[i] = (float)(y[i] * (Math.Sqrt(2 / Math.PI) / e) * invSigma);
        }
    }

    internal static void Kernel(Index1D tid, ElementRange r, ArrayView<float> y, ArrayView<float> t, float invSigma)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            float yi = y[i];
            t[i] = yi * InverseMillsRatio(yi * t[i] * invSigma) * invSigma;
        }
    }

    /// <summary>t = y R(y t / sigma) / sigma in place, with <paramref name="invSigma"/> = 1 / sigma.</summary>
    /// <exception cref="ArgumentException">y and t differ in shape.</exception>
    public static void Run(Tensor y, Tensor t, float invSigma) => RunInPlace("probit weights", "one-bit-probit", Kernel, y, t, invSigma);

    /// <summary>Launches one of the probit kernels that map t in place from y, t and 1 / sigma (this and <see cref="ProbitLogCdf"/>).</summary>
    internal static void RunInPlace(string op, string key, Action<Index1D, ElementRange, ArrayView<float>, ArrayView<float>, float> kernel,
        Tensor y, Tensor t, float invSigma)
    {
        Shape.RequireSame(op, y, "y", t, "t");
        var plan = t.Device.Plan(t.Length);
        if (plan.Total == 0) return;
        var k = t.Device.Kernel(key, kernel, static (acc, kernel) => acc.LoadAutoGroupedStreamKernel(kernel));
        k(plan.Threads, plan, y.View, t.View, invSigma);
    }
}

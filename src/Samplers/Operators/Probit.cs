using MathNet.Numerics;

namespace PosteriorGpu.Samplers.Operators;

/// <summary>
/// The inverse Mills ratio R(u) = phi(u) / Phi(u) (phi, Phi the standard normal density and CDF), the
/// derivative of log Phi(u), evaluated without overflow, underflow or NaN for every finite u:
/// R(u) = sqrt(2/pi) / erfcx(-u / sqrt 2) with erfcx(z) = e^{z^2} erfc(z). For z &gt;= 0, erfcx is
/// t exp(P(t)), t = 1 / (1 + z/2), the Chebyshev fit of Numerical Recipes' erfcc (Press et al., 2nd
/// ed., section 6.2; fractional error below 1.2e-7 for all z) with its e^{-z^2} factor cancelled,
/// so R(u) ~ -u as u -> -infinity comes out exact; for z &lt; 0, erfcx(z) = 2 e^{z^2} - erfcx(-z),
/// which overflows to infinity (R = 0) only where R is below 1e-38 anyway.
/// </summary>
public static class Probit
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

    /// <summary>R(u) = phi(u) / Phi(u) in float, for kernels (no branch on exceptions, no NaN for finite u).</summary>
    public static float InverseMillsRatio(float u)
    {
        float z = -u * InvSqrtTwo;
        float e;
        if (z >= 0f) e = ErfcxNonNegative(z);
        else e = 2f * MathF.Exp(z * z) - ErfcxNonNegative(-z);
        return SqrtTwoOverPi / e;
    }

    /// <summary>The specification of <see cref="InverseMillsRatio"/> in double: phi(u) / Phi(u) with
    /// MathNet's erfc where Phi(u) is representable (u &gt; -30), else Laplace's continued fraction
    /// Phi(u) / phi(u) = 1 / (|u| + 1 / (|u| + 2 / (|u| + 3 / (|u| + ...)))).</summary>
    public static double InverseMillsRatioReference(double u)
    {
        if (u > -30)
        {
            if (u > 38) return 0;
            double logPhi = -0.5 * u * u - 0.5 * Math.Log(2 * Math.PI);
            double cdf = 0.5 * SpecialFunctions.Erfc(-u / Math.Sqrt(2));
            return Math.Exp(logPhi - Math.Log(cdf));
        }
        double a = -u, cf = a;
        for (int k = 200; k >= 1; k--) cf = a + k / cf;
        // cf = |u| + 1/(|u| + 2/(...)) evaluated bottom-up; Phi/phi = 1 / cf.
        return cf;
    }

    /// <summary>log Phi(u) in double for every finite u (the probit log-likelihood of one bit).</summary>
    public static double LogCdfReference(double u)
    {
        if (u > -30) return Math.Log(0.5 * SpecialFunctions.Erfc(-u / Math.Sqrt(2)));
        return -0.5 * u * u - 0.5 * Math.Log(2 * Math.PI) - Math.Log(InverseMillsRatioReference(u));
    }
}

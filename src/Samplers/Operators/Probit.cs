using MathNet.Numerics;
using PosteriorGpu.Kernels.Operators;

namespace PosteriorGpu.Samplers.Operators;

/// <summary>
/// Double-precision references of the probit likelihood of one-bit sensing: the inverse Mills ratio
/// R(u) = phi(u) / Phi(u) (phi, Phi the standard normal density and CDF) and log Phi(u), from MathNet's erfc where
/// Phi(u) is representable and Laplace's continued fraction beyond. The float R the kernel evaluates is
/// <see cref="ProbitWeights.InverseMillsRatio"/>; tests compare the two.
/// </summary>
public static class Probit
{
    /// <summary>R(u) = phi(u) / Phi(u) in double: with
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

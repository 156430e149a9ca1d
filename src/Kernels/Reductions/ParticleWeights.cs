using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Reductions;

/// <summary>
/// Self-normalised importance weights of P particles per chain, on the device (one thread per chain, in double as the
/// host's <c>LgdMcSampler.Weigh</c>, which is the specification): w_i = exp(l_i - max l) / sum_j exp(l_j - max l), the
/// weighted mean squared residual sum_i w_i r_i, and a health flag (0, or NaN when a log-likelihood is NaN or
/// +infinity) that a divergence ring reads later, so that a guidance step makes no host synchronisation. With
/// <c>gaussianScale</c> set, l_i = gaussianScale * r_i (the Gaussian likelihood up to a constant) and no log-likelihood
/// tensor is read.
/// </summary>
public static class ParticleWeights
{
    internal static void Kernel(Index1D tid, ElementRange range, int particles, int gaussian, float gaussianScale,
        ArrayView<float> logLikelihood, ArrayView<float> squaredResidual, ArrayView<float> weights, ArrayView<float> meanResidual,
        ArrayView<float> health)
    {
        for (int it = 0; it < range.Count; it++)
        {
            int c = range.Index(tid, it);
            if (c >= range.Total) return;
            int o = c * particles;
            if (particles == 1)
            {
                float l = gaussian != 0 ? gaussianScale * squaredResidual[o] : logLikelihood[o];
                bool fine = !float.IsNaN(l) && !float.IsPositiveInfinity(l);
                weights[o] = 1f;
                meanResidual[c] = squaredResidual[o];
                health[c] = fine ? 0f : float.NaN;
                continue;
            }
            double max = double.NegativeInfinity;
            bool ok = true;
            for (int k = 0; k < particles; k++)
            {
                float l = gaussian != 0 ? gaussianScale * squaredResidual[o + k] : logLikelihood[o + k];
                if (float.IsNaN(l) || float.IsPositiveInfinity(l)) ok = false;
                else max = Math.Max(max, l);
            }
            if (!ok)
            {
                // The chain diverged: NaN weights carry it into x, and the flag names it.
                for (int k = 0; k < particles; k++) weights[o + k] = float.NaN;
                meanResidual[c] = float.NaN;
                health[c] = float.NaN;
                continue;
            }
            health[c] = 0f;
            if (double.IsNegativeInfinity(max))
            {
                // Every particle impossible: weigh them equally rather than divide by zero.
                float equal = 1f / particles;
                double s = 0;
                for (int k = 0; k < particles; k++)
                {
                    weights[o + k] = equal;
                    s += squaredResidual[o + k];
                }
                meanResidual[c] = (float)(s / particles);
                continue;
            }
            double sum = 0;
            for (int k = 0; k < particles; k++)
                sum += Math.Exp((gaussian != 0 ? gaussianScale * squaredResidual[o + k] : logLikelihood[o + k]) - max);
            double mean = 0;
            for (int k = 0; k < particles; k++)
            {
                double w = Math.Exp((gaussian != 0 ? gaussianScale * squaredResidual[o + k] : logLikelihood[o + k]) - max) / sum;
                weights[o + k] = (float)w;
                mean += w * squaredResidual[o + k];
            }
            meanResidual[c] = (float)mean;
        }
    }

    /// <summary>Weights [N * P], mean residual [N] and health [N] from the particles' log-likelihoods [N * P] (or, when
    /// <paramref name="logLikelihood"/> is null, l = <paramref name="gaussianScale"/> * r) and squared residuals [N * P].</summary>
    /// <exception cref="ArgumentException">The lengths do not match.</exception>
    public static void Run(Tensor? logLikelihood, float gaussianScale, Tensor squaredResidual, int particles,
        Tensor weights, Tensor meanResidual, Tensor health)
    {
        const string op = "particle weights";
        if (particles < 1) throw new ArgumentOutOfRangeException(nameof(particles), particles, $"{op}: need at least one particle");
        int chains = meanResidual.Length;
        if (squaredResidual.Length != (long)chains * particles || weights.Length != squaredResidual.Length
            || (logLikelihood is not null && logLikelihood.Length != squaredResidual.Length) || health.Length != chains)
            throw new ArgumentException($"{op}: expected {chains} x {particles} particle values and {chains} chain values, got residuals " +
                                        $"{squaredResidual.Length}, weights {weights.Length}, health {health.Length}");
        if (chains == 0) return;
        var device = meanResidual.Device;
        var plan = device.Plan(chains);
        var kernel = device.Kernel("particle-weights", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int, int, float,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(Kernel));
        kernel(plan.Threads, plan, particles, logLikelihood is null ? 1 : 0, gaussianScale, (logLikelihood ?? squaredResidual).View,
            squaredResidual.View, weights.View, meanResidual.View, health.View);
    }
}

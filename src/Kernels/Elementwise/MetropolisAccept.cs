using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Elementwise;

/// <summary>
/// The accept/reject decision of a Metropolis-adjusted Langevin step, per chain on the device (no read-back): the log
/// target of a state, log q(v) = l(v) - d(v) / (2 eta^2), is rebuilt in double from two floats kept per chain, its
/// log-likelihood term l (or, for a Gaussian likelihood, the squared residual r with l = -r / (2 sigma^2)) and its squared
/// distance d to the anchor; log alpha = log q(x') - log q(x^) + (||x' - m(x^)||^2 - ||x^ - m(x')||^2) / (2 C3^2), and
/// a chain accepts when log alpha is finite and at least 0 or above log u, u the Philox uniform of (seed, stream, step,
/// chain). Accepting copies the proposal's two floats into the state, sets the chain's flag to 1 (else 0) and adds 1 to
/// its count. The same double arithmetic as the host loop it replaces, so the chains are bitwise unchanged on the CPU.
/// </summary>
public static class MetropolisAccept
{
    /// <summary>The constants of one step.</summary>
    /// <param name="Gaussian">1: the likelihood terms are squared residuals (l = -r / TwoSigma2); 0: log-likelihoods.</param>
    /// <param name="TwoSigma2">2 sigma_y^2 (double, as the host computed it).</param>
    /// <param name="TwoEta2">2 eta^2.</param>
    /// <param name="TwoC3Squared">2 C3^2.</param>
    /// <param name="Seed">Seed of the uniforms.</param>
    /// <param name="Stream">Their stream.</param>
    /// <param name="Step">Their step counter.</param>
    /// <param name="FirstChain">The global index of chain 0.</param>
    public readonly record struct Constants(int Gaussian, double TwoSigma2, double TwoEta2, double TwoC3Squared, ulong Seed, uint Stream,
        ulong Step, long FirstChain);

    /// <summary>log q from the two floats of a state (the specification of the kernel's arithmetic).</summary>
    public static double LogTarget(float likelihoodTerm, float distance, int gaussian, double twoSigma2, double twoEta2)
    {
        double result = gaussian != 0 ? -likelihoodTerm / twoSigma2 : likelihoodTerm;
        result -= distance / twoEta2;
        return result;
    }

    /// <summary>The decision for one chain (the specification): true to accept.</summary>
    public static bool Accepts(double logTarget, double proposalLogTarget, float forward, float reverse, double twoC3Squared, double u)
    {
        double logAlpha = proposalLogTarget - logTarget + ((double)forward - reverse) / twoC3Squared;
        return !double.IsNaN(logAlpha) && !double.IsInfinity(logAlpha) && (logAlpha >= 0 || Math.Log(u) < logAlpha);
    }

    internal static void Kernel(Index1D tid, ElementRange r, Constants c, ArrayView<float> term, ArrayView<float> distance,
        ArrayView<float> proposalTerm, ArrayView<float> proposalDistance, ArrayView<float> forward, ArrayView<float> reverse,
        ArrayView<float> flags, ArrayView<float> count)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            double current = LogTarget(term[i], distance[i], c.Gaussian, c.TwoSigma2, c.TwoEta2);
            double proposal = LogTarget(proposalTerm[i], proposalDistance[i], c.Gaussian, c.TwoSigma2, c.TwoEta2);
            double u = Philox.Uniform(c.Seed, c.Stream, c.Step, c.FirstChain + i);
            if (Accepts(current, proposal, forward[i], reverse[i], c.TwoC3Squared, u))
            {
                flags[i] = 1f;
                count[i] += 1f;
                term[i] = proposalTerm[i];
                distance[i] = proposalDistance[i];
            }
            else flags[i] = 0f;
        }
    }

    /// <summary>Decides every chain ([N] each): updates the state (<paramref name="term"/>, <paramref name="distance"/>),
    /// writes <paramref name="flags"/> (1 accept, 0 reject) and adds the accepts to <paramref name="count"/>.</summary>
    /// <exception cref="ArgumentException">The lengths differ.</exception>
    public static void Run(Constants c, Tensor term, Tensor distance, Tensor proposalTerm, Tensor proposalDistance,
        Tensor forward, Tensor reverse, Tensor flags, Tensor count)
    {
        foreach (var (t, name) in new[] { (distance, "distance"), (proposalTerm, "proposalTerm"), (proposalDistance, "proposalDistance"),
                     (forward, "forward"), (reverse, "reverse"), (flags, "flags"), (count, "count") })
            Shape.RequireSame("metropolis accept", t, name, term, "term");
        var plan = term.Device.Plan(term.Length);
        if (plan.Total == 0) return;
        var k = term.Device.Kernel("metropolis-accept", acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, Constants,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, c, term.View, distance.View, proposalTerm.View, proposalDistance.View, forward.View, reverse.View,
            flags.View, count.View);
    }
}

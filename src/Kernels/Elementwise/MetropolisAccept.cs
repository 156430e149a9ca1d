using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Elementwise;

/// <summary>
/// The accept/reject decision of a Metropolis-adjusted Langevin step, per chain on the device (no read-back): with the
/// log target of a state log q(v) = l(v) - d(v) / (2 eta^2), kept per chain as two floats, its log-likelihood term l (or,
/// for a Gaussian likelihood, the squared residual r with l = -r / (2 sigma^2)) and its squared distance d to the anchor,
/// log alpha = log q(x') - log q(x^) + (||x' - m(x^)||^2 - ||x^ - m(x')||^2) / (2 C3^2), and a chain accepts when log
/// alpha is finite and at least 0 or above log u, u the Philox uniform of (seed, stream, step, chain). Accepting copies
/// the proposal's two floats into the state, sets the chain's flag to 1 (else 0) and adds 1 to its count.
/// Float arithmetic on differences: log alpha is formed from r - r', d' - d and the distances' difference before any
/// division, so the large, nearly equal log targets never cancel in float. (Double constants cannot be used: the GPU
/// contexts compile with MathMode.Fast32BitOnly, which turns a kernel's doubles, its parameter structs' too, into floats,
/// and a launch whose argument layout the host built with doubles failed on CUDA with CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES.)
/// </summary>
public static class MetropolisAccept
{
    /// <summary>The constants of one step.</summary>
    /// <param name="Gaussian">1: the likelihood terms are squared residuals (l = -r / TwoSigma2); 0: log-likelihoods.</param>
    /// <param name="TwoSigma2">2 sigma_y^2.</param>
    /// <param name="TwoEta2">2 eta^2.</param>
    /// <param name="TwoC3Squared">2 C3^2.</param>
    /// <param name="Seed">Seed of the uniforms.</param>
    /// <param name="Stream">Their stream.</param>
    /// <param name="Step">Their step counter.</param>
    /// <param name="FirstChain">The global index of chain 0.</param>
    public readonly record struct Constants(int Gaussian, float TwoSigma2, float TwoEta2, float TwoC3Squared, ulong Seed, uint Stream,
        ulong Step, long FirstChain);

    /// <summary>log alpha of one chain from its state's and its proposal's two floats and the two distances (the
    /// specification of the kernel's arithmetic).</summary>
    public static float LogAlpha(float term, float distance, float proposalTerm, float proposalDistance, float forward, float reverse,
        int gaussian, float twoSigma2, float twoEta2, float twoC3Squared)
    {
        float likelihood = gaussian != 0 ? (term - proposalTerm) / twoSigma2 : proposalTerm - term;
        return likelihood - (proposalDistance - distance) / twoEta2 + (forward - reverse) / twoC3Squared;
    }

    /// <summary>The decision for one chain (the specification): true to accept.</summary>
    public static bool Accepts(float logAlpha, float u) =>
        !float.IsNaN(logAlpha) && !float.IsInfinity(logAlpha) && (logAlpha >= 0 || MathF.Log(u) < logAlpha);

    internal static void Kernel(Index1D tid, ElementRange r, Constants c, ArrayView<float> term, ArrayView<float> distance,
        ArrayView<float> proposalTerm, ArrayView<float> proposalDistance, ArrayView<float> forward, ArrayView<float> reverse,
        ArrayView<float> flags, ArrayView<float> count)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            float logAlpha = LogAlpha(term[i], distance[i], proposalTerm[i], proposalDistance[i], forward[i], reverse[i],
                c.Gaussian, c.TwoSigma2, c.TwoEta2, c.TwoC3Squared);
            float u = Philox.Uniform(c.Seed, c.Stream, c.Step, c.FirstChain + i);
            if (Accepts(logAlpha, u))
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
        Shape.RequireSame(Op, distance, "distance", term, "term");
        Shape.RequireSame(Op, proposalTerm, "proposalTerm", term, "term");
        Shape.RequireSame(Op, proposalDistance, "proposalDistance", term, "term");
        Shape.RequireSame(Op, forward, "forward", term, "term");
        Shape.RequireSame(Op, reverse, "reverse", term, "term");
        Shape.RequireSame(Op, flags, "flags", term, "term");
        Shape.RequireSame(Op, count, "count", term, "term");
        var plan = term.Device.Plan(term.Length);
        if (plan.Total == 0) return;
        var k = term.Device.Kernel("metropolis-accept", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, Constants,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, c, term.View, distance.View, proposalTerm.View, proposalDistance.View, forward.View, reverse.View,
            flags.View, count.View);
    }

    private const string Op = "metropolis accept";
}

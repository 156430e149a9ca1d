using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Reductions;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Samplers.Operators;

namespace PosteriorGpu.Samplers.Posterior;

/// <summary>
/// DPnP's proximal consistency sampler (Xu and Chi 2024): draws x^ from q(x^) ∝ p(y | x^) N(x^; x, eta^2 I)
/// using only the likelihood. It starts from x + eta w (exact where the likelihood is flat) and runs
/// Langevin steps with the Gaussian term integrated exactly (<see cref="ProximalLangevinStep"/>); the
/// likelihood part of a step moves by at most C2 = min(eta^2, StepScale / L), L the Lipschitz constant of
/// the log-likelihood gradient, so the steps stay stable for stiff likelihoods.
/// <para>With <c>metropolis</c>, each step is a Metropolis-adjusted proposal (MALA; Roberts and Tweedie 1996): the
/// target's log density log p(y | x^) - ||x^ - x||^2 / (2 eta^2) is known up to a constant, so the proposal
/// N(m(x^), C3^2 I), m(x^) = x + C1 (x^ - x) + C2 grad log p(y | x^), is accepted with probability
/// min(1, q(x^') N(x^ | m(x^'), C3^2) / (q(x^) N(x^' | m(x^), C3^2))) per chain, which removes the unadjusted
/// step's bias. The log-likelihood is the Gaussian -||y - A(x)||^2 / (2 sigma_y^2) or the operator's own
/// (<see cref="ILogLikelihood"/>).</para>
/// </summary>
internal sealed class ProximalConsistencySampler(int steps, double stepScale, bool metropolis)
{
    /// <summary>The step coefficients (C1, C2, C3) at level eta for likelihood curvature L.</summary>
    public static (float C1, float C2, float C3) Coefficients(double eta, double lipschitz, double stepScale)
    {
        double e2 = eta * eta;
        double c2 = lipschitz > 0 ? Math.Min(e2, stepScale / lipschitz) : e2;
        double c1 = 1 - c2 / e2;
        return ((float)c1, (float)c2, (float)(eta * Math.Sqrt(1 - c1 * c1)));
    }

    private const ulong UniformStep = 1UL << 63;

    /// <summary>Draws per call: the start and one per step.</summary>
    public int DrawsPerCall => steps + 1;

    /// <summary>x^ ~ q given the anchor x; y is per chain; draws use steps drawOffset .. drawOffset + steps.
    /// Returns the proposals accepted (all of them without Metropolis).</summary>
    public long Sample(Tensor xHat, Tensor x, Tensor y, IForwardOperator op, float sigmaY, float eta, double lipschitz,
        ulong seed, long firstSample, ulong drawOffset, TensorPool pool, CancellationToken cancellationToken)
    {
        xHat.CopyFrom(x);
        AddNoise.Run(xHat, eta, Draw(seed, drawOffset, firstSample, x.ItemLength));
        var (c1, c2, c3) = Coefficients(eta, lipschitz, stepScale);
        using var grad = pool.Rent(x.Shape);
        if (!metropolis || c3 == 0)
        {
            for (int s = 0; s < steps; s++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                op.LogLikelihoodGradient(xHat, y, sigmaY, grad);
                ProximalLangevinStep.Run(xHat, x, grad, c1, c2, c3, Draw(seed, drawOffset + 1 + (ulong)s, firstSample, x.ItemLength));
            }
            return (long)steps * x.N;
        }
        return Metropolis(xHat, x, y, op, sigmaY, eta, (c1, c2, c3), grad, seed, firstSample, drawOffset, pool, cancellationToken);
    }

    private long Metropolis(Tensor xHat, Tensor anchor, Tensor y, IForwardOperator op, float sigmaY, float eta,
        (float C1, float C2, float C3) c, Tensor grad, ulong seed, long firstSample, ulong drawOffset, TensorPool pool, CancellationToken ct)
    {
        int n = xHat.N;
        using var proposal = pool.Rent(xHat.Shape);
        using var proposalGrad = pool.Rent(xHat.Shape);
        using var mean = pool.Rent(xHat.Shape);
        using var diff = pool.Rent(xHat.Shape);
        using var residual = pool.Rent([n, .. op.MeasurementShape]);
        using var norms = pool.Rent(n);
        using var accept = pool.Rent(n);
        var host = new float[n];
        var flags = new float[n];
        var logTarget = new double[n];
        var proposalLogTarget = new double[n];
        var forward = new double[n];
        var reverse = new double[n];
        double twoEta2 = 2.0 * eta * eta, twoC3 = 2.0 * c.C3 * c.C3;
        var zero = new RandomDraw(0, 0, 0);   // the mean of a proposal: the step with C3 = 0

        // log q(v) = log p(y | v) - ||v - x||^2 / (2 eta^2), per chain.
        void LogTarget(Tensor v, double[] result)
        {
            LogLikelihood(op, v, y, sigmaY, residual, norms, host, result);
            Axpby.Run(1f, v, 0f, diff);
            Axpby.Run(-1f, anchor, 1f, diff);
            BatchReduce.SquaredNorm(diff, norms);
            norms.CopyTo(host);
            for (int i = 0; i < n; i++) result[i] -= host[i] / twoEta2;
        }

        // ||a - b||^2 per chain.
        void Distance(Tensor a, Tensor b, double[] result)
        {
            Axpby.Run(1f, a, 0f, diff);
            Axpby.Run(-1f, b, 1f, diff);
            BatchReduce.SquaredNorm(diff, norms);
            norms.CopyTo(host);
            for (int i = 0; i < n; i++) result[i] = host[i];
        }

        op.LogLikelihoodGradient(xHat, y, sigmaY, grad);
        LogTarget(xHat, logTarget);
        long accepted = 0;
        for (int s = 0; s < steps; s++)
        {
            ct.ThrowIfCancellationRequested();
            var draw = Draw(seed, drawOffset + 1 + (ulong)s, firstSample, xHat.ItemLength);
            // 1. The proposal x' = m(x^) + C3 z, and the forward distance ||x' - m(x^)||^2.
            mean.CopyFrom(xHat);
            ProximalLangevinStep.Run(mean, anchor, grad, c.C1, c.C2, 0f, zero);
            proposal.CopyFrom(mean);
            AddNoise.Run(proposal, c.C3, draw);
            Distance(proposal, mean, forward);
            // 2. The target and the reverse distance ||x^ - m(x')||^2 at the proposal.
            op.LogLikelihoodGradient(proposal, y, sigmaY, proposalGrad);
            LogTarget(proposal, proposalLogTarget);
            mean.CopyFrom(proposal);
            ProximalLangevinStep.Run(mean, anchor, proposalGrad, c.C1, c.C2, 0f, zero);
            Distance(xHat, mean, reverse);
            // 3. Accept per chain with a uniform of (seed, step, global chain index): the step's counter with the top
            //    bit set keeps the uniforms apart from the proposal's normals.
            for (int i = 0; i < n; i++)
            {
                double logAlpha = proposalLogTarget[i] - logTarget[i] + (forward[i] - reverse[i]) / twoC3;
                double u = Philox.Uniform(seed, RandomStreams.ProximalConsistency, UniformStep | (drawOffset + 1 + (ulong)s), firstSample + i);
                bool ok = double.IsFinite(logAlpha) && (logAlpha >= 0 || Math.Log(u) < logAlpha);
                flags[i] = ok ? 1f : 0f;
                if (ok)
                {
                    logTarget[i] = proposalLogTarget[i];
                    accepted++;
                }
            }
            accept.CopyFrom(flags);
            SelectItems.Run(xHat, proposal, accept);
            SelectItems.Run(grad, proposalGrad, accept);
        }
        return accepted;
    }

    /// <summary>log p(y | v) per chain, up to a constant: the operator's own, or the Gaussian -||y - A(v)||^2 / (2 sigma^2).</summary>
    private static void LogLikelihood(IForwardOperator op, Tensor v, Tensor y, float sigmaY, Tensor residual, Tensor norms, float[] host, double[] result)
    {
        if (op is ILogLikelihood own)
        {
            own.LogLikelihood(v, y, sigmaY, norms);
            norms.CopyTo(host);
            for (int i = 0; i < result.Length; i++) result[i] = host[i];
            return;
        }
        op.Forward(v, residual);
        Axpby.Run(1f, y, -1f, residual);
        BatchReduce.SquaredNorm(residual, norms);
        norms.CopyTo(host);
        double twoS2 = 2.0 * sigmaY * sigmaY;
        for (int i = 0; i < result.Length; i++) result[i] = -host[i] / twoS2;
    }

    private static RandomDraw Draw(ulong seed, ulong step, long firstSample, int itemLength) =>
        new RandomDraw(seed, RandomStreams.ProximalConsistency, step).ForBatch(firstSample, itemLength);
}

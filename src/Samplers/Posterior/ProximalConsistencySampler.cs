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
    /// Returns the proposals accepted (all of them without Metropolis); reads the count back once.</summary>
    public long Sample(Tensor xHat, Tensor x, Tensor y, IForwardOperator op, float sigmaY, float eta, double lipschitz,
        ulong seed, long firstSample, ulong drawOffset, TensorPool pool, CancellationToken cancellationToken)
    {
        using var count = pool.Rent(x.N);
        count.Clear();
        if (!Sample(xHat, x, y, op, sigmaY, eta, lipschitz, seed, firstSample, drawOffset, pool, count, cancellationToken))
            return (long)steps * x.N;
        long accepted = 0;
        foreach (float c in count.ToHost()) accepted += (long)c;
        return accepted;
    }

    /// <summary>As the other overload, but without any host synchronisation: the accepts of each chain are added to
    /// <paramref name="acceptedCount"/> ([N], on the device; exact below 2^24 per chain). Returns true when the steps were
    /// Metropolis-adjusted, false when they were not (every step then counts as accepted and the count is untouched).</summary>
    public bool Sample(Tensor xHat, Tensor x, Tensor y, IForwardOperator op, float sigmaY, float eta, double lipschitz,
        ulong seed, long firstSample, ulong drawOffset, TensorPool pool, Tensor acceptedCount, CancellationToken cancellationToken)
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
            return false;
        }
        Metropolis(xHat, x, y, op, sigmaY, eta, (c1, c2, c3), grad, seed, firstSample, drawOffset, pool, acceptedCount, cancellationToken);
        return true;
    }

    /// <summary>The Metropolis-adjusted steps, all on the device: each chain keeps the two floats its log target is made of
    /// (<see cref="MetropolisAccept"/>), so a step makes no host synchronisation (unless the operator's own
    /// log-likelihood makes one).</summary>
    private void Metropolis(Tensor xHat, Tensor anchor, Tensor y, IForwardOperator op, float sigmaY, float eta,
        (float C1, float C2, float C3) c, Tensor grad, ulong seed, long firstSample, ulong drawOffset, TensorPool pool, Tensor acceptedCount,
        CancellationToken ct)
    {
        int n = xHat.N;
        using var proposal = pool.Rent(xHat.Shape);
        using var proposalGrad = pool.Rent(xHat.Shape);
        using var mean = pool.Rent(xHat.Shape);
        using var diff = pool.Rent(xHat.Shape);
        using var residual = pool.Rent([n, .. op.MeasurementShape]);
        using var term = pool.Rent(n);
        using var distance = pool.Rent(n);
        using var proposalTerm = pool.Rent(n);
        using var proposalDistance = pool.Rent(n);
        using var forward = pool.Rent(n);
        using var reverse = pool.Rent(n);
        using var accept = pool.Rent(n);
        var own = op as ILogLikelihood;
        var zero = new RandomDraw(0, 0, 0);   // the mean of a proposal: the step with C3 = 0

        // log q(v) = log p(y | v) - ||v - x||^2 / (2 eta^2), per chain, kept as its two floats: the log-likelihood (or the
        // squared residual of the Gaussian one) and the squared distance to the anchor.
        void LogTarget(Tensor v, Tensor likelihoodTerm, Tensor anchorDistance)
        {
            if (own is not null) own.LogLikelihood(v, y, sigmaY, likelihoodTerm);
            else
            {
                op.Forward(v, residual);
                Axpby.Run(1f, y, -1f, residual);
                BatchReduce.SquaredNorm(residual, likelihoodTerm);
            }
            Distance(v, anchor, anchorDistance);
        }

        // ||a - b||^2 per chain.
        void Distance(Tensor a, Tensor b, Tensor result)
        {
            Axpby.Run(1f, a, 0f, diff);
            Axpby.Run(-1f, b, 1f, diff);
            BatchReduce.SquaredNorm(diff, result);
        }

        op.LogLikelihoodGradient(xHat, y, sigmaY, grad);
        LogTarget(xHat, term, distance);
        var constants = new MetropolisAccept.Constants(own is null ? 1 : 0, (float)(2.0 * sigmaY * sigmaY), (float)(2.0 * eta * eta), (float)(2.0 * c.C3 * c.C3),
            seed, RandomStreams.ProximalConsistency, 0, firstSample);
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
            LogTarget(proposal, proposalTerm, proposalDistance);
            mean.CopyFrom(proposal);
            ProximalLangevinStep.Run(mean, anchor, proposalGrad, c.C1, c.C2, 0f, zero);
            Distance(xHat, mean, reverse);
            // 3. Accept per chain with a uniform of (seed, step, global chain index): the step's counter with the top
            //    bit set keeps the uniforms apart from the proposal's normals.
            MetropolisAccept.Run(constants with { Step = UniformStep | (drawOffset + 1 + (ulong)s) }, term, distance, proposalTerm,
                proposalDistance, forward, reverse, accept, acceptedCount);
            SelectItems.Run(xHat, proposal, accept);
            SelectItems.Run(grad, proposalGrad, accept);
        }
    }

    private static RandomDraw Draw(ulong seed, ulong step, long firstSample, int itemLength) =>
        new RandomDraw(seed, RandomStreams.ProximalConsistency, step).ForBatch(firstSample, itemLength);
}

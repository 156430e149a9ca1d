namespace PosteriorGpu.Models.Priors;

/// <summary>
/// A Gaussian mixture sum_k w_k N(mu_k, Sigma_k) on the host, in double precision: log density,
/// responsibilities, score, exact seeded sampling and its noised marginal at a diffusion level.
/// Weights are kept as normalised log weights so that posterior weights far below double's range
/// of ratios stay exact. Immutable.
/// </summary>
public sealed class GaussianMixtureDistribution
{
    private readonly GaussianDistribution[] components;
    private readonly double[] logWeights;

    private GaussianMixtureDistribution(double[] normalisedLogWeights, GaussianDistribution[] components)
    {
        logWeights = normalisedLogWeights;
        this.components = components;
    }

    /// <summary>A mixture with the given non-negative weights (normalised here; their sum must be positive).</summary>
    /// <exception cref="ArgumentException">Counts disagree, no component, a weight negative or not finite,
    /// or components of different dimensions.</exception>
    public GaussianMixtureDistribution(IReadOnlyList<double> weights, IReadOnlyList<GaussianDistribution> components)
        : this(LogsOf(weights), CheckedComponents(weights.Count, components))
    {
    }

    /// <summary>A mixture from unnormalised log weights (normalised here with a stable log-sum-exp); -inf means weight 0.</summary>
    public static GaussianMixtureDistribution FromLogWeights(IReadOnlyList<double> logWeights, IReadOnlyList<GaussianDistribution> components)
    {
        ArgumentNullException.ThrowIfNull(logWeights);
        var comps = CheckedComponents(logWeights.Count, components);
        var lw = logWeights.ToArray();
        for (int k = 0; k < lw.Length; k++)
        {
            if (double.IsNaN(lw[k]) || double.IsPositiveInfinity(lw[k]))
                throw new ArgumentException($"log weight[{k}] = {lw[k]} is not a valid log weight", nameof(logWeights));
        }
        double lse = LogSumExp(lw);
        if (double.IsNegativeInfinity(lse)) throw new ArgumentException("every weight is zero", nameof(logWeights));
        for (int k = 0; k < lw.Length; k++) lw[k] -= lse;
        return new GaussianMixtureDistribution(lw, comps);
    }

    /// <summary>K, the number of components.</summary>
    public int Count => components.Length;

    /// <summary>d, the dimension.</summary>
    public int Dimension => components[0].Dimension;

    /// <summary>The components.</summary>
    public IReadOnlyList<GaussianDistribution> Components => components;

    /// <summary>The normalised weights w_k.</summary>
    public double[] Weights => logWeights.Select(Math.Exp).ToArray();

    /// <summary>The normalised log weights log w_k.</summary>
    public IReadOnlyList<double> LogWeights => logWeights;

    /// <summary>The mixture's mean sum_k w_k mu_k.</summary>
    public double[] Mean()
    {
        var m = new double[Dimension];
        for (int k = 0; k < Count; k++)
        {
            double w = Math.Exp(logWeights[k]);
            for (int i = 0; i < m.Length; i++) m[i] += w * components[k].Mean[i];
        }
        return m;
    }

    /// <summary>The mixture's covariance sum_k w_k (Sigma_k + mu_k mu_k^T) - mu mu^T.</summary>
    public MathNet.Numerics.LinearAlgebra.Matrix<double> Covariance()
    {
        var mean = MathNet.Numerics.LinearAlgebra.Vector<double>.Build.DenseOfArray(Mean());
        var c = MathNet.Numerics.LinearAlgebra.Matrix<double>.Build.Dense(Dimension, Dimension);
        for (int k = 0; k < Count; k++)
        {
            double w = Math.Exp(logWeights[k]);
            var dm = components[k].Mean - mean;
            c += (components[k].Covariance + dm.OuterProduct(dm)) * w;
        }
        return c;
    }

    /// <summary>The marginal at alpha_bar = a: the same weights over N(sqrt(a) mu_k, a Sigma_k + (1 - a) I).</summary>
    public GaussianMixtureDistribution AtNoiseLevel(double a) =>
        new(logWeights, components.Select(c => c.AtNoiseLevel(a)).ToArray());

    /// <summary>log sum_k w_k N(x; mu_k, Sigma_k), by a stable log-sum-exp.</summary>
    public double LogDensity(ReadOnlySpan<double> x) => LogSumExp(ComponentLogTerms(x));

    /// <summary>The posterior component probabilities r_k(x) = softmax_k(log w_k + log N_k(x)).</summary>
    public double[] Responsibilities(ReadOnlySpan<double> x)
    {
        var t = ComponentLogTerms(x);
        double lse = LogSumExp(t);
        for (int k = 0; k < t.Length; k++) t[k] = Math.Exp(t[k] - lse);
        return t;
    }

    /// <summary>grad log p(x) = sum_k r_k(x) (-Sigma_k^{-1} (x - mu_k)).</summary>
    public double[] Score(ReadOnlySpan<double> x)
    {
        var r = Responsibilities(x);
        var s = new double[Dimension];
        for (int k = 0; k < Count; k++)
        {
            if (r[k] == 0) continue;
            var sk = components[k].Score(x);
            for (int i = 0; i < s.Length; i++) s[i] += r[k] * sk[i];
        }
        return s;
    }

    /// <summary><paramref name="count"/> exact samples (a component drawn by weight, then a sample of it, both
    /// from one System.Random seeded with <paramref name="seed"/>), row-major [count, d].</summary>
    public float[] Sample(int count, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var rng = new Random(seed);
        var weights = Weights;
        var result = new float[count * Dimension];
        var x = new double[Dimension];
        // The last component with positive weight takes whatever rounding leaves above the cumulative sum.
        int lastPositive = Array.FindLastIndex(weights, w => w > 0);
        for (int n = 0; n < count; n++)
        {
            double u = rng.NextDouble(), acc = 0;
            int k = 0;
            for (; k < lastPositive; k++)
            {
                acc += weights[k];
                if (u < acc) break;
            }
            components[k].SampleInto(rng, x);
            for (int i = 0; i < x.Length; i++) result[n * Dimension + i] = (float)x[i];
        }
        return result;
    }

    private double[] ComponentLogTerms(ReadOnlySpan<double> x)
    {
        var t = new double[Count];
        for (int k = 0; k < Count; k++)
            t[k] = double.IsNegativeInfinity(logWeights[k]) ? double.NegativeInfinity : logWeights[k] + components[k].LogDensity(x);
        return t;
    }

    /// <summary>log sum exp(v) with the maximum factored out; -inf when every entry is -inf.</summary>
    internal static double LogSumExp(ReadOnlySpan<double> v)
    {
        double max = double.NegativeInfinity;
        foreach (double e in v) max = Math.Max(max, e);
        if (double.IsNegativeInfinity(max)) return max;
        double s = 0;
        foreach (double e in v) s += Math.Exp(e - max);
        return max + Math.Log(s);
    }

    private static double[] LogsOf(IReadOnlyList<double> weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        var lw = new double[weights.Count];
        double sum = 0;
        for (int k = 0; k < lw.Length; k++)
        {
            if (!(weights[k] >= 0 && double.IsFinite(weights[k])))
                throw new ArgumentException($"weight[{k}] = {weights[k]} must be non-negative and finite", nameof(weights));
            sum += weights[k];
        }
        if (!(sum > 0)) throw new ArgumentException("the weights sum to zero", nameof(weights));
        for (int k = 0; k < lw.Length; k++) lw[k] = Math.Log(weights[k] / sum);
        return lw;
    }

    private static GaussianDistribution[] CheckedComponents(int weightCount, IReadOnlyList<GaussianDistribution> components)
    {
        ArgumentNullException.ThrowIfNull(components);
        if (components.Count == 0) throw new ArgumentException("a mixture needs at least one component", nameof(components));
        if (components.Count != weightCount)
            throw new ArgumentException($"{weightCount} weights for {components.Count} components", nameof(components));
        int d = components[0].Dimension;
        for (int k = 1; k < components.Count; k++)
        {
            if (components[k].Dimension != d)
                throw new ArgumentException($"component {k} has dimension {components[k].Dimension} but component 0 has {d}", nameof(components));
        }
        return components.ToArray();
    }
}

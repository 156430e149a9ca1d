namespace PosteriorGpu.Samplers.Posterior;

/// <summary>
/// The annealing schedule of an annealed sampler: the decreasing levels eta_1 &gt; ... &gt; eta_K it walks and the steps it
/// takes at each. Xun, Gupta and Price's analysis needs an admissible ladder, one where no level is much sharper than the one
/// before it: (eta_i / eta_{i+1})^2 - 1 &lt;= 1, so that the chain that has equilibrated at eta_i starts close to the
/// target at eta_{i+1}. <see cref="Admissible"/> builds the fewest-level admissible ladder; <see cref="FirstLevel"/> is the
/// analysis's choice of eta_1 from ||A||, the dimension and a target accuracy.
/// </summary>
public sealed record AnnealingSchedule
{
    /// <summary>The largest admissible (eta_i / eta_{i+1})^2 - 1.</summary>
    public const double MaxAdmissibleIncrement = 1.0;

    private AnnealingSchedule(double[] levels, int stepsPerLevel)
    {
        Levels = levels;
        StepsPerLevel = stepsPerLevel;
    }

    /// <summary>eta_1 ... eta_K, decreasing.</summary>
    public IReadOnlyList<double> Levels { get; }

    /// <summary>Steps (Langevin steps, or sweeps) at each level.</summary>
    public int StepsPerLevel { get; }

    /// <summary>K, the number of levels.</summary>
    public int Count => Levels.Count;

    /// <summary>Steps over all levels.</summary>
    public int TotalSteps => Count * StepsPerLevel;

    /// <summary>max_i (eta_i / eta_{i+1})^2 - 1 (0 for a single level): how much sharper a level is than the one before it.</summary>
    public double LargestIncrement
    {
        get
        {
            double largest = 0;
            for (int i = 0; i + 1 < Levels.Count; i++) largest = Math.Max(largest, Levels[i] * Levels[i] / (Levels[i + 1] * Levels[i + 1]) - 1);
            return largest;
        }
    }

    /// <summary>Whether every increment is at most <see cref="MaxAdmissibleIncrement"/> (1e-9 relative slack for rounding).</summary>
    public bool IsAdmissible => LargestIncrement <= MaxAdmissibleIncrement * (1 + 1e-9);

    /// <summary>Null for an admissible ladder, else a sentence naming the increment and the level count that would be admissible.</summary>
    public string? AdmissibilityWarning => IsAdmissible ? null :
        $"the annealing ladder is not admissible: (eta_i / eta_(i+1))^2 - 1 reaches {LargestIncrement:G3} (at most {MaxAdmissibleIncrement} keeps each " +
        $"level's start close to its target); eta {Levels[0]:G3} -> {Levels[^1]:G3} needs {AdmissibleCount(Levels[0], Levels[^1])} levels, this ladder has {Count}";

    /// <summary>A geometric ladder of <paramref name="count"/> levels from <paramref name="first"/> to <paramref name="last"/>
    /// (<see cref="Ladders.Geometric"/>) with <paramref name="stepsPerLevel"/> steps at each.</summary>
    /// <exception cref="ArgumentOutOfRangeException">count or stepsPerLevel is below 1, a level is not positive and finite, or
    /// first is below last.</exception>
    public static AnnealingSchedule Geometric(double first, double last, int count, int stepsPerLevel)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(stepsPerLevel, 1);
        if (first < last) throw new ArgumentOutOfRangeException(nameof(first), first, $"the first level must be at least the last ({last})");
        return new AnnealingSchedule(Ladders.Geometric(first, last, count), stepsPerLevel);
    }

    /// <summary>The fewest-level admissible geometric ladder from <paramref name="first"/> to <paramref name="last"/>
    /// (<see cref="AdmissibleCount"/> levels).</summary>
    public static AnnealingSchedule Admissible(double first, double last, int stepsPerLevel) =>
        Geometric(first, last, AdmissibleCount(first, last), stepsPerLevel);

    /// <summary>The fewest levels of a geometric ladder from <paramref name="first"/> down to <paramref name="last"/> whose
    /// increments (ratio squared minus one) are at most <see cref="MaxAdmissibleIncrement"/>: 1 + ceil(log2(first^2 / last^2)).</summary>
    /// <exception cref="ArgumentOutOfRangeException">A level is not positive and finite, or first is below last.</exception>
    public static int AdmissibleCount(double first, double last)
    {
        if (!(last > 0) || !double.IsFinite(first) || first < last)
            throw new ArgumentOutOfRangeException(nameof(first), $"levels must be positive and finite with first >= last, got {first} and {last}");
        double octaves = Math.Log(first * first / (last * last), 1 + MaxAdmissibleIncrement);
        // Rounding: a ratio that is admissible up to 1e-9 needs no extra level.
        return 1 + (int)Math.Ceiling(octaves - 1e-9);
    }

    /// <summary>
    /// eta_1 large enough that a draw of the prior is a draw of p(x | y_1) up to total variation <paramref name="accuracy"/>
    /// on average over y_1, so that annealing may start from the prior (the role of eta_1 in Xun, Gupta and Price's analysis):
    /// eta_1 = ||A|| sqrt(r v) / (2 epsilon), with r = min(d, m) the rank bound of A and v a bound on the prior's variance in
    /// every direction (1 for data scaled to [-1, 1]).
    /// Why: E_y TV(p(x | y_1), p(x)) &lt;= sqrt(I(x; y_1) / 2) (Pinsker, then Jensen), and for y_1 = A x + eta_1 z with
    /// Cov(x) &lt;= v I the mutual information is largest for a Gaussian x: I &lt;= (1/2) sum_i log(1 + s_i^2 v / eta_1^2)
    /// &lt;= r ||A||^2 v / (2 eta_1^2). Setting that to 2 epsilon^2 gives the formula.
    /// </summary>
    /// <param name="operatorNorm">||A||, the operator's largest singular value.</param>
    /// <param name="dimension">d, the signal's dimension.</param>
    /// <param name="measurements">m, the measurement's dimension.</param>
    /// <param name="accuracy">epsilon in (0, 1): the total variation allowed at the start.</param>
    /// <param name="priorVariance">v, a bound on the prior's variance along any direction.</param>
    /// <exception cref="ArgumentOutOfRangeException">An argument is out of range (names it).</exception>
    public static double FirstLevel(double operatorNorm, int dimension, int measurements, double accuracy, double priorVariance = 1.0)
    {
        if (!(operatorNorm > 0) || !double.IsFinite(operatorNorm)) throw new ArgumentOutOfRangeException(nameof(operatorNorm), operatorNorm, "must be positive and finite");
        ArgumentOutOfRangeException.ThrowIfLessThan(dimension, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(measurements, 1);
        if (!(accuracy > 0 && accuracy < 1)) throw new ArgumentOutOfRangeException(nameof(accuracy), accuracy, "must lie in (0, 1)");
        if (!(priorVariance > 0) || !double.IsFinite(priorVariance)) throw new ArgumentOutOfRangeException(nameof(priorVariance), priorVariance, "must be positive and finite");
        int rank = Math.Min(dimension, measurements);
        return operatorNorm * Math.Sqrt(rank * priorVariance) / (2 * accuracy);
    }

    /// <summary>What a run on this ladder did: the levels, the step size h_k used at each and the Langevin time
    /// StepsPerLevel * h_k spent there (empty step sizes for samplers without a Langevin step size).</summary>
    public AnnealingReport Report(IReadOnlyList<double> stepSizes) => new(Levels, StepsPerLevel, stepSizes,
        stepSizes.Select(h => h * StepsPerLevel).ToArray(), LargestIncrement, AdmissibilityWarning);
}

/// <summary>What an annealed run reports about its schedule.</summary>
/// <param name="Levels">eta_1 ... eta_K.</param>
/// <param name="StepsPerLevel">Steps at each level.</param>
/// <param name="StepSizes">h_k at each level (empty where the sampler has none).</param>
/// <param name="LangevinTimes">StepsPerLevel * h_k: the Langevin time spent at each level.</param>
/// <param name="LargestIncrement">max (eta_i / eta_(i+1))^2 - 1.</param>
/// <param name="Warning">The admissibility warning, or null.</param>
public sealed record AnnealingReport(IReadOnlyList<double> Levels, int StepsPerLevel, IReadOnlyList<double> StepSizes,
    IReadOnlyList<double> LangevinTimes, double LargestIncrement, string? Warning)
{
    /// <summary>The Langevin time over all levels.</summary>
    public double TotalLangevinTime => LangevinTimes.Sum();
}

namespace PosteriorGpu.Models.Schedules;

/// <summary>diffusers' inference-timestep spacings ("leading", "trailing", "linspace"), as NumPy computes them.</summary>
/// <remarks>
/// Names follow Table 2 of Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps are
/// Flawed" (arXiv:2305.08891), which diffusers cites in set_timesteps. All results are descending.
/// </remarks>
public static class TimestepSpacing
{
    /// <summary>The spacing names diffusers accepts for timestep_spacing.</summary>
    public static readonly IReadOnlyList<string> Supported = ["leading", "trailing", "linspace"];

    /// <summary>Throws an ArgumentException naming <paramref name="spacing"/> unless it is supported.</summary>
    public static void Require(string spacing, string paramName = "spacing")
    {
        if (!Supported.Contains(spacing))
            throw new ArgumentException(
                $"timestep_spacing '{spacing}' is not supported; expected one of: {string.Join(", ", Supported)}", paramName);
    }

    /// <summary>DDIMScheduler/DDPMScheduler.set_timesteps(n): n timesteps in [0, T-1], descending.</summary>
    /// <remarks>
    /// leading:  k * (T // n) for k = n-1..0, plus steps_offset (diffusers adds the offset only here).
    /// trailing: round(arange(T, 0, -T/n)) - 1, NumPy's float arange and round-half-to-even.
    /// linspace: round(linspace(0, T-1, n)), reversed.
    /// One deliberate difference: for some (T, n) NumPy's float arange yields n+1 elements (its length
    /// is ceil(T / (T/n)), which rounds up to n+1 when T/n is inexact, e.g. T=1000, n=61), and diffusers
    /// then returns an extra trailing timestep -1 that would index alphas_cumprod[-1] (the last entry).
    /// We drop that spurious element, so the result always has n entries, equal to diffusers' first n.
    /// </remarks>
    public static int[] Ddim(int numTrainTimesteps, int numInferenceSteps, string spacing = "leading", int stepsOffset = 0)
    {
        RequireCounts(numTrainTimesteps, numInferenceSteps);
        Require(spacing);
        int T = numTrainTimesteps, n = numInferenceSteps;
        int[] ts = spacing switch
        {
            "leading" => Leading(T / n, n, stepsOffset),
            "trailing" => Trailing(T, n),
            _ => LinspaceRounded(T - 1, n, dropLast: false),
        };
        return CheckRange(ts, T, spacing, stepsOffset);
    }

    /// <summary>DPMSolverMultistepScheduler.set_timesteps(n) without Karras/Lu/exponential/beta/flow sigmas.</summary>
    /// <remarks>
    /// Differs from <see cref="Ddim"/>: leading uses step (last // (n+1)) over n+1 points and drops the
    /// smallest; linspace takes n+1 points over [0, last-1] and drops the smallest; trailing is the
    /// same as DDIM's (its step is T/n, started at last). <paramref name="lastTimestep"/> is diffusers'
    /// num_train_timesteps - clipped_idx (equal to T for the default lambda_min_clipped = -inf).
    /// The spurious -1 of NumPy's trailing arange is dropped as in <see cref="Ddim"/>.
    /// </remarks>
    public static int[] DpmSolver(int numTrainTimesteps, int numInferenceSteps, string spacing = "linspace", int stepsOffset = 0, int? lastTimestep = null)
    {
        RequireCounts(numTrainTimesteps, numInferenceSteps);
        Require(spacing);
        int T = numTrainTimesteps, n = numInferenceSteps, last = lastTimestep ?? T;
        if (last < 1 || last > T)
            throw new ArgumentOutOfRangeException(nameof(lastTimestep), last, $"last timestep must be in [1, {T}]");
        int[] ts = spacing switch
        {
            "leading" => Leading(last / (n + 1), n + 1, stepsOffset)[..n],
            "trailing" => TrailingFrom(last, (double)T / n, n),
            _ => LinspaceRounded(last - 1, n + 1, dropLast: true),
        };
        return CheckRange(ts, T, spacing, stepsOffset);
    }

    private static void RequireCounts(int T, int n)
    {
        if (T < 1) throw new ArgumentOutOfRangeException(nameof(T), T, "num_train_timesteps must be at least 1");
        if (n < 1) throw new ArgumentOutOfRangeException("numInferenceSteps", n, "num_inference_steps must be at least 1");
        if (n > T)
            throw new ArgumentException(
                $"num_inference_steps {n} cannot be larger than num_train_timesteps {T} (as in diffusers' set_timesteps)", "numInferenceSteps");
    }

    // (arange(0, count) * ratio)[::-1] + offset; integer arithmetic, so NumPy's .round() is a no-op.
    private static int[] Leading(int ratio, int count, int offset)
    {
        var ts = new int[count];
        for (int k = 0; k < count; k++) ts[k] = (count - 1 - k) * ratio + offset;
        return ts;
    }

    private static int[] Trailing(int T, int n) => TrailingFrom(T, (double)T / n, n);

    // np.round(np.arange(start, 0, -step)) - 1, emulating NumPy's float arange: length
    // ceil((0 - start) / -step); element 0 is start, element 1 is start + (-step), and the rest are
    // start + i * delta with delta = element1 - element0 (NumPy's DOUBLE_fill).
    private static int[] TrailingFrom(int start, double step, int n)
    {
        double len = Math.Ceiling((0.0 - start) / -step);
        int length = (int)len;
        double first = start, second = start + -step, delta = second - first;
        var list = new List<int>(length);
        for (int i = 0; i < length; i++)
        {
            double v = i == 0 ? first : i == 1 ? second : first + i * delta;
            list.Add((int)Math.Round(v, MidpointRounding.ToEven) - 1);
        }
        // NumPy's length can exceed n by one; that extra element is round(~1e-13) - 1 = -1. (With a
        // clipped last timestep below T, diffusers' own last element can also round to -1.) Drop them.
        while (list.Count > 0 && list[^1] < 0) list.RemoveAt(list.Count - 1);
        if (list.Count > n) list.RemoveRange(n, list.Count - n);
        return list.ToArray();
    }

    // np.linspace(0, stop, num).round()[::-1] (optionally [:-1]): y = i * (stop / (num-1)) + 0, y[-1] = stop.
    private static int[] LinspaceRounded(int stop, int num, bool dropLast)
    {
        var y = new double[num];
        if (num == 1) y[0] = 0.0;
        else
        {
            double step = (double)stop / (num - 1);
            for (int i = 0; i < num; i++) y[i] = i * step + 0.0; // step is 0 only when stop is 0: all zeros either way
            y[num - 1] = stop;
        }
        int count = dropLast ? num - 1 : num;
        var ts = new int[count];
        for (int k = 0; k < count; k++) ts[k] = (int)Math.Round(y[num - 1 - k], MidpointRounding.ToEven);
        return ts;
    }

    private static int[] CheckRange(int[] ts, int T, string spacing, int offset)
    {
        foreach (int t in ts)
        {
            if (t < 0 || t >= T)
                throw new ArgumentException(
                    $"timestep {t} from spacing '{spacing}' with steps_offset {offset} is outside [0, {T - 1}]", nameof(offset));
        }
        return ts;
    }
}

namespace PosteriorGpu.Cli;

/// <summary>
/// Which slice of a batch run this process does: shard <see cref="Index"/> of <see cref="Count"/>, from --shard i/n or
/// from the index variables of the job-array scheduler that started it (Slurm array jobs, Kubernetes Indexed Jobs), so
/// the same command line serves every task of the array. The work is cut into units (batches of items); shard i takes
/// the contiguous units [floor(i U / n), floor((i + 1) U / n)), so the shards cover every unit exactly once and a shard's
/// slice depends only on (i, n, U).
/// </summary>
internal readonly record struct ShardSpec(int Index, int Count)
{
    /// <summary>The variable that gives the shard count where the scheduler does not (Kubernetes Indexed Jobs).</summary>
    public const string CountVariable = "POSTERIORGPU_SHARD_COUNT";

    /// <summary>The whole run in one shard.</summary>
    public static readonly ShardSpec Single = new(0, 1);

    /// <summary>Parses "i/n" with 0 &lt;= i &lt; n.</summary>
    /// <exception cref="UsageException">Not of that form.</exception>
    public static ShardSpec Parse(string text, string source = "--shard")
    {
        var parts = text.Split('/');
        if (parts.Length != 2 || !int.TryParse(parts[0], out int i) || !int.TryParse(parts[1], out int n))
            throw new UsageException($"{source} must be i/n (shard i of n, 0 <= i < n), e.g. 0/4, but got '{text}'");
        return Create(i, n, source);
    }

    private static ShardSpec Create(int i, int n, string source)
    {
        if (n < 1) throw new UsageException($"{source}: the shard count must be at least 1 but is {n}");
        if (i < 0 || i >= n) throw new UsageException($"{source}: the shard index must lie in [0, {n}) but is {i}");
        return new ShardSpec(i, n);
    }

    /// <summary>
    /// The shard of this process: <paramref name="flag"/> (--shard i/n) when given; else Slurm's
    /// SLURM_ARRAY_TASK_ID with SLURM_ARRAY_TASK_COUNT (index counted from SLURM_ARRAY_TASK_MIN in steps of
    /// SLURM_ARRAY_TASK_STEP, so --array=1-8 works); else Kubernetes' JOB_COMPLETION_INDEX with the count from
    /// <paramref name="countFlag"/> or <see cref="CountVariable"/> (an Indexed Job does not export its completions);
    /// else <see cref="Single"/>. <paramref name="environment"/> reads a variable (tests pass their own).
    /// </summary>
    /// <exception cref="UsageException">A variable is not an integer, an index is out of range, or a Kubernetes
    /// index comes without a count.</exception>
    public static ShardSpec Resolve(string? flag, int? countFlag, Func<string, string?> environment)
    {
        if (flag is not null) return Parse(flag);
        int? Int(string name)
        {
            string? v = environment(name);
            if (string.IsNullOrWhiteSpace(v)) return null;
            return int.TryParse(v.Trim(), out int x) ? x : throw new UsageException($"the environment variable {name} must be an integer but is '{v}'");
        }
        if (Int("SLURM_ARRAY_TASK_ID") is int id)
        {
            int count = countFlag ?? Int("SLURM_ARRAY_TASK_COUNT")
                ?? throw new UsageException("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not; give --shard-count N");
            int min = Int("SLURM_ARRAY_TASK_MIN") ?? 0, step = Int("SLURM_ARRAY_TASK_STEP") ?? 1;
            if (step < 1 || (id - min) % step != 0)
                throw new UsageException($"SLURM_ARRAY_TASK_ID {id} is not SLURM_ARRAY_TASK_MIN {min} plus a multiple of SLURM_ARRAY_TASK_STEP {step}");
            return Create((id - min) / step, count, $"SLURM_ARRAY_TASK_ID {id} (min {min}, step {step}, count {count})");
        }
        if (Int("JOB_COMPLETION_INDEX") is int index)
        {
            int count = countFlag ?? Int(CountVariable)
                ?? throw new UsageException($"JOB_COMPLETION_INDEX is set but the shard count is not; give --shard-count N or set {CountVariable} to the Job's completions");
            return Create(index, count, $"JOB_COMPLETION_INDEX {index} (count {count})");
        }
        if (countFlag is not null) throw new UsageException("--shard-count needs a shard index: --shard i/n, SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX");
        return Single;
    }

    /// <summary>This shard's units of <paramref name="units"/>: [Start, End).</summary>
    public (int Start, int End) Slice(int units) =>
        ((int)((long)Index * units / Count), (int)((long)(Index + 1) * units / Count));

    /// <inheritdoc/>
    public override string ToString() => $"{Index}/{Count}";
}

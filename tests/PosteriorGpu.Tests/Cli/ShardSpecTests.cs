using NUnit.Framework;
using PosteriorGpu.Cli;

namespace PosteriorGpu.Tests.Cli;

/// <summary>Which slice a shard takes: --shard i/n, the job arrays' index variables, and slices that cover every unit once.</summary>
public class ShardSpecTests
{
    private static Func<string, string?> Env(params (string Name, string Value)[] vars) =>
        name => vars.FirstOrDefault(v => v.Name == name).Value;

    [Test]
    public void Slices_CoverEveryUnitExactlyOnce_InOrder_AndDependOnlyOnIndexCountAndUnits()
    {
        foreach (int units in new[] { 0, 1, 2, 5, 7, 64, 1001 })
            foreach (int n in new[] { 1, 2, 3, 4, 7, 16, 100 })
            {
                var covered = new List<int>();
                for (int i = 0; i < n; i++)
                {
                    var (start, end) = new ShardSpec(i, n).Slice(units);
                    Assert.That(end, Is.GreaterThanOrEqualTo(start));
                    // Balanced: slices differ by at most one unit.
                    Assert.That(end - start, Is.InRange(units / n, (units + n - 1) / n), $"shard {i}/{n} of {units}");
                    covered.AddRange(Enumerable.Range(start, end - start));
                    Assert.That(new ShardSpec(i, n).Slice(units), Is.EqualTo((start, end)), "deterministic");
                }
                Assert.That(covered, Is.EqualTo(Enumerable.Range(0, units)), $"{units} units over {n} shards");
            }
    }

    [TestCase("0/1", 0, 1)]
    [TestCase("3/4", 3, 4)]
    [TestCase("0/16", 0, 16)]
    public void Parse_ReadsIndexOverCount(string text, int index, int count) =>
        Assert.That(ShardSpec.Parse(text), Is.EqualTo(new ShardSpec(index, count)));

    [TestCase("4/4", "must lie in [0, 4)")]
    [TestCase("-1/4", "must lie in [0, 4)")]
    [TestCase("0/0", "at least 1")]
    [TestCase("1", "must be i/n")]
    [TestCase("a/b", "must be i/n")]
    public void Parse_RefusesBadShards(string text, string message) =>
        Assert.That(Assert.Throws<UsageException>(() => ShardSpec.Parse(text))!.Message, Does.Contain(message));

    [Test]
    public void Resolve_TheFlagWinsOverTheEnvironment() =>
        Assert.That(ShardSpec.Resolve("1/2", null, Env(("SLURM_ARRAY_TASK_ID", "5"), ("SLURM_ARRAY_TASK_COUNT", "8"))), Is.EqualTo(new ShardSpec(1, 2)));

    [Test]
    public void Resolve_Slurm_CountsFromTheArraysMinimumInItsSteps()
    {
        // sbatch --array=0-7: ids 0..7, count 8.
        Assert.That(ShardSpec.Resolve(null, null, Env(("SLURM_ARRAY_TASK_ID", "5"), ("SLURM_ARRAY_TASK_COUNT", "8"), ("SLURM_ARRAY_TASK_MIN", "0"))),
            Is.EqualTo(new ShardSpec(5, 8)));
        // --array=1-4: ids 1..4 are shards 0..3.
        Assert.That(ShardSpec.Resolve(null, null, Env(("SLURM_ARRAY_TASK_ID", "1"), ("SLURM_ARRAY_TASK_COUNT", "4"), ("SLURM_ARRAY_TASK_MIN", "1"))),
            Is.EqualTo(new ShardSpec(0, 4)));
        // --array=10-40:10: ids 10, 20, 30, 40.
        Assert.That(ShardSpec.Resolve(null, null, Env(("SLURM_ARRAY_TASK_ID", "30"), ("SLURM_ARRAY_TASK_COUNT", "4"), ("SLURM_ARRAY_TASK_MIN", "10"),
            ("SLURM_ARRAY_TASK_STEP", "10"))), Is.EqualTo(new ShardSpec(2, 4)));
        Assert.That(Assert.Throws<UsageException>(() => ShardSpec.Resolve(null, null, Env(("SLURM_ARRAY_TASK_ID", "3"))))!.Message,
            Does.Contain("SLURM_ARRAY_TASK_COUNT"));
        Assert.That(Assert.Throws<UsageException>(() => ShardSpec.Resolve(null, null, Env(("SLURM_ARRAY_TASK_ID", "x"), ("SLURM_ARRAY_TASK_COUNT", "4"))))!.Message,
            Does.Contain("SLURM_ARRAY_TASK_ID must be an integer"));
        Assert.That(Assert.Throws<UsageException>(() => ShardSpec.Resolve(null, null, Env(("SLURM_ARRAY_TASK_ID", "9"), ("SLURM_ARRAY_TASK_COUNT", "4"))))!.Message,
            Does.Contain("must lie in [0, 4)"));
    }

    [Test]
    public void Resolve_Kubernetes_TakesTheCountFromTheFlagOrTheVariable()
    {
        Assert.That(ShardSpec.Resolve(null, 6, Env(("JOB_COMPLETION_INDEX", "2"))), Is.EqualTo(new ShardSpec(2, 6)));
        Assert.That(ShardSpec.Resolve(null, null, Env(("JOB_COMPLETION_INDEX", "2"), (ShardSpec.CountVariable, "3"))), Is.EqualTo(new ShardSpec(2, 3)));
        Assert.That(Assert.Throws<UsageException>(() => ShardSpec.Resolve(null, null, Env(("JOB_COMPLETION_INDEX", "2"))))!.Message,
            Does.Contain(ShardSpec.CountVariable));
    }

    [Test]
    public void Resolve_WithoutAnyIndex_IsTheWholeRun()
    {
        Assert.That(ShardSpec.Resolve(null, null, Env()), Is.EqualTo(ShardSpec.Single));
        Assert.That(() => ShardSpec.Resolve(null, 4, Env()), Throws.TypeOf<UsageException>().With.Message.Contains("needs a shard index"));
    }
}

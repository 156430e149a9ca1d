using System.Diagnostics;
using System.Text.RegularExpressions;
using NUnit.Framework;
using PosteriorGpu.Cli;
using YamlDotNet.RepresentationModel;

namespace PosteriorGpu.Tests.Cli;

/// <summary>
/// docs/scale-out.md's examples are what they claim: every bash block (the Slurm array script included) and
/// tools/scale-out-bench pass `bash -n`; the Kubernetes manifest parses as YAML into an Indexed Job whose shard count
/// matches its completions; and the `batch` command lines of both parse with the command's own options into the shard
/// the scheduler's variables name.
/// </summary>
public class ScaleOutDocsTests
{
    private static string Root()
    {
        for (var dir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "PosteriorGpu.sln"))) return dir.FullName;
        Assert.Ignore("repository root (PosteriorGpu.sln) not found above the test directory");
        return null!;
    }

    private static string Doc => File.ReadAllText(Path.Combine(Root(), "docs", "scale-out.md"));

    private static List<string> Blocks(string language) =>
        Regex.Matches(Doc, "^```" + language + "\\n(.*?)^```", RegexOptions.Multiline | RegexOptions.Singleline)
            .Select(m => m.Groups[1].Value).ToList();

    private static (int Code, string Err) BashSyntax(string script)
    {
        string path = Path.Combine(Path.GetTempPath(), $"scale-out-{Guid.NewGuid():N}.sh");
        File.WriteAllText(path, script);
        try
        {
            Process p;
            try
            {
                p = Process.Start(new ProcessStartInfo("bash", ["-n", path]) { RedirectStandardError = true })!;
            }
            catch (System.ComponentModel.Win32Exception)
            {
                Assert.Ignore("bash is not installed");
                throw;
            }
            string err = p.StandardError.ReadToEnd();
            p.WaitForExit();
            return (p.ExitCode, err);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    public void BashBlocks_AndTheBenchScript_AreValidBash()
    {
        var blocks = Blocks("bash");
        Assert.That(blocks, Has.Count.GreaterThanOrEqualTo(3), "publish, Slurm script, submission");
        Assert.That(blocks.Any(b => b.Contains("#SBATCH --array=")), "the Slurm array script is there");
        foreach (string block in blocks.Append(File.ReadAllText(Path.Combine(Root(), "tools", "scale-out-bench"))))
        {
            var (code, err) = BashSyntax(block);
            Assert.That(code, Is.Zero, $"bash -n: {err}\n{block}");
        }
        Assert.That(BashSyntax("if then fi").Code, Is.Not.Zero, "bash -n rejects bad syntax (else this test proves nothing)");
    }

    [Test]
    public void SlurmScript_RunsBatchWithItsOwnOptions_ShardFromTheArrayVariables()
    {
        string script = Blocks("bash").Single(b => b.Contains("#SBATCH --array="));
        var array = Regex.Match(script, @"#SBATCH --array=(\d+)-(\d+)");
        int first = int.Parse(array.Groups[1].Value), last = int.Parse(array.Groups[2].Value);
        string joined = script.Replace("\\\n", " ");
        string line = joined.Split('\n').Single(l => l.TrimStart().StartsWith("\"$app\" batch", StringComparison.Ordinal));
        var args = line.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(2).Select(a => a.Trim('"')).ToArray();
        var env = new Dictionary<string, string>
        {
            ["SLURM_ARRAY_TASK_ID"] = (first + 5).ToString(), ["SLURM_ARRAY_TASK_MIN"] = first.ToString(),
            ["SLURM_ARRAY_TASK_COUNT"] = (last - first + 1).ToString(),
        };
        var s = ScaleOutCommands.ParseBatch(args, k => env.GetValueOrDefault(k));
        Assert.That(s.Shard, Is.EqualTo(new ShardSpec(5, last - first + 1)));
        Assert.That(s.Measurements ?? s.Input, Is.Not.Null);
        Assert.That(PosteriorTask.Names, Does.Contain(s.Task));
        Assert.That(PosteriorSamplers.Names, Does.Contain(s.Sampler));
        Assert.That(s.Out, Is.EqualTo("$out"));
    }

    [Test]
    public void KubernetesManifest_IsAnIndexedJob_WhoseShardCountIsItsCompletions_AndAMergeJob()
    {
        var yaml = Blocks("yaml").Single();
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        Assert.That(stream.Documents, Has.Count.EqualTo(2));
        YamlNode At(YamlNode node, params string[] path)
        {
            foreach (string key in path)
                node = key.All(char.IsDigit) ? ((YamlSequenceNode)node)[int.Parse(key)] : ((YamlMappingNode)node)[key];
            return node;
        }
        string Text(YamlNode node, params string[] path) => ((YamlScalarNode)At(node, path)).Value!;

        var job = stream.Documents[0].RootNode;
        Assert.That((Text(job, "apiVersion"), Text(job, "kind")), Is.EqualTo(("batch/v1", "Job")));
        Assert.That(Text(job, "spec", "completionMode"), Is.EqualTo("Indexed"));
        int completions = int.Parse(Text(job, "spec", "completions"));
        Assert.That(Text(job, "spec", "template", "spec", "restartPolicy"), Is.EqualTo("Never"), "a failed index is retried by the Job, not in place");
        var container = At(job, "spec", "template", "spec", "containers", "0");
        var env = ((YamlSequenceNode)At(container, "env")).Cast<YamlMappingNode>()
            .ToDictionary(e => ((YamlScalarNode)e["name"]).Value!, e => ((YamlScalarNode)e["value"]).Value!);
        Assert.That(env[ShardSpec.CountVariable], Is.EqualTo(completions.ToString()), "shard count = completions");
        var args = ((YamlSequenceNode)At(container, "args")).Select(a => ((YamlScalarNode)a).Value!).ToArray();
        Assert.That(args[0], Is.EqualTo("batch"));
        env["JOB_COMPLETION_INDEX"] = (completions - 1).ToString();
        var s = ScaleOutCommands.ParseBatch(args.Skip(1), k => env.GetValueOrDefault(k));
        Assert.That(s.Shard, Is.EqualTo(new ShardSpec(completions - 1, completions)));
        var mounts = ((YamlSequenceNode)At(container, "volumeMounts")).Select(m => Text(m, "mountPath")).ToList();
        Assert.That(mounts.Any(m => s.Out.StartsWith(m + "/", StringComparison.Ordinal)), $"--out {s.Out} lies on a mounted volume");

        var merge = stream.Documents[1].RootNode;
        var mergeArgs = ((YamlSequenceNode)At(merge, "spec", "template", "spec", "containers", "0", "args")).Select(a => ((YamlScalarNode)a).Value!).ToArray();
        Assert.That(mergeArgs, Is.EqualTo(new[] { "merge", "--out", s.Out }), "the merge job reads the shards' folder");
    }

    [Test]
    public void ScalingTable_IsMeasured()
    {
        Assert.That(Doc, Does.Not.Contain("SCALING-TABLE"), "the placeholder was replaced by the measured table");
        var rows = Regex.Matches(Doc, @"^\| (\d+) \| [\d.]+ \| \d+ \| [\d.]+ \| [\d.]+ \|", RegexOptions.Multiline).Select(m => int.Parse(m.Groups[1].Value)).ToList();
        Assert.That(rows, Is.SupersetOf(new[] { 1, 2, 4 }), "rows for 1, 2 and 4 shards");
    }
}

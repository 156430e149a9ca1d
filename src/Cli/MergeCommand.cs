using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using PosteriorGpu.Models.IO;

namespace PosteriorGpu.Cli;

/// <summary>The settings of `posteriorgpu merge`.</summary>
/// <param name="Out">The output folder of the `batch` run (every shard's).</param>
internal sealed record MergeSettings(string Out);

/// <summary>A batch run's output is not complete or not sound: names every missing, corrupt, stale and partial file.</summary>
internal sealed class IncompleteRunException(string message) : Exception(message);

/// <summary>
/// `posteriorgpu merge`: checks that every item of a `batch` run is done and sound (<see cref="BatchStore.Check"/>:
/// metrics file present and parsable, the samples' SHA-256 as recorded, the run's fingerprint) and that no writer left a
/// partial (*.tmp) file, then writes merged/samples.npy [N, S, C, H, W] in item order, merged/metrics.json (per-item
/// metrics, their averages and the shards' timings) and merged/summary.md (a table, one row per item and the average).
/// Any problem fails the merge with a list of what to rerun, and nothing is written.
/// </summary>
internal static class MergeCommand
{
    /// <summary>Most problems listed per kind in the error.</summary>
    private const int Listed = 10;

    /// <summary>Merges; returns 0 or throws <see cref="IncompleteRunException"/>.</summary>
    public static int Run(MergeSettings s, TextWriter stdout)
    {
        var store = new BatchStore(s.Out);
        if (!File.Exists(store.ManifestPath))
            throw new FileNotFoundException($"{store.ManifestPath}: not found; --out must be the folder a `batch` run wrote", store.ManifestPath);
        JsonObject manifest;
        try
        {
            manifest = JsonNode.Parse(File.ReadAllText(store.ManifestPath)) as JsonObject
                ?? throw new IncompleteRunException($"{store.ManifestPath}: not a JSON object");
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new IncompleteRunException($"{store.ManifestPath}: not valid JSON ({e.Message}); rerun any shard to rewrite it");
        }
        string fingerprint = (string?)manifest["fingerprint"] ?? throw new IncompleteRunException($"{store.ManifestPath}: no fingerprint");
        var ids = manifest["items"]!.AsArray().Select(x => (string)x!).ToList();
        int S = (int)manifest["settings"]!["samples"]!;
        int[] image = manifest["image_shape"]!.AsArray().Select(x => (int)x!).ToArray();
        int d = image.Aggregate(1, (a, b) => a * b);

        var problems = new SortedDictionary<string, List<string>>(StringComparer.Ordinal);
        void Problem(string kind, string what)
        {
            if (!problems.TryGetValue(kind, out var list)) problems[kind] = list = [];
            list.Add(what);
        }
        var metrics = new JsonObject?[ids.Count];
        for (int i = 0; i < ids.Count; i++)
        {
            var state = store.Check(ids[i], fingerprint, out string why, out metrics[i]);
            if (state != BatchStore.ItemState.Done) Problem(state.ToString().ToLowerInvariant(), $"{ids[i]} (item {i}): {why}");
        }
        foreach (string t in store.TempFiles()) Problem("partial", $"{t}: a temporary file left by a writer that was stopped");
        if (problems.Count > 0)
        {
            var msg = new StringBuilder($"{s.Out}: the batch run is not complete and sound ({ids.Count} item(s)): ");
            msg.Append(string.Join("; ", problems.Select(p => $"{p.Value.Count} {p.Key}")));
            foreach (var (kind, list) in problems)
            {
                msg.Append($"\n  {kind}:");
                foreach (string what in list.Take(Listed)) msg.Append("\n    " + what);
                if (list.Count > Listed) msg.Append($"\n    ... and {list.Count - Listed} more");
            }
            msg.Append("\n  rerun the shards (the same command; done items are skipped, partial files removed), then merge again");
            throw new IncompleteRunException(msg.ToString());
        }

        var samples = new float[(long)ids.Count * S * d];
        for (int i = 0; i < ids.Count; i++)
        {
            var a = Npy.Read(store.SamplesPath(ids[i]));
            if (!a.Shape.SequenceEqual((int[])[S, .. image]))
                throw new IncompleteRunException($"{store.SamplesPath(ids[i])}: shape [{string.Join(", ", a.Shape)}] but the run makes [{S}, {string.Join(", ", image)}]");
            a.ToFloat32().CopyTo(samples, (long)i * S * d);
        }
        Directory.CreateDirectory(store.MergedFolder);
        string samplesPath = Path.Combine(store.MergedFolder, "samples.npy");
        BatchStore.WriteNpy(samplesPath, samples, [ids.Count, S, .. image]);

        var keys = metrics.SelectMany(m => ((JsonObject)m!["metrics"]!).Select(kv => kv.Key)).Distinct().ToList();
        var average = new JsonObject();
        foreach (string key in keys)
        {
            var values = metrics.Select(m => m!["metrics"]![key]).Where(v => v is not null).Select(v => (double)v!).ToList();
            average[key] = values.Count > 0 ? Math.Round(values.Average(), 5) : null;
        }
        var shards = new JsonArray();
        if (Directory.Exists(store.ShardsFolder))
            foreach (string f in Directory.GetFiles(store.ShardsFolder, "shard-*.json").Order(StringComparer.Ordinal))
                shards.Add(JsonNode.Parse(File.ReadAllText(f)));
        var doc = new JsonObject
        {
            ["command"] = "merge",
            ["fingerprint"] = fingerprint,
            ["settings"] = manifest["settings"]!.DeepClone(),
            ["items"] = ids.Count,
            ["samples_file"] = "samples.npy",
            ["samples_shape"] = new JsonArray([ids.Count, S, .. image.Select(v => (JsonNode?)v)]),
            ["average"] = average,
            ["per_item"] = new JsonArray(metrics.Select(m => (JsonNode?)new JsonObject
            {
                ["id"] = (string)m!["id"]!,
                ["index"] = (int)m["index"]!,
                ["metrics"] = m["metrics"]!.DeepClone(),
            }).ToArray()),
            ["shards"] = shards,
        };
        string metricsPath = Path.Combine(store.MergedFolder, "metrics.json");
        BatchStore.WriteJson(metricsPath, doc);
        string summaryPath = Path.Combine(store.MergedFolder, "summary.md");
        BatchStore.WriteAtomically(summaryPath, Encoding.UTF8.GetBytes(Summary(ids, metrics, keys, average)));
        stdout.WriteLine($"merge: {ids.Count} item(s), {S} sample(s) each; wrote {samplesPath}, {metricsPath}, {summaryPath}");
        return 0;
    }

    /// <summary>A markdown table: one row per item, then the average.</summary>
    private static string Summary(List<string> ids, JsonObject?[] metrics, List<string> keys, JsonObject average)
    {
        static string F(JsonNode? v) => v is null ? "n/a" : ((double)v).ToString("0.#####", CultureInfo.InvariantCulture);
        var sb = new StringBuilder();
        sb.Append("| item | ").Append(string.Join(" | ", keys)).Append(" |\n");
        sb.Append("|---|").Append(string.Concat(keys.Select(_ => "---:|"))).Append('\n');
        for (int i = 0; i < ids.Count; i++)
            sb.Append($"| {ids[i]} | ").Append(string.Join(" | ", keys.Select(k => F(metrics[i]!["metrics"]![k])))).Append(" |\n");
        sb.Append("| **average** | ").Append(string.Join(" | ", keys.Select(k => F(average[k])))).Append(" |\n");
        return sb.ToString();
    }
}

using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using PosteriorGpu.Models.IO;

namespace PosteriorGpu.Cli;

/// <summary>
/// The output folder of `batch` and `merge`: batch.json (the run's settings, their fingerprint and the item ids),
/// items/ID.npy (the item's samples [S, C, H, W]) and items/ID.json (its metrics, the samples' SHA-256 and the
/// fingerprint), shards/ (a timing log per shard), merged/. Every file is written to a temporary name in the same folder
/// and renamed into place, so a killed process leaves either the old state or the new, plus a *.tmp file at worst. An
/// item is done when its .json parses, carries the run's fingerprint and names the SHA-256 of its .npy: the .json is
/// renamed last, so it is the commit mark.
/// </summary>
internal sealed class BatchStore(string folder)
{
    /// <summary>The suffix of files being written.</summary>
    public const string TempSuffix = ".tmp";

    /// <summary>The output folder.</summary>
    public string Folder { get; } = folder;

    /// <summary>The manifest: settings, fingerprint and item ids.</summary>
    public string ManifestPath => Path.Combine(Folder, "batch.json");

    /// <summary>The folder of per-item files.</summary>
    public string ItemsFolder => Path.Combine(Folder, "items");

    /// <summary>The folder of per-shard logs.</summary>
    public string ShardsFolder => Path.Combine(Folder, "shards");

    /// <summary>Where merge writes.</summary>
    public string MergedFolder => Path.Combine(Folder, "merged");

    /// <summary>The samples file of an item.</summary>
    public string SamplesPath(string id) => Path.Combine(ItemsFolder, id + ".npy");

    /// <summary>The metrics file (commit mark) of an item.</summary>
    public string MetricsPath(string id) => Path.Combine(ItemsFolder, id + ".json");

    /// <summary>Writes <paramref name="bytes"/> to <paramref name="path"/> through a temporary file and a rename
    /// (flushed to disk first, so a crash of the machine does not leave a renamed but empty file).</summary>
    public static void WriteAtomically(string path, ReadOnlySpan<byte> bytes)
    {
        string temp = path + "." + Environment.ProcessId + TempSuffix;
        using (var f = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            f.Write(bytes);
            f.Flush(flushToDisk: true);
        }
        File.Move(temp, path, overwrite: true);
    }

    /// <summary>Writes a JSON document atomically (indented, one trailing newline).</summary>
    public static void WriteJson(string path, JsonNode node) =>
        WriteAtomically(path, System.Text.Encoding.UTF8.GetBytes(node.ToJsonString(Indented) + "\n"));

    /// <summary>Writes a float array as .npy atomically.</summary>
    public static void WriteNpy(string path, ReadOnlySpan<float> data, params int[] shape) =>
        WriteAtomically(path, NpyBytes(data, shape));

    /// <summary>The bytes of a float32 .npy (through <see cref="Npy.Write(string, ReadOnlySpan{float}, int[])"/>).</summary>
    public static byte[] NpyBytes(ReadOnlySpan<float> data, int[] shape)
    {
        // Npy writes to a path; a scratch file keeps its format the one place it is defined.
        string scratch = Path.Combine(Path.GetTempPath(), $"posteriorgpu-{Environment.ProcessId}-{Guid.NewGuid():N}.npy");
        try
        {
            Npy.Write(scratch, data, shape);
            return File.ReadAllBytes(scratch);
        }
        finally
        {
            File.Delete(scratch);
        }
    }

    /// <summary>Indented JSON output.</summary>
    public static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>Lower-case hex SHA-256 of some bytes.</summary>
    public static string Sha256(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    /// <summary>Writes an item: samples first, then the metrics file that names their hash (the commit mark).</summary>
    public void WriteItem(string id, JsonObject metrics, ReadOnlySpan<float> samples, int[] shape)
    {
        var bytes = NpyBytes(samples, shape);
        WriteAtomically(SamplesPath(id), bytes);
        metrics["samples_file"] = Path.GetFileName(SamplesPath(id));
        metrics["samples_shape"] = new JsonArray(shape.Select(s => (JsonNode?)s).ToArray());
        metrics["samples_sha256"] = Sha256(bytes);
        WriteJson(MetricsPath(id), metrics);
    }

    /// <summary>What is on disk for an item.</summary>
    public enum ItemState
    {
        /// <summary>Both files present and consistent.</summary>
        Done,
        /// <summary>No metrics file (not started, or killed before its commit).</summary>
        Missing,
        /// <summary>A file is unreadable, or the samples do not have the hash the metrics name.</summary>
        Corrupt,
        /// <summary>Written by a run with other settings (another fingerprint).</summary>
        Stale,
    }

    /// <summary>Checks an item against the run's <paramref name="fingerprint"/>; <paramref name="why"/> says what is wrong.
    /// <paramref name="metrics"/> is the parsed metrics file when the item is done.</summary>
    public ItemState Check(string id, string fingerprint, out string why, out JsonObject? metrics)
    {
        metrics = null;
        why = "";
        string jsonPath = MetricsPath(id), npyPath = SamplesPath(id);
        if (!File.Exists(jsonPath))
        {
            why = $"{jsonPath}: missing";
            return ItemState.Missing;
        }
        JsonObject? doc;
        try
        {
            doc = JsonNode.Parse(File.ReadAllText(jsonPath)) as JsonObject;
        }
        catch (JsonException e)
        {
            why = $"{jsonPath}: not valid JSON ({e.Message})";
            return ItemState.Corrupt;
        }
        if (doc?["samples_sha256"]?.GetValueKind() != JsonValueKind.String || doc["fingerprint"]?.GetValueKind() != JsonValueKind.String)
        {
            why = $"{jsonPath}: no samples_sha256 or fingerprint field";
            return ItemState.Corrupt;
        }
        if ((string)doc["fingerprint"]! != fingerprint)
        {
            why = $"{jsonPath}: written with other settings (fingerprint {(string)doc["fingerprint"]!} but the run's is {fingerprint})";
            return ItemState.Stale;
        }
        if (!File.Exists(npyPath))
        {
            why = $"{npyPath}: missing although {Path.GetFileName(jsonPath)} names it";
            return ItemState.Corrupt;
        }
        string actual = Sha256(File.ReadAllBytes(npyPath));
        if (actual != (string)doc["samples_sha256"]!)
        {
            why = $"{npyPath}: SHA-256 {actual} but {Path.GetFileName(jsonPath)} expects {(string)doc["samples_sha256"]!} (truncated or overwritten)";
            return ItemState.Corrupt;
        }
        metrics = doc;
        return ItemState.Done;
    }

    /// <summary>Temporary item files left by writers that were killed. (One left beside batch.json or a shard log is
    /// harmless: those files are whole or absent, and every shard rewrites them.)</summary>
    public IReadOnlyList<string> TempFiles() =>
        Directory.Exists(ItemsFolder) ? Directory.GetFiles(ItemsFolder, "*" + TempSuffix).Order(StringComparer.Ordinal).ToList() : [];

    /// <summary>Deletes the temporary files of <paramref name="ids"/> (a shard cleans only its own items: other shards
    /// may be writing theirs).</summary>
    public int DeleteTempFiles(IEnumerable<string> ids)
    {
        if (!Directory.Exists(ItemsFolder)) return 0;
        var mine = ids.SelectMany(id => new[] { id + ".npy.", id + ".json." }).ToHashSet();
        int deleted = 0;
        foreach (string f in Directory.GetFiles(ItemsFolder, "*" + TempSuffix))
        {
            string name = Path.GetFileName(f);
            int cut = name.LastIndexOf('.', name.Length - TempSuffix.Length - 1);
            if (cut > 0 && mine.Contains(name[..(cut + 1)]))
            {
                File.Delete(f);
                deleted++;
            }
        }
        return deleted;
    }
}

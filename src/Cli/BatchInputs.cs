using PosteriorGpu.Models.IO;

namespace PosteriorGpu.Cli;

/// <summary>
/// The items of a `batch` run, in a fixed order every shard agrees on: ground-truth images ([N, C, H, W], read as
/// `posterior --input` reads them, <see cref="PosteriorInputs"/>) or measurements ([N, m]). A .npy stack gives items
/// 000000, 000001, ...; a folder gives its .npy and picture files in ordinal name order, an item per image named after
/// the file (FILE-0000, FILE-0001, ... for a file holding several).
/// </summary>
internal sealed class BatchInputs
{
    private static readonly string[] PictureExtensions = [".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"];

    /// <summary>Item ids, unique and usable as file names.</summary>
    public required IReadOnlyList<string> Ids { get; init; }

    /// <summary>Ground truth [N, C, H, W], or null when the items are measurements.</summary>
    public float[]? Truth { get; init; }

    /// <summary>Measurements [N, m], or null when the items are images to measure.</summary>
    public float[]? Measurements { get; init; }

    /// <summary>Where the items came from.</summary>
    public required string Source { get; init; }

    /// <summary>Loads the items of <paramref name="s"/> for a model of [C, H, W] and an operator measuring
    /// <paramref name="measurementShape"/>.</summary>
    /// <exception cref="FileNotFoundException">The path does not exist.</exception>
    /// <exception cref="CheckpointFormatException">A file does not fit (names it and the expected shape).</exception>
    /// <exception cref="UsageException">A folder holds no usable file, or two files give the same id.</exception>
    public static BatchInputs Load(BatchSettings s, int c, int h, int w, int[] measurementShape)
    {
        string path = (s.Input ?? s.Measurements)!;
        bool images = s.Input is not null;
        var ids = new List<string>();
        var data = new List<float>();
        void AddFile(string file, string stem)
        {
            var (values, count) = images ? Images(file, c, h, w, s.Invert) : MeasurementsOf(file, measurementShape);
            for (int k = 0; k < count; k++) ids.Add(count == 1 && stem != "" ? stem : (stem == "" ? $"{k:D6}" : $"{stem}-{k:D4}"));
            data.AddRange(values);
        }
        if (Directory.Exists(path))
        {
            var files = Directory.GetFiles(path)
                .Where(f => f.EndsWith(".npy", StringComparison.OrdinalIgnoreCase) ||
                            (images && PictureExtensions.Any(e => f.EndsWith(e, StringComparison.OrdinalIgnoreCase))))
                .Order(StringComparer.Ordinal).ToList();
            if (files.Count == 0)
                throw new UsageException($"{path}: the folder holds no .npy{(images ? " or picture" : "")} files");
            foreach (string f in files) AddFile(f, Path.GetFileNameWithoutExtension(f));
            var duplicate = ids.GroupBy(x => x, StringComparer.OrdinalIgnoreCase).FirstOrDefault(g => g.Count() > 1);
            if (duplicate is not null)
                throw new UsageException($"{path}: two files give the item id '{duplicate.Key}' (ids are file names without extension; rename one)");
        }
        else if (File.Exists(path)) AddFile(path, "");
        else throw new FileNotFoundException($"{path}: input not found (a .npy stack or a folder)", path);
        return new BatchInputs
        {
            Ids = ids,
            Truth = images ? [.. data] : null,
            Measurements = images ? null : [.. data],
            Source = Path.GetFullPath(path),
        };
    }

    private static (float[] Values, int Count) Images(string file, int c, int h, int w, bool invert)
    {
        var (values, count, _) = PosteriorInputs.Load(file, c, h, w, invert);
        return (values.AsSpan(0, count * c * h * w).ToArray(), count);
    }

    /// <summary>A .npy of one measurement (the operator's shape, or that flattened) or a stack [N, ...shape] / [N, m].</summary>
    private static (float[] Values, int Count) MeasurementsOf(string file, int[] shape)
    {
        if (!file.EndsWith(".npy", StringComparison.OrdinalIgnoreCase))
            throw new CheckpointFormatException(file, "measurements must be .npy files");
        var a = Npy.Read(file);
        if (!a.IsFloatingPoint) throw new CheckpointFormatException(file, $"dtype {a.DType}: measurements must be float32 or float64");
        int m = shape.Aggregate(1, (x, y) => x * y);
        int[] s = a.Shape;
        int count;
        if (s.SequenceEqual(shape) || (s.Length == 1 && s[0] == m)) count = 1;
        else if (s.Length >= 2 && s.Skip(1).Aggregate(1, (x, y) => x * y) == m && (s.Length == 2 || s[1..].SequenceEqual(shape))) count = s[0];
        else
            throw new CheckpointFormatException(file,
                $"expected measurements of shape [N, {string.Join(", ", shape)}], [N, {m}] or one [{string.Join(", ", shape)}] but got [{string.Join(", ", s)}]");
        if (count == 0) throw new CheckpointFormatException(file, "holds no measurements");
        var values = a.ToFloat32();
        foreach (float v in values)
            if (!float.IsFinite(v)) throw new CheckpointFormatException(file, $"holds the value {v}; measurements must be finite");
        return (values, count);
    }
}

using PosteriorGpu.Models.Data;
using PosteriorGpu.Models.IO;

namespace PosteriorGpu.Cli;

/// <summary>`posteriorgpu mnist-export`: chosen MNIST images, padded to 32 x 32 and scaled to [-1, 1],
/// as a float32 .npy [k, 1, 32, 32] (and optionally a PNG grid). It makes the committed default inputs
/// of `posterior` (data/mnist-test-digits.npy, see data/README.md) and any other input set.</summary>
internal static class MnistExportCommand
{
    /// <summary>The options this command takes (besides --verbose).</summary>
    public static readonly string[] Known = ["mnist", "split", "indices", "out", "png"];

    /// <summary>The test-set images in data/mnist-test-digits.npy: the first image of each digit 0-9,
    /// then the second image of digits 0-5 (labels 0..9, 0..5), found from t10k-labels-idx1-ubyte.</summary>
    public const string TestDigitIndices = "3,2,1,18,4,8,11,0,61,7,10,5,35,30,6,15";

    /// <summary>Runs the command; returns the exit code.</summary>
    public static int Run(Options o, TextWriter stdout)
    {
        string split = o.Get("split") ?? "test";
        string file = split switch
        {
            "test" => MnistFolder.TestImages,
            "train" => MnistFolder.TrainImages,
            _ => throw new UsageException($"--split must be test or train but got '{split}'"),
        };
        string outPath = o.Required("out", "where to write the images (.npy)");
        var images = MnistImages.Load(MnistFolder.File(file, o.Get("mnist")));
        string spec = o.Get("indices") ?? "0-15";
        int[] indices = ParseIndices(spec, images.Count);
        var data = images.Gather(indices);
        int[] shape = [indices.Length, 1, MnistImages.Size, MnistImages.Size];
        Npy.Write(outPath, data, shape);
        if (o.Get("png") is { } png) PngGrid.Write(png, data, shape);
        stdout.WriteLine($"wrote {outPath} [{string.Join(", ", shape)}]: {split} images {spec} of {images.FileName}");
        return 0;
    }

    /// <summary>Parses "3,2,1" and ranges "0-15" (inclusive), checking each index against <paramref name="count"/>.</summary>
    public static int[] ParseIndices(string text, int count)
    {
        var result = new List<int>();
        foreach (string part in text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            int dash = part.IndexOf('-', 1);
            int from, to;
            bool ok;
            if (dash < 0) { ok = int.TryParse(part, out from); to = from; }
            else ok = int.TryParse(part[..dash], out from) & int.TryParse(part[(dash + 1)..], out to);
            if (!ok || from < 0 || to < from || to >= count)
                throw new UsageException($"--indices: '{part}' is not an index or range a-b within 0..{count - 1}");
            for (int i = from; i <= to; i++) result.Add(i);
        }
        if (result.Count == 0) throw new UsageException("--indices lists no images");
        return [.. result];
    }
}

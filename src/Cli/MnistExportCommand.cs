using System.CommandLine;
using PosteriorGpu.Models.Data;
using PosteriorGpu.Models.IO;

namespace PosteriorGpu.Cli;

/// <summary>`posteriorgpu mnist-export`: chosen MNIST images, padded to 32 x 32 and scaled to [-1, 1],
/// as a float32 .npy [k, 1, 32, 32] (and optionally a PNG grid). It makes the committed default inputs
/// of `posterior` (data/mnist-test-digits.npy, see data/README.md) and any other input set.</summary>
internal static class MnistExportCommand
{
    /// <summary>The test-set images in data/mnist-test-digits.npy: the first image of each digit 0-9,
    /// then the second image of digits 0-5 (labels 0..9, 0..5), found from t10k-labels-idx1-ubyte.</summary>
    public const string TestDigitIndices = "3,2,1,18,4,8,11,0,61,7,10,5,35,30,6,15";

    /// <summary>Runs the command; returns the exit code.</summary>
    public static int Run(string split, string spec, string? mnistFolder, string outPath, string? pngPath, CliContext cli)
    {
        string file = split == "train" ? MnistFolder.TrainImages : MnistFolder.TestImages;
        var images = MnistImages.Load(MnistFolder.File(file, mnistFolder));
        int[] indices = ParseIndices(spec, images.Count);
        var data = images.Gather(indices);
        int[] shape = [indices.Length, 1, MnistImages.Size, MnistImages.Size];
        string png = pngPath ?? Path.ChangeExtension(outPath, ".png");
        CliFiles.CreateFolderOf(outPath);
        CliFiles.CreateFolderOf(png);
        CliFiles.Writing("output file (--out)", outPath, () => Npy.Write(outPath, data, shape));
        CliFiles.Writing("picture (--png)", png, () => PngGrid.Write(png, data, shape, $"mnist {split} {spec}"));
        cli.Out.WriteLine($"wrote {outPath} [{string.Join(", ", shape)}] and {png}: {split} images {spec} of {images.FileName}");
        return ExitCodes.Ok;
    }

    /// <summary>The `mnist-export` command's options and parsing glue.</summary>
    public static Command Create(CommandSetup setup)
    {
        var split = CliOptions.Choice("--split", "test", "which MNIST split", ["test", "train"]);
        var indices = CliOptions.Path("--indices", "0-15", "image indices and inclusive ranges, separated by commas (e.g. 3,2,1 or 0-15)");
        indices.HelpName = "list";
        var mnist = CliOptions.Text("--mnist", "the MNIST folder (from tools/fetch-mnist)", "dir");
        var output = CliOptions.Path("--out", Path.Combine("out", "mnist-export", "digits.npy"), "output file: the images as a float32 .npy [k, 1, 32, 32] in [-1, 1]");
        var png = CliOptions.Text("--png", "the picture: a labelled grid (default: --out with .png)", "file");
        var command = new Command("mnist-export", "chosen MNIST images (from tools/fetch-mnist), padded to 32 x 32 in [-1, 1], as .npy and a PNG grid")
        {
            split, indices, mnist, output, png,
        };
        command.SetAction(p => Run(p.GetValue(split)!, p.GetValue(indices)!, p.GetValue(mnist), p.GetValue(output)!, p.GetValue(png), setup.Context));
        return command;
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

using System.CommandLine;
using System.Globalization;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Models.Classifier;
using PosteriorGpu.Models.Data;
using PosteriorGpu.Models.IO;
using PosteriorGpu.Samplers.Diagnostics;

namespace PosteriorGpu.Cli;

/// <summary>`posteriorgpu fid`: the Frechet distance between MNIST samples and a reference set in the
/// penultimate features of the shipped MNIST classifier (<see cref="MnistFid"/>).</summary>
internal static class FidCommand
{
    /// <summary>The default classifier folder, relative to the repository root.</summary>
    public const string DefaultClassifier = DefaultPaths.Classifier;

    /// <summary>The held-out training images of <c>--reference train-split</c>: the last 10,000.</summary>
    public const int TrainSplitStart = 50_000;

    /// <summary>What to compare.</summary>
    /// <param name="Samples">The samples, .npy [N, 1, 32, 32] in [-1, 1].</param>
    /// <param name="Reference">"test" (the 10,000 MNIST test images), "train-split" (training images 50,000 to 59,999) or an .npy file.</param>
    /// <param name="Classifier">The classifier folder (null: the shipped models/mnist-classifier).</param>
    /// <param name="Mnist">MNIST folder (null: the default cache).</param>
    /// <param name="Device">The device kind (null: the default choice).</param>
    public sealed record Settings(string Samples, string Reference = "test", string? Classifier = null, string? Mnist = null, DeviceKind? Device = null);

    /// <summary>The `fid` command's options and parsing glue.</summary>
    public static Command Create(CommandSetup setup)
    {
        var samples = CliOptions.Text("--samples", "the samples: a .npy [N, 1, 32, 32] in [-1, 1] (e.g. from `sample --out`)", "file", required: true);
        var reference = CliOptions.Path("--reference", "test", "test (the 10,000 MNIST test images), train-split (training images 50,000-59,999) or an .npy file");
        var classifier = CliOptions.Text("--classifier", $"the classifier folder (default: the shipped {DefaultClassifier})", "dir");
        var mnist = CliOptions.Text("--mnist", "the MNIST folder (from tools/fetch-mnist)", "dir");
        var command = new Command("fid", "Frechet distance between MNIST samples and a reference set, in the shipped MNIST classifier's features")
        {
            samples, reference, classifier, mnist,
        };
        command.SetAction(p => Execute(new Settings(p.GetValue(samples)!, p.GetValue(reference)!, p.GetValue(classifier), p.GetValue(mnist),
            setup.DeviceOf(p)), setup.Context.Out));
        return command;
    }

    /// <summary>Computes and prints the FID; returns the exit code.</summary>
    public static int Execute(Settings s, TextWriter stdout)
    {
        var samples = LoadImages(s.Samples, "--samples");
        var reference = s.Reference switch
        {
            "test" => MnistImages.Load(MnistFolder.File(MnistFolder.TestImages, s.Mnist)) is var t ? t.ToArray(0, t.Count) : null!,
            "train-split" => MnistImages.Load(MnistFolder.File(MnistFolder.TrainImages, s.Mnist)) is var t ? t.ToArray(TrainSplitStart, t.Count - TrainSplitStart) : null!,
            _ when s.Reference.EndsWith(".npy", StringComparison.OrdinalIgnoreCase) => LoadImages(s.Reference, "--reference"),
            _ => throw new UsageException($"--reference must be test, train-split or an .npy file but got '{s.Reference}'"),
        };
        string folder = s.Classifier ?? DefaultPaths.Find(DefaultClassifier)
            ?? throw new UsageException($"no classifier at {string.Join(", ", DefaultPaths.Candidates(DefaultClassifier).Take(2))}; pass --classifier DIR");
        using var dev = GpuDevice.Open(s.Device);
        using var classifier = ImageClassifier.Load(dev, folder);
        var fid = new MnistFid(classifier);
        int n = samples.Length / MnistImages.ImageLength, m = reference.Length / MnistImages.ImageLength;
        double d = fid.Distance(samples, reference);
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"fid: {d:F3}  ({n} samples from {s.Samples} vs {m} images of {s.Reference}; features of {folder}, width {classifier.Config.Features})"));
        if (n < 1000) stdout.WriteLine("fid: fewer than 1,000 samples; FID is biased upward for small sets, compare only sets of the same size");
        return 0;
    }

    private static float[] LoadImages(string path, string option)
    {
        var a = Npy.Read(path);
        int dim = MnistImages.ImageLength;
        if (a.Length < 2 * dim || a.Length % dim != 0)
            throw new UsageException($"{option} {path}: shape [{string.Join(", ", a.Shape)}] is not [N, 1, 32, 32] with N >= 2");
        return a.ToFloat32();
    }
}

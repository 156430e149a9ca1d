using System.CommandLine;
using System.Globalization;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Models.Data;
using PosteriorGpu.Models.IO;

namespace PosteriorGpu.Cli;

/// <summary>`posteriorgpu digits-quality`: a simple quality figure for MNIST samples, the mean
/// distance from each sample to its nearest MNIST test image, beside the same figure for real test
/// images against the training set (what a perfect model would score) and for uniform noise images.</summary>
internal static class DigitsQualityCommand
{
    /// <summary>Runs the command on the samples in <paramref name="samplesPath"/>; returns the exit code.</summary>
    public static int Run(string samplesPath, int realCount, string? mnistFolder, DeviceKind? device, CliContext cli)
    {
        if (!File.Exists(samplesPath)) throw new FileNotFoundException($"samples (--samples) {samplesPath} not found", samplesPath);
        var samples = Npy.Read(samplesPath);
        int dim = MnistImages.ImageLength;
        if (samples.Length % dim != 0 || samples.Length == 0)
            throw new UsageException($"digits-quality: the samples in {samplesPath} have shape [{string.Join(", ", samples.Shape)}], not [N, 1, 32, 32]");
        var stdout = cli.Out;
        var x = samples.ToFloat32();
        int n = x.Length / dim;
                var test = MnistImages.Load(MnistFolder.File(MnistFolder.TestImages, mnistFolder));
        var train = MnistImages.Load(MnistFolder.File(MnistFolder.TrainImages, mnistFolder));
        if (realCount < 1 || realCount > test.Count) throw new UsageException($"--real must be in [1, {test.Count}]");
        using var dev = GpuDevice.Open(device);
        var testAll = test.ToArray(0, test.Count);
        double sampleToTest = NearestNeighbours.Distances(dev, x, testAll, dim).Average();
        double realToTrain = NearestNeighbours.Distances(dev, test.ToArray(0, realCount), train.ToArray(0, train.Count), dim).Average();
        var rng = new Random(0);
        var noise = new float[n * dim];
        for (int i = 0; i < noise.Length; i++) noise[i] = (float)(2 * rng.NextDouble() - 1);
        double noiseToTest = NearestNeighbours.Distances(dev, noise, testAll, dim).Average();
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"mean nearest-neighbour L2 distance (images in [-1, 1], 32 x 32):"));
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {n} samples -> MNIST test set ({test.Count}): {sampleToTest:F2}"));
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {realCount} MNIST test images -> training set ({train.Count}): {realToTrain:F2}"));
        stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {n} uniform-noise images -> MNIST test set: {noiseToTest:F2}"));
        return ExitCodes.Ok;
    }

    /// <summary>The `digits-quality` command's options and parsing glue.</summary>
    public static Command Create(CommandSetup setup)
    {
        var samples = CliOptions.Text("--samples", "the samples: a .npy [N, 1, 32, 32] in [-1, 1] (e.g. from `sample --out`)", "file", required: true);
        var real = CliOptions.Int("--real", 200, "MNIST test images scored against the training set, for scale", min: 1);
        var mnist = CliOptions.Text("--mnist", "the MNIST folder (from tools/fetch-mnist)", "dir");
        var command = new Command("digits-quality", "mean nearest-neighbour distance of MNIST samples to the test set, beside real and noise images")
        {
            samples, real, mnist,
        };
        command.SetAction(p => Run(p.GetValue(samples)!, p.GetValue(real), p.GetValue(mnist), setup.DeviceOf(p), setup.Context));
        return command;
    }
}

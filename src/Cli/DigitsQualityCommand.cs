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
    /// <summary>The options this command takes (besides --verbose).</summary>
    public static readonly string[] Known = ["samples", "mnist", "real", "device"];

    /// <summary>Runs the command; returns the exit code.</summary>
    public static int Run(Options o, TextWriter stdout)
    {
        var samples = Npy.Read(o.Required("samples", "the samples (.npy [N, 1, 32, 32] in [-1, 1])"));
        int dim = MnistImages.ImageLength;
        if (samples.Length % dim != 0 || samples.Length == 0)
            throw new ArgumentException($"digits-quality: the samples have shape [{string.Join(", ", samples.Shape)}], not [N, 1, 32, 32]");
        var x = samples.ToFloat32();
        int n = x.Length / dim;
        int realCount = o.Int("real", 200);
        var test = MnistImages.Load(MnistFolder.File(MnistFolder.TestImages, o.Get("mnist")));
        var train = MnistImages.Load(MnistFolder.File(MnistFolder.TrainImages, o.Get("mnist")));
        if (realCount < 1 || realCount > test.Count) throw new UsageException($"--real must be in [1, {test.Count}]");
        using var dev = GpuDevice.Open(DeviceKinds.Parse(o.Get("device"), "--device"));
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
        return 0;
    }
}

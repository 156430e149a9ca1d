using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Models.Data;
using PosteriorGpu.Models.IO;
using PosteriorGpu.Samplers.Diagnostics;

namespace PosteriorGpu.Cli;

/// <summary>`posteriorgpu inpaint-reference --run DIR`: for an inpainting run of `posterior` (its folder), the
/// PSNR on the missing pixels of the run's posterior mean beside a k-nearest-neighbour estimate from the MNIST
/// training set (<see cref="NearestNeighbourInpainting"/>: what a posterior mean with the data's own prior reaches
/// on the same measurements) and the trivial fill. It shows how much of the possible margin the model keeps.</summary>
internal static class InpaintReferenceCommand
{
    /// <summary>Runs the command on the run folder <paramref name="run"/>; returns the exit code.</summary>
    public static int Run(string run, int k, string? mnistFolder, DeviceKind? device, CliContext cli)
    {
        var stdout = cli.Out;
        string metricsPath = Path.Combine(run, "metrics.json");
        if (!File.Exists(metricsPath)) throw new FileNotFoundException($"run folder (--run): {metricsPath} not found; give --run the output folder of a `posterior` run");
        using var metrics = JsonDocument.Parse(File.ReadAllText(metricsPath));
        var options = metrics.RootElement.GetProperty("options");
        string task = options.GetProperty("task").GetString() ?? "";
        if (task != "inpaint") throw new UsageException($"{run} is a '{task}' run; inpaint-reference compares inpainting runs only");
        var settings = new TaskSettings
        {
            Mask = options.GetProperty("mask").GetString() ?? TaskSettings.DefaultMask,
            Ratio = options.GetProperty("ratio").ValueKind == JsonValueKind.Number ? options.GetProperty("ratio").GetDouble() : null,
            OperatorSeed = options.GetProperty("operator_seed").GetUInt64(),
        };

        var truth = Npy.Read(Path.Combine(run, "truth.npy"));
        var measured = Npy.Read(Path.Combine(run, "measurement.npy")).ToFloat32();
        var mean = Npy.Read(Path.Combine(run, "mean.npy")).ToFloat32();
        var shape = truth.Shape;
        if (shape.Length != 4 || shape[1] != 1 || shape[2] != MnistImages.Size || shape[3] != MnistImages.Size)
            throw new ArgumentException($"{run}: the run's images have shape [{string.Join(", ", shape)}]; the reference library is MNIST [N, 1, 32, 32]");
        int n = shape[0], d = MnistImages.ImageLength;
        var x = truth.ToFloat32();
        if (measured.Length != n * d || mean.Length != n * d)
            throw new ArgumentException($"{run}: truth.npy, measurement.npy and mean.npy do not hold the same {n} images");

        var library = MnistImages.Load(MnistFolder.File(MnistFolder.TrainImages, mnistFolder));
        if (k > library.Count) throw new UsageException($"--k must be at most {library.Count} (the training images)");
        using var dev = GpuDevice.Open(device);
        using var inpaint = PosteriorTask.Create(task, dev, 1, MnistImages.Size, MnistImages.Size, settings);
        var missing = inpaint.MissingMask!;
        var nearest = NearestNeighbourInpainting.Estimate(dev, measured, n, missing, 1, library.ToArray(0, library.Count), k);
        var fill = inpaint.TrivialFill(x, n);

        double Psnr(float[] estimate, int i) => ImageMetrics.Psnr(estimate.AsSpan(i * d, d), x.AsSpan(i * d, d), missing);
        var rows = Enumerable.Range(0, n).Select(i => (Mean: Psnr(mean, i), Nearest: Psnr(nearest, i), Fill: Psnr(fill, i))).ToArray();
        string F(double v) => v.ToString("F2", CultureInfo.InvariantCulture);
        stdout.WriteLine($"inpaint-reference: {run} ({inpaint.Description}, {n} input(s)); PSNR on the missing pixels, dB:");
        stdout.WriteLine($"  {"input",5}  {"posterior mean",14}  {$"{k}-NN of {library.Count}",16}  {"trivial fill",12}");
        for (int i = 0; i < n; i++)
            stdout.WriteLine($"  {i,5}  {F(rows[i].Mean),14}  {F(rows[i].Nearest),16}  {F(rows[i].Fill),12}");
        stdout.WriteLine($"  {"mean",5}  {F(rows.Average(r => r.Mean)),14}  {F(rows.Average(r => r.Nearest)),16}  {F(rows.Average(r => r.Fill)),12}");
        return ExitCodes.Ok;
    }

    /// <summary>The `inpaint-reference` command's options and parsing glue.</summary>
    public static Command Create(CommandSetup setup)
    {
        var run = CliOptions.Path("--run", Path.Combine("out", "posterior"), "run folder: the output folder of an inpainting `posterior` run");
        var k = CliOptions.Int("--k", 16, "nearest training images averaged", min: 1);
        var mnist = CliOptions.Text("--mnist", "the MNIST folder (from tools/fetch-mnist)", "dir");
        var command = new Command("inpaint-reference", "PSNR on the missing pixels of an inpainting run's posterior mean beside the mean of the " +
            "k MNIST training images nearest on the observed pixels, and the trivial fill (needs tools/fetch-mnist)")
        {
            run, k, mnist,
        };
        command.SetAction(p => Run(p.GetValue(run)!, p.GetValue(k), p.GetValue(mnist), setup.DeviceOf(p), setup.Context));
        return command;
    }
}

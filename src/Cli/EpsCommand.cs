using System.CommandLine;
using System.Globalization;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.IO;
using PosteriorGpu.Models.UNet;

namespace PosteriorGpu.Cli;

/// <summary>The typed settings of `posteriorgpu eps`.</summary>
/// <param name="Model">--model (null: the shipped model).</param>
/// <param name="X">--x (null: the committed digits).</param>
/// <param name="T">--t: a .npy of timesteps, or integers separated by commas (one for all, or one per image).</param>
/// <param name="Out">--out.</param>
/// <param name="Device">--device.</param>
internal sealed record EpsSettings(string? Model = null, string? X = null, string T = "500", string Out = "out/eps/eps.npy", DeviceKind? Device = null);

/// <summary>`posteriorgpu eps`: runs a diffusers checkpoint on saved inputs and writes its epsilon,
/// so a converted model can be checked against PyTorch's output in one line.</summary>
internal static class EpsCommand
{
    /// <summary>Runs the command; returns the exit code.</summary>
    public static int Run(EpsSettings s, CliContext cli)
    {
        string model = CliFiles.ModelFolder(s.Model);
        string xPath = s.X ?? DefaultPaths.Find(DefaultPaths.Digits)
            ?? throw new FileNotFoundException($"input images: the default {DefaultPaths.Digits} was not found; give --x");
        if (!File.Exists(xPath)) throw new FileNotFoundException($"input images (--x) {xPath} not found", xPath);
        var x = Npy.Read(xPath);
        if (x.Shape.Length != 4)
            throw new UsageException($"{xPath}: expected an [N, C, H, W] array but got shape {Shape.Format(x.Shape)}");
        float[] t = Timesteps(s.T, x.Shape[0]);

        using var dev = GpuDevice.Open(s.Device);
        using var unet = UNet2DModel.Load(dev, model);
        using var tx = Tensor.FromHost(dev, x.ToFloat32(), x.Shape);
        using var eps = Tensor.Empty(dev, x.Shape[0], unet.Config.OutChannels, x.Shape[2], x.Shape[3]);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        unet.PredictEpsilon(tx, t, eps);
        var result = eps.ToHost();
        watch.Stop();
        CliFiles.CreateFolderOf(s.Out);
        CliFiles.Writing("output file (--out)", s.Out, () => Npy.Write(s.Out, result, eps.Shape));
        cli.Out.WriteLine($"wrote {s.Out} {Shape.Format(eps.Shape)} on {dev.Description} in {watch.Elapsed.TotalMilliseconds:F0} ms");
        return ExitCodes.Ok;
    }

    /// <summary>--t: a .npy file (int64 or float), or integers separated by commas; one value is used for every image.</summary>
    public static float[] Timesteps(string text, int n)
    {
        float[] t;
        if (text.EndsWith(".npy", StringComparison.OrdinalIgnoreCase))
        {
            if (!File.Exists(text)) throw new FileNotFoundException($"timesteps (--t) {text} not found", text);
            var a = Npy.Read(text);
            t = a.DType.Contains('f') ? a.ToFloat32() : a.ToInt64().Select(v => (float)v).ToArray();
        }
        else
        {
            var parts = text.Split(',', StringSplitOptions.TrimEntries);
            t = new float[parts.Length];
            for (int i = 0; i < parts.Length; i++)
                t[i] = float.TryParse(parts[i], NumberStyles.Float, CultureInfo.InvariantCulture, out float v) && v >= 0 ? v
                    : throw new UsageException($"--t takes a .npy file or timesteps >= 0 separated by commas, but got '{parts[i]}'");
        }
        if (t.Length == 1 && n > 1) t = Enumerable.Repeat(t[0], n).ToArray();
        if (t.Length != n) throw new UsageException($"--t gives {t.Length} timesteps for {n} images; give one, or one per image");
        return t;
    }

    /// <summary>The `eps` command's options and parsing glue.</summary>
    public static Command Create(CommandSetup setup)
    {
        var d = new EpsSettings();
        var model = CliOptions.Text("--model", $"model folder (a diffusers UNet2DModel). Default: the shipped {DefaultPaths.Model}", "dir");
        var x = CliOptions.Text("--x", $"input images x_t as a float32 .npy [N, C, H, W]. Default: the committed {DefaultPaths.Digits}", "file");
        var t = CliOptions.Path("--t", d.T, "timesteps: a .npy [N] (int64 or float), or integers separated by commas (one for all images, or one each)");
        t.HelpName = "file|list";
        var output = CliOptions.Path("--out", d.Out, "output file: epsilon as a .npy [N, C, H, W]");
        var command = new Command("eps", "run a diffusers UNet2DModel on saved inputs and write its epsilon prediction (compare with PyTorch's)")
        {
            model, x, t, output,
        };
        command.SetAction(p => Run(new EpsSettings(p.GetValue(model), p.GetValue(x), p.GetValue(t)!, p.GetValue(output)!, setup.DeviceOf(p)), setup.Context));
        return command;
    }
}

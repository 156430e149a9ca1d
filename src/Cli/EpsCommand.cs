using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.IO;
using PosteriorGpu.Models.UNet;

namespace PosteriorGpu.Cli;

/// <summary>`posteriorgpu eps`: runs a diffusers checkpoint on saved inputs and writes its epsilon,
/// so a converted model can be checked against PyTorch's output in one line.</summary>
internal static class EpsCommand
{
    /// <summary>The options this command takes (besides --verbose).</summary>
    public static readonly string[] Known = ["model", "x", "t", "out", "device"];

    /// <summary>Runs the command; returns the exit code.</summary>
    public static int Run(Options o, TextWriter stdout)
    {
        string model = o.Required("model", "a diffusers model folder with config.json and diffusion_pytorch_model.safetensors");
        string xPath = o.Required("x", "the inputs x_t as an [N, C, H, W] float32 .npy");
        string tPath = o.Required("t", "the timesteps as an [N] .npy (int64 or float)");
        string outPath = o.Required("out", "where to write epsilon (.npy)");
        var device = DeviceKinds.Parse(o.Get("device"), "--device");

        var x = Npy.Read(xPath);
        if (x.Shape.Length != 4)
            throw new UsageException($"{xPath}: expected an [N, C, H, W] array but got shape {Shape.Format(x.Shape)}");
        var tArray = Npy.Read(tPath);
        float[] t = tArray.DType.Contains('f') ? tArray.ToFloat32() : tArray.ToInt64().Select(v => (float)v).ToArray();

        using var dev = GpuDevice.Open(device);
        using var unet = UNet2DModel.Load(dev, model);
        using var tx = Tensor.FromHost(dev, x.ToFloat32(), x.Shape);
        using var eps = Tensor.Empty(dev, x.Shape[0], unet.Config.OutChannels, x.Shape[2], x.Shape[3]);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        unet.PredictEpsilon(tx, t, eps);
        var result = eps.ToHost();
        watch.Stop();
        Npy.Write(outPath, result, eps.Shape);
        stdout.WriteLine($"wrote {outPath} {Shape.Format(eps.Shape)} on {dev.Description} in {watch.Elapsed.TotalMilliseconds:F0} ms");
        return 0;
    }
}

using BenchmarkDotNet.Attributes;
using PosteriorGpu.Bench.Harness;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.UNet;

namespace PosteriorGpu.Bench.Models;

/// <summary>
/// The U-Net forward pass (epsilon prediction) for S32 and the google/ddpm-cifar10-32 architecture,
/// random weights written as a diffusers checkpoint and loaded through UNet2DModel.Load. Napkin math:
/// S32 is about 3.2 GFLOP per image, cifar10 about 6 (<see cref="UNetArchitectures.ForwardFlops"/>);
/// at batch 256 an H100's ~50 TFLOP/s fp32 would allow ~60k S32 images/s; at batch 1 launch
/// overhead (a few hundred launches of a few microseconds) dominates.
/// </summary>
[MemoryDiagnoser]
public class UNetForwardBench : IThroughput
{
    private GpuDevice device = null!;
    private UNet2DModel unet = null!;
    private Tensor x = null!, eps = null!;
    private float[] t = [];

    /// <summary>Which architecture (<see cref="UNetArchitectures.Names"/>).</summary>
    [ParamsSource(nameof(Models))]
    public string Model { get; set; } = "S32";

    /// <summary>Images per forward pass.</summary>
    [ParamsSource(nameof(Batches))]
    public int Batch { get; set; } = 1;

    /// <summary>Architectures by mode: S32 alone in smoke mode.</summary>
    public static IEnumerable<string> Models() => BenchMode.Pick<string>(["S32"], ["S32", "cifar10"], ["S32", "cifar10"]);

    /// <summary>Batch sizes by mode and device.</summary>
    public static IEnumerable<int> Batches() => BenchMode.Pick([1], [1], [1, 64, 256]);

    [GlobalSetup]
    public void Setup()
    {
        device = GpuDevice.Open();
        var config = UNetArchitectures.ByName(Model);
        string folder = UNetArchitectures.TemporaryCheckpoint(config);
        try
        {
            unet = UNet2DModel.Load(device, folder);
        }
        finally
        {
            Directory.Delete(folder, true);
        }
        int s = config.SampleSize!.Value;
        var rng = new Random(2);
        var data = new float[Batch * 3 * s * s];
        for (int i = 0; i < data.Length; i++) data[i] = (float)(2 * rng.NextDouble() - 1);
        x = Tensor.FromHost(device, data, Batch, 3, s, s);
        eps = Tensor.Empty(device, Batch, 3, s, s);
        t = Enumerable.Range(0, Batch).Select(i => (float)(i * 37 % 1000)).ToArray();
        Forward();   // compiles the kernels and fills the activation pool
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        x.Dispose(); eps.Dispose(); unet.Dispose();
        device.Dispose();
    }

    /// <summary>One forward pass of the batch, ended by a device synchronisation.</summary>
    [Benchmark]
    public void Forward()
    {
        unet.PredictEpsilon(x, t, eps);
        device.Synchronize();
    }

    /// <inheritdoc/>
    public Work? WorkOf(string benchmark) => Work.Images(Batch);
}

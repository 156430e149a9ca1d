using BenchmarkDotNet.Attributes;
using PosteriorGpu.Bench.Harness;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;
using PosteriorGpu.Samplers.Unconditional;

namespace PosteriorGpu.Bench.Samplers;

/// <summary>
/// One step of each unconditional sampler (from t = 500 to the end), on a batch of [N, 3, 32, 32]:
/// the network call, the conversion to epsilon, the fused update and the finiteness check (one
/// small device-to-host copy). Each invocation first restores x (one device copy) so that the
/// state does not drift. With the "gaussian" model the sampler's own kernels dominate; with a
/// U-Net the network does.
/// </summary>
public class SamplerStepBench : IThroughput
{
    private GpuDevice device = null!;
    private IScoreModel model = null!;
    private DiffusionSampler sampler = null!;
    private Tensor start = null!, x = null!;
    private static readonly int[] Timesteps = [500];

    /// <summary>Sampler name (<see cref="SamplerFactory.Names"/>).</summary>
    [ParamsSource(nameof(Samplers))]
    public string Sampler { get; set; } = "ddpm";

    /// <summary>Score model: "gaussian" or a U-Net name.</summary>
    [ParamsSource(nameof(ModelNames))]
    public string Model { get; set; } = "gaussian";

    /// <summary>Every sampler.</summary>
    public static IEnumerable<string> Samplers() => SamplerFactory.Names;

    /// <summary>The Gaussian prior always; S32 on a GPU (on 2 CPU cores one S32 step of a batch takes seconds).</summary>
    public static IEnumerable<string> ModelNames() => BenchMode.Pick<string>(["gaussian"], ["gaussian"], ["gaussian", "S32"]);

    /// <summary>Chains per step.</summary>
    public static int Batch => BenchMode.Smoke ? 4 : BenchMode.OnGpu ? 64 : 8;

    [GlobalSetup]
    public void Setup()
    {
        device = GpuDevice.Open();
        model = ScoreModels.Open(device, Model);
        sampler = SamplerFactory.Create(Sampler, model, ScoreModels.Schedule);
        start = Tensor.Zeros(device, Batch, 3, 32, 32);
        AddNoise.Run(start, 1f, new RandomDraw(4, 0, 0));
        x = Tensor.Empty(device, Batch, 3, 32, 32);
        Step();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        start.Dispose(); x.Dispose();
        ((IDisposable)model).Dispose();
        device.Dispose();
    }

    /// <summary>Restore x, then one sampler step, synchronised.</summary>
    [Benchmark]
    public void Step()
    {
        x.CopyFrom(start);
        sampler.SampleFrom(x, Timesteps, 5);
        device.Synchronize();
    }

    /// <inheritdoc/>
    public Work? WorkOf(string benchmark) => Work.Images(Batch);
}

using BenchmarkDotNet.Attributes;
using PosteriorGpu.Bench.Harness;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;
using PosteriorGpu.Samplers.Operators;
using PosteriorGpu.Samplers.Posterior;

namespace PosteriorGpu.Bench.Samplers;

/// <summary>
/// Annealed Langevin posterior sampling (Xun, Gupta, Price) for random-pixel inpainting on
/// [N, 3, 32, 32], from a warm start: one level of ten Langevin steps per invocation, reported per
/// step. Each step is a network call, the likelihood gradient and the fused Langevin update; the
/// invocation also pays the 30 power iterations that estimate ||A||^2 and the level's finiteness check.
/// </summary>
public class PosteriorStepBench : IThroughput
{
    private const int StepsPerInvocation = 10;
    private GpuDevice device = null!;
    private IScoreModel model = null!;
    private InpaintingOperator op = null!;
    private AnnealedLangevinSampler sampler = null!;
    private Tensor start = null!, x = null!, y = null!;

    /// <summary>Score model: "gaussian" or a U-Net name.</summary>
    [ParamsSource(nameof(ModelNames))]
    public string Model { get; set; } = "gaussian";

    /// <summary>The Gaussian prior always; S32 in full runs.</summary>
    public static IEnumerable<string> ModelNames() => SamplerStepBench.ModelNames();

    [GlobalSetup]
    public void Setup()
    {
        device = GpuDevice.Open();
        model = ScoreModels.Open(device, Model);
        op = InpaintingOperator.RandomPixels(device, 3, 32, 32, 0.5, 1);
        sampler = new AnnealedLangevinSampler(model, ScoreModels.Schedule,
            new AnnealedLangevinOptions { Levels = 1, StepsPerLevel = StepsPerInvocation, StepScale = 0.01 });
        int n = SamplerStepBench.Batch;
        start = Tensor.Zeros(device, n, 3, 32, 32);
        AddNoise.Run(start, 1f, new RandomDraw(6, 0, 0));
        x = Tensor.Empty(device, n, 3, 32, 32);
        y = Tensor.Zeros(device, [1, .. op.MeasurementShape]);
        using (var truth = start.SliceBatch(0, 1)) op.Forward(truth, y);
        Steps();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        start.Dispose(); x.Dispose(); y.Dispose(); op.Dispose();
        ((IDisposable)model).Dispose();
        device.Dispose();
    }

    /// <summary>Ten Langevin steps at one level from the warm start (time per step).</summary>
    [Benchmark(OperationsPerInvoke = StepsPerInvocation)]
    public void Steps()
    {
        x.CopyFrom(start);
        sampler.Refine(x, y, op, 0.1f, 7);
        device.Synchronize();
    }

    /// <inheritdoc/>
    public Work? WorkOf(string benchmark) => Work.Images(SamplerStepBench.Batch);
}

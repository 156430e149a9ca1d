using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using PosteriorGpu.Bench.Harness;
using PosteriorGpu.Kernels.Activations;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Embedding;
using PosteriorGpu.Kernels.Gemm;
using PosteriorGpu.Kernels.Layout;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Resample;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Bench.Kernels;

/// <summary>
/// The U-Net's small kernels on an activation [N, 128, 32, 32], each beside its C# reference:
/// SiLU (activations), nearest 2x upsampling (resample), channel concatenation and image-to-token
/// transpose (layout), in-kernel Philox noise (random), the sinusoidal timestep embedding
/// (embedding) and a token Linear layer (GEMM with bias, [N*256, 128] x [128, 128]). All but Linear
/// are memory-bound: GB/s counts bytes read + written once.
/// </summary>
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class LayerKernelsBench : IThroughput
{
    private const int C = 128, S = 32, Dim = 512, Tokens = 256;
    private GpuDevice device = null!;
    private Tensor x = null!, y = null!, up = null!, cat = null!, tokens = null!, t = null!, emb = null!;
    private Tensor lin = null!, linW = null!, linB = null!, linOut = null!;
    private float[] hx = [], hy = [], hup = [], hcat = [], ht = [], hemb = [], hlin = [], hlinW = [], hlinB = [], hlinOut = [];
    private ulong step;

    /// <summary>Images per launch.</summary>
    [ParamsSource(nameof(Batches))]
    public int N { get; set; } = 8;

    /// <summary>Batch by mode and device.</summary>
    public static IEnumerable<int> Batches() => BenchMode.Pick([1], [8], [64]);

    private int Elements => N * C * S * S;

    [GlobalSetup]
    public void Setup()
    {
        device = GpuDevice.Open();
        hx = HostLoops.Random(Elements, 1);
        hy = new float[Elements];
        hup = new float[4 * Elements];
        hcat = new float[2 * Elements];
        ht = Enumerable.Range(0, N).Select(i => (float)(i * 37 % 1000)).ToArray();
        hemb = new float[N * Dim];
        hlin = HostLoops.Random(N * Tokens * C, 2);
        hlinW = HostLoops.Random(C * C, 3);
        hlinB = HostLoops.Random(C, 4);
        hlinOut = new float[N * Tokens * C];
        x = Tensor.FromHost(device, hx, N, C, S, S);
        y = Tensor.Empty(device, N, C, S, S);
        up = Tensor.Empty(device, N, C, 2 * S, 2 * S);
        cat = Tensor.Empty(device, N, 2 * C, S, S);
        tokens = Tensor.Empty(device, N, S * S, C);
        t = Tensor.FromHost(device, ht, N);
        emb = Tensor.Empty(device, N, Dim);
        lin = Tensor.FromHost(device, hlin, N * Tokens, C);
        linW = Tensor.FromHost(device, hlinW, C, C);
        linB = Tensor.FromHost(device, hlinB, C);
        linOut = Tensor.Empty(device, N * Tokens, C);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var tensor in new[] { x, y, up, cat, tokens, t, emb, lin, linW, linB, linOut }) tensor.Dispose();
        device.Dispose();
    }

    [Benchmark, BenchmarkCategory("silu")]
    public void Silu()
    {
        PosteriorGpu.Kernels.Activations.Silu.Run(x, y);
        device.Synchronize();
    }

    [Benchmark(Baseline = true), BenchmarkCategory("silu")]
    public void SiluReference() => PosteriorGpu.Kernels.Activations.Silu.Reference(hx, hy);

    [Benchmark, BenchmarkCategory("upsample")]
    public void Upsample()
    {
        Upsample2x.Run(x, up);
        device.Synchronize();
    }

    [Benchmark(Baseline = true), BenchmarkCategory("upsample")]
    public void UpsampleReference() => Upsample2x.Reference(hx, N * C, S, S, hup);

    [Benchmark, BenchmarkCategory("concat")]
    public void Concat()
    {
        ConcatChannels.Run(x, x, cat);
        device.Synchronize();
    }

    [Benchmark(Baseline = true), BenchmarkCategory("concat")]
    public void ConcatReference() => ConcatChannels.Reference(hx, hx, N, hcat);

    [Benchmark, BenchmarkCategory("tokens")]
    public void ToTokens()
    {
        PosteriorGpu.Kernels.Layout.Tokens.FromImage(x, tokens);
        device.Synchronize();
    }

    [Benchmark(Baseline = true), BenchmarkCategory("tokens")]
    public void ToTokensReference() => PosteriorGpu.Kernels.Layout.Tokens.FromImageReference(hx, N, C, S * S, hy);

    [Benchmark, BenchmarkCategory("noise")]
    public void Noise()
    {
        AddNoise.Run(y, 0.1f, new RandomDraw(1, 2, step++));
        device.Synchronize();
    }

    [Benchmark(Baseline = true), BenchmarkCategory("noise")]
    public void NoiseReference() => AddNoise.Reference(hy, 0.1f, new RandomDraw(1, 2, step++));

    [Benchmark, BenchmarkCategory("embedding")]
    public void Embedding()
    {
        TimestepEmbedding.Run(t, Dim, true, 0f, emb);
        device.Synchronize();
    }

    [Benchmark(Baseline = true), BenchmarkCategory("embedding")]
    public void EmbeddingReference() => TimestepEmbedding.Reference(ht, Dim, true, 0f, hemb);

    [Benchmark, BenchmarkCategory("linear")]
    public void Linear()
    {
        PosteriorGpu.Kernels.Gemm.Linear.Run(lin, linW, linB, linOut);
        device.Synchronize();
    }

    [Benchmark(Baseline = true), BenchmarkCategory("linear")]
    public void LinearReference() => PosteriorGpu.Kernels.Gemm.Linear.Reference(hlin, hlinW, hlinB, hlinOut, N * Tokens, C, C);

    /// <inheritdoc/>
    public Work? WorkOf(string benchmark) => benchmark.Replace("Reference", "") switch
    {
        "Silu" or "ToTokens" or "Noise" => Work.Bytes(8.0 * Elements),
        "Upsample" => Work.Bytes(20.0 * Elements),
        "Concat" => Work.Bytes(16.0 * Elements),
        "Embedding" => Work.Bytes(4.0 * N * (Dim + 1)),
        "Linear" => Work.Flops(2.0 * N * Tokens * C * C),
        _ => null,
    };
}

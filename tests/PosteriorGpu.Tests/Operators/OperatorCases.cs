using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Samplers.Operators;

namespace PosteriorGpu.Tests.Operators;

/// <summary>One operator configuration the parametrised tests run over.</summary>
public sealed record OperatorCase(string Name, Func<GpuDevice, ForwardOperator> Create)
{
    public override string ToString() => Name;
}

/// <summary>Every operator, at small awkward sizes (odd sizes where the operator allows them).</summary>
public static class OperatorCases
{
    public static readonly OperatorCase[] All =
    [
        new("inpainting-box", d => InpaintingOperator.Box(d, 3, 5, 7, 1, 2, 3, 4)),
        new("inpainting-random-pixels", d => InpaintingOperator.RandomPixels(d, 2, 6, 9, 0.4, 7)),
        new("inpainting-half", d => InpaintingOperator.HalfImage(d, 1, 7, 5, ImageHalf.Right)),
        new("inpainting-per-channel-mask", d => new InpaintingOperator(d, 2, 3, 5, Mask01(2 * 3 * 5, 11))),
        new("super-resolution-2", d => new SuperResolutionOperator(d, 3, 6, 10, 2)),
        new("super-resolution-4", d => new SuperResolutionOperator(d, 2, 8, 12, 4)),
        new("blur-gaussian-zero", d => BlurOperator.Gaussian(d, 3, 7, 9, 5, 1.2f, BlurBoundary.Zero)),
        new("blur-uniform-circular", d => BlurOperator.Uniform(d, 2, 6, 5, 3, BlurBoundary.Circular)),
        new("blur-asymmetric-zero", d => new BlurOperator(d, 1, 5, 6, TestData.Random(15, 12), 3, 5, BlurBoundary.Zero)),
        new("blur-asymmetric-circular-wide", d => new BlurOperator(d, 2, 3, 4, TestData.Random(35, 13), 5, 7, BlurBoundary.Circular)),
        new("compressed-sensing-seeded", d => new CompressedSensingOperator(d, [3, 5, 7], 40, 2024)),
        new("compressed-sensing-given", d => new CompressedSensingOperator(d, [17], 9, TestData.Random(9 * 17, 14))),
        new("fourier-lines", d => FourierSubsamplingOperator.RandomLines(d, 3, 8, 16, 0.4, 0.125, 5)),
        new("fourier-given-mask", d => new FourierSubsamplingOperator(d, 1, 4, 32, Mask01(4 * 32, 15))),
        new("phase-retrieval-signs", d => new PhaseRetrievalOperator(d, 2, 8, 4, 2, PhaseMaskKind.RandomSigns, 3)),
        new("phase-retrieval-phases", d => new PhaseRetrievalOperator(d, 1, 4, 8, 2, PhaseMaskKind.UniformPhase, 4)),
        new("one-bit", d => new OneBitOperator(d, [2, 5, 3], 50, 0.5f, 9)),
        new("identity-image", d => new IdentityOperator(d, [2, 3, 5])),
        new("identity-vector", d => new IdentityOperator(d, [7])),
    ];

    public static IEnumerable<OperatorCase> Linear() => All.Where(c => !NonlinearNames.Contains(c.Name));

    public static IEnumerable<OperatorCase> Nonlinear() => All.Where(c => NonlinearNames.Contains(c.Name));

    private static readonly HashSet<string> NonlinearNames = ["phase-retrieval-signs", "phase-retrieval-phases", "one-bit"];

    /// <summary>A 0/1 mask with about half the entries observed.</summary>
    public static float[] Mask01(int n, int seed) => TestData.Random(n, seed).Select(v => v > 0 ? 1f : 0f).ToArray();

    /// <summary>[n, ...item] as one shape array.</summary>
    public static int[] Batched(int n, int[] item) => [n, .. item];
}

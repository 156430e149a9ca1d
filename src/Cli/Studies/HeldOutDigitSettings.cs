using PosteriorGpu.Samplers.Diagnostics;

namespace PosteriorGpu.Cli.Studies;

/// <summary>What every MNIST study on held-out test digits shares (<see cref="PaperFigure4Study"/>,
/// <see cref="TalkComparisonStudy"/>): the model, the FID classifier, which digits, the measurement noise, the batch and
/// the seed.</summary>
internal abstract record HeldOutDigitSettings
{
    /// <summary>The diffusion model folder.</summary>
    public string Model { get; init; } = DefaultPaths.Model;

    /// <summary>The classifier whose features give the FID (<see cref="MnistFid"/>).</summary>
    public string Classifier { get; init; } = DefaultPaths.Classifier;

    /// <summary>The MNIST folder (tools/fetch-mnist); null: the default.</summary>
    public string? Mnist { get; init; }

    /// <summary>Held-out test digits, one posterior sample each (per task and method).</summary>
    public int Digits { get; init; }

    /// <summary>MNIST test-set index of the first held-out digit: 9000 on keeps clear of the README's digits (indices
    /// below 62) and of every digit the samplers were tuned on; the FID reference is test images 0 .. FirstDigit - 1.</summary>
    public int FirstDigit { get; init; } = 9000;

    /// <summary>Measurement noise sigma_y (for one-bit sensing: the noise before the quantizer).</summary>
    public double SigmaY { get; init; } = 0.05;

    /// <summary>Chains per batch.</summary>
    public int Batch { get; init; } = 16;

    /// <summary>Seed of the measurements and the samplers (the same for every method).</summary>
    public ulong Seed { get; init; }
}

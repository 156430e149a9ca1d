namespace PosteriorGpu.Models.Training;

/// <summary>Options of denoising score-matching training; the defaults train a small MNIST U-Net.</summary>
public sealed record TrainingOptions
{
    /// <summary>Images per step.</summary>
    public int BatchSize { get; init; } = 64;

    /// <summary>Optimiser steps in total (a resumed run continues up to this count).</summary>
    public int Steps { get; init; } = 10_000;

    /// <summary>Peak AdamW learning rate (reached after <see cref="WarmupSteps"/> linear warm-up steps).</summary>
    public double LearningRate { get; init; } = 1e-3;

    /// <summary>Linear learning-rate warm-up.</summary>
    public int WarmupSteps { get; init; } = 200;

    /// <summary>AdamW's decoupled weight decay.</summary>
    public double WeightDecay { get; init; }

    /// <summary>AdamW's beta1.</summary>
    public double Beta1 { get; init; } = 0.9;

    /// <summary>AdamW's beta2.</summary>
    public double Beta2 { get; init; } = 0.999;

    /// <summary>AdamW's epsilon.</summary>
    public double AdamEpsilon { get; init; } = 1e-8;

    /// <summary>Gradients are scaled down to this global L2 norm when larger (0: no clipping).</summary>
    public double MaxGradNorm { get; init; } = 1.0;

    /// <summary>Largest EMA decay; early on the decay is min(this, (1 + step) / (10 + step)), as in
    /// diffusers' EMAModel with warm-up, so the average is not dominated by the random start.</summary>
    public double EmaDecay { get; init; } = 0.999;

    /// <summary>Seed of the initial weights, the batch order, the timesteps and the noise.</summary>
    public int Seed { get; init; }

    /// <summary>A checkpoint (EMA model folder + training state) is written every this many steps and at the end.</summary>
    public int CheckpointEvery { get; init; } = 500;

    /// <summary>Steps between lines of the loss log (the reported loss averages them).</summary>
    public int LogEvery { get; init; } = 50;

    /// <summary>Checks the options.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range (the message names it).</exception>
    public void Validate()
    {
        static void Require(bool ok, string name, object value, string rule)
        {
            if (!ok) throw new ArgumentOutOfRangeException(name, value, $"training: {name} {rule}");
        }
        Require(BatchSize >= 1, nameof(BatchSize), BatchSize, "must be at least 1");
        Require(Steps >= 1, nameof(Steps), Steps, "must be at least 1");
        Require(LearningRate > 0 && double.IsFinite(LearningRate), nameof(LearningRate), LearningRate, "must be positive");
        Require(WarmupSteps >= 0, nameof(WarmupSteps), WarmupSteps, "must be >= 0");
        Require(WeightDecay >= 0, nameof(WeightDecay), WeightDecay, "must be >= 0");
        Require(Beta1 is >= 0 and < 1, nameof(Beta1), Beta1, "must be in [0, 1)");
        Require(Beta2 is >= 0 and < 1, nameof(Beta2), Beta2, "must be in [0, 1)");
        Require(AdamEpsilon > 0, nameof(AdamEpsilon), AdamEpsilon, "must be positive");
        Require(MaxGradNorm >= 0, nameof(MaxGradNorm), MaxGradNorm, "must be >= 0");
        Require(EmaDecay is >= 0 and < 1, nameof(EmaDecay), EmaDecay, "must be in [0, 1)");
        Require(CheckpointEvery >= 1, nameof(CheckpointEvery), CheckpointEvery, "must be at least 1");
        Require(LogEvery >= 1, nameof(LogEvery), LogEvery, "must be at least 1");
    }

    /// <summary>The learning rate at (1-based) step t: linear warm-up, then constant.</summary>
    public double LearningRateAt(int step) => WarmupSteps == 0 ? LearningRate : LearningRate * Math.Min(1.0, step / (double)WarmupSteps);

    /// <summary>The EMA decay at (1-based) step t.</summary>
    public double EmaDecayAt(int step) => Math.Min(EmaDecay, (1.0 + step) / (10.0 + step));
}

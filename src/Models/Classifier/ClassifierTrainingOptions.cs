namespace PosteriorGpu.Models.Classifier;

/// <summary>Options of <see cref="ClassifierTrainer"/>; the defaults train the MNIST FID classifier.</summary>
public sealed record ClassifierTrainingOptions
{
    /// <summary>Passes over the training set (a resumed run continues up to this count).</summary>
    public int Epochs { get; init; } = 3;

    /// <summary>Images per step; each epoch is floor(count / batch) steps over a fresh permutation.</summary>
    public int BatchSize { get; init; } = 64;

    /// <summary>Peak Adam learning rate, reached after <see cref="WarmupSteps"/> linear warm-up steps and then
    /// decayed along a cosine to <see cref="FinalLearningRateFraction"/> of itself at the last step.</summary>
    public double LearningRate { get; init; } = 3e-3;

    /// <summary>Linear learning-rate warm-up.</summary>
    public int WarmupSteps { get; init; } = 100;

    /// <summary>The learning rate at the last step, as a fraction of the peak.</summary>
    public double FinalLearningRateFraction { get; init; } = 0.02;

    /// <summary>AdamW's decoupled weight decay.</summary>
    public double WeightDecay { get; init; } = 1e-4;

    /// <summary>Seed of the initial weights and the batch order.</summary>
    public int Seed { get; init; }

    /// <summary>A resumable checkpoint is written every this many steps, at the end of every epoch and when cancelled.</summary>
    public int CheckpointEvery { get; init; } = 200;

    /// <summary>Steps between progress reports (the reported loss and accuracy average them).</summary>
    public int LogEvery { get; init; } = 50;

    /// <summary>Checks the options.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range (the message names it).</exception>
    public void Validate()
    {
        static void Require(bool ok, string name, object value, string rule)
        {
            if (!ok) throw new ArgumentOutOfRangeException(name, value, $"classifier training: {name} {rule}");
        }
        Require(Epochs >= 1, nameof(Epochs), Epochs, "must be at least 1");
        Require(BatchSize >= 1, nameof(BatchSize), BatchSize, "must be at least 1");
        Require(LearningRate > 0 && double.IsFinite(LearningRate), nameof(LearningRate), LearningRate, "must be positive");
        Require(WarmupSteps >= 0, nameof(WarmupSteps), WarmupSteps, "must be >= 0");
        Require(FinalLearningRateFraction is >= 0 and <= 1, nameof(FinalLearningRateFraction), FinalLearningRateFraction, "must be in [0, 1]");
        Require(WeightDecay >= 0, nameof(WeightDecay), WeightDecay, "must be >= 0");
        Require(CheckpointEvery >= 1, nameof(CheckpointEvery), CheckpointEvery, "must be at least 1");
        Require(LogEvery >= 1, nameof(LogEvery), LogEvery, "must be at least 1");
    }

    /// <summary>The learning rate at (1-based) <paramref name="step"/> of <paramref name="totalSteps"/>.</summary>
    public double LearningRateAt(int step, int totalSteps)
    {
        if (step <= WarmupSteps) return LearningRate * step / Math.Max(1, WarmupSteps);
        double progress = Math.Clamp((step - WarmupSteps) / (double)Math.Max(1, totalSteps - WarmupSteps), 0, 1);
        double floor = FinalLearningRateFraction;
        return LearningRate * (floor + (1 - floor) * 0.5 * (1 + Math.Cos(Math.PI * progress)));
    }
}

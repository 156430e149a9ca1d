using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models;
using PosteriorGpu.Models.Priors;
using PosteriorGpu.Models.Schedules;

namespace PosteriorGpu.Tests.Reliability;

/// <summary>What a <see cref="FaultyModel"/> does to the output of its faulty calls.</summary>
public enum Fault
{
    /// <summary>NaN in the chosen items.</summary>
    NaN,
    /// <summary>Positive infinity in the chosen items.</summary>
    Infinity,
    /// <summary>The output times 1e25: finite, but far beyond any data scale (an exploding network).</summary>
    Explode,
    /// <summary>The call throws <see cref="InvalidOperationException"/> (a failing network or driver).</summary>
    Throw,
}

/// <summary>
/// A score model that wraps an exact one and misbehaves on chosen calls. By default from call
/// <see cref="FirstBadCall"/> on; with <see cref="PoisonInput"/>, on the input seen at that call and on
/// any later call with exactly that input, which makes the fault a deterministic function of the input
/// (a replay of the same steps meets it again). Counts calls; <see cref="OnCall"/> runs before each.
/// </summary>
public sealed class FaultyModel(IScoreModel inner, int firstBadCall, Fault fault, int[]? items = null) : IScoreModel
{
    private float[]? poisoned;

    /// <summary>The 1-based call at which the fault starts.</summary>
    public int FirstBadCall { get; } = firstBadCall;

    /// <summary>Fault only the input seen at <see cref="FirstBadCall"/> (deterministic in the input).</summary>
    public bool PoisonInput { get; init; }

    /// <summary>Calls so far.</summary>
    public int Calls { get; private set; }

    /// <summary>Runs with the 1-based call number before each call (e.g. to cancel a run at a chosen step).</summary>
    public Action<int>? OnCall { get; init; }

    /// <inheritdoc/>
    public GpuDevice Device => inner.Device;
    /// <inheritdoc/>
    public int Channels => inner.Channels;
    /// <inheritdoc/>
    public int Height => inner.Height;
    /// <inheritdoc/>
    public int Width => inner.Width;

    /// <inheritdoc/>
    public void PredictEpsilon(Tensor x, ReadOnlySpan<float> timesteps, Tensor epsilon)
    {
        ScoreModelTimesteps.Require(timesteps, x.N, "faulty model");
        Calls++;
        OnCall?.Invoke(Calls);
        bool bad;
        if (PoisonInput)
        {
            var input = x.ToHost();
            if (Calls == FirstBadCall) poisoned = input;
            bad = poisoned is not null && input.AsSpan().SequenceEqual(poisoned);
        }
        else bad = Calls >= FirstBadCall;
        if (bad && fault == Fault.Throw) throw new InvalidOperationException($"faulty model: call {Calls} failed");
        inner.PredictEpsilon(x, timesteps, epsilon);
        if (!bad) return;
        var host = epsilon.ToHost();
        int per = epsilon.ItemLength;
        foreach (int item in items ?? Enumerable.Range(0, epsilon.N).ToArray())
            for (int i = item * per; i < (item + 1) * per; i++)
                host[i] = fault switch { Fault.NaN => float.NaN, Fault.Infinity => float.PositiveInfinity, _ => host[i] * 1e25f };
        epsilon.CopyFrom(host);
    }
}

/// <summary>Cheap exact score models for the reliability tests: diagonal Gaussian priors on [C, H, W].</summary>
public static class CheapPriors
{
    /// <summary>The linear schedule of the tests.</summary>
    public static readonly NoiseSchedule Schedule = NoiseSchedule.Linear(1000, 1e-4, 0.02);

    /// <summary>A diagonal Gaussian prior with seeded means in [-1, 1) and variances in [0.3, 1.3).</summary>
    public static GaussianPrior Gaussian(GpuDevice device, int channels = 1, int height = 4, int width = 4, int seed = 1)
    {
        int d = channels * height * width;
        var mean = TestData.Random(d, seed).Select(v => (double)v).ToArray();
        var variance = TestData.Random(d, seed + 1).Select(v => 0.3 + Math.Abs(v)).ToArray();
        return GaussianPrior.Diagonal(device, channels, height, width, mean, variance, Schedule);
    }
}

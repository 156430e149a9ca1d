using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Models.Priors;

/// <summary>
/// Per-item noise levels as the prior kernels read them: four floats per batch item, a, 1 - a,
/// sqrt(a) and sqrt(1 - a), each computed in double and rounded once, so that 1 - a keeps its
/// precision when a is close to 1 (a float a = 0.9999 would leave 1 - a with three digits).
/// </summary>
internal static class PriorLevels
{
    /// <summary>Floats per item.</summary>
    public const int Stride = Kernels.Priors.NoiseLevelTable.Stride;

    /// <summary>alpha_bar for each of <paramref name="batch"/> items (one timestep per item, or one for all).</summary>
    public static double[] AlphaBars(Func<double, double> alphaBar, ReadOnlySpan<float> timesteps, int batch, string op)
    {
        ScoreModelTimesteps.Require(timesteps, batch, op);
        var a = new double[batch];
        for (int n = 0; n < batch; n++) a[n] = AlphaBar.Evaluate(alphaBar, ScoreModelTimesteps.Of(timesteps, n), n);
        return a;
    }

    /// <summary>The [N, 4] host table for the given alpha_bars.</summary>
    public static float[] Table(ReadOnlySpan<double> alphaBars)
    {
        var levels = new float[alphaBars.Length * Stride];
        for (int n = 0; n < alphaBars.Length; n++)
        {
            double a = alphaBars[n];
            levels[n * Stride] = (float)a;
            levels[n * Stride + 1] = (float)(1 - a);
            levels[n * Stride + 2] = (float)Math.Sqrt(a);
            levels[n * Stride + 3] = (float)Math.Sqrt(1 - a);
        }
        return levels;
    }

    /// <summary>Checks x and epsilon against the prior's [C, H, W] and device.</summary>
    public static void RequireInputs(string op, IScoreModel model, Tensor x, Tensor epsilon)
    {
        Shape.RequireRank(op, x, "x", 4);
        if (x.C != model.Channels || x.H != model.Height || x.W != model.Width)
            throw new ArgumentException(
                $"{op}: the prior is over [{model.Channels}, {model.Height}, {model.Width}] images but x has shape {Shape.Format(x.Shape)}");
        Shape.RequireSame(op, x, "x", epsilon, "epsilon");
        if (!ReferenceEquals(x.Device, model.Device))
            throw new ArgumentException($"{op}: x lives on {x.Device.Description} but the prior on {model.Device.Description}");
    }
}

namespace PosteriorGpu.Models.Schedules;

/// <summary>Converts a model output (epsilon, v or x0) into the (eps, x0) pair every sampler works with.</summary>
/// <remarks>
/// The only place that knows the prediction types, so samplers are written once in (eps, x0) form.
/// With x = sqrt(a) x0 + sqrt(1-a) eps at alpha_cumprod a (diffusers' DDIMScheduler.step, stage 3):
///   epsilon: eps = out,                          x0 = (x - sqrt(1-a) out) / sqrt(a)
///   sample:  x0 = out,                           eps = (x - sqrt(a) out) / sqrt(1-a)
///   v:       x0 = sqrt(a) x - sqrt(1-a) v,       eps = sqrt(a) v + sqrt(1-a) x
/// </remarks>
public static class ModelOutput
{
    /// <summary>The names diffusers uses for prediction_type, in enum order.</summary>
    public static readonly IReadOnlyList<string> SupportedNames = ["epsilon", "v_prediction", "sample"];

    /// <summary>Coefficients with eps = EpsFromOut*out + EpsFromX*x and x0 = X0FromOut*out + X0FromX*x at alpha_cumprod a.</summary>
    /// <exception cref="ArgumentOutOfRangeException">a is not in [0, 1], or a = 0 for epsilon, or a = 1 for sample
    /// (the conversion divides by sqrt(a) or sqrt(1-a) there).</exception>
    public static (double EpsFromOut, double EpsFromX, double X0FromOut, double X0FromX) Coefficients(PredictionType type, double alphaCumprod)
    {
        double a = alphaCumprod;
        if (!(a >= 0 && a <= 1))
            throw new ArgumentOutOfRangeException(nameof(alphaCumprod), a, "alpha_cumprod must be in [0, 1]");
        double sa = Math.Sqrt(a), s1 = Math.Sqrt(1 - a);
        switch (type)
        {
            case PredictionType.Epsilon:
                if (a == 0) throw new ArgumentOutOfRangeException(nameof(alphaCumprod), a, "epsilon prediction cannot recover x0 at alpha_cumprod 0");
                return (1, 0, -s1 / sa, 1 / sa);
            case PredictionType.Sample:
                if (a == 1) throw new ArgumentOutOfRangeException(nameof(alphaCumprod), a, "sample prediction cannot recover eps at alpha_cumprod 1");
                return (-sa / s1, 1 / s1, 1, 0);
            case PredictionType.VPrediction:
                return (sa, s1, -s1, sa);
            default:
                throw new ArgumentOutOfRangeException(nameof(type), type, "unknown prediction type");
        }
    }

    /// <summary>Parses diffusers' prediction_type name ("epsilon", "v_prediction", "sample").</summary>
    public static PredictionType Parse(string name) => name switch
    {
        "epsilon" => PredictionType.Epsilon,
        "v_prediction" => PredictionType.VPrediction,
        "sample" => PredictionType.Sample,
        _ => throw new ArgumentException(
            $"prediction_type '{name}' is not supported; expected one of: {string.Join(", ", SupportedNames)}", nameof(name)),
    };

    /// <summary>diffusers' name for a prediction type.</summary>
    public static string Name(PredictionType type) => type switch
    {
        PredictionType.Epsilon => "epsilon",
        PredictionType.VPrediction => "v_prediction",
        PredictionType.Sample => "sample",
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "unknown prediction type"),
    };
}

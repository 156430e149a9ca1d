using NUnit.Framework;
using PosteriorGpu.Models.Schedules;

namespace PosteriorGpu.Tests.Samplers;

public class ModelOutputTests
{
    // Build x = sqrt(a) x0 + sqrt(1-a) eps, form each kind of output from the known (x0, eps), and check that the
    // coefficients recover both; v = sqrt(a) eps - sqrt(1-a) x0 (Salimans and Ho 2022).
    [TestCase(PredictionType.Epsilon, 0.9999)]
    [TestCase(PredictionType.Epsilon, 0.3)]
    [TestCase(PredictionType.Epsilon, 4.0358e-5)]
    [TestCase(PredictionType.VPrediction, 0.9999)]
    [TestCase(PredictionType.VPrediction, 0.3)]
    [TestCase(PredictionType.VPrediction, 0.0)]
    [TestCase(PredictionType.VPrediction, 1.0)]
    [TestCase(PredictionType.Sample, 0.3)]
    [TestCase(PredictionType.Sample, 0.0)]
    public void Coefficients_RecoverEpsAndX0(PredictionType type, double a)
    {
        const double x0 = 0.7, eps = -1.3;
        double x = Math.Sqrt(a) * x0 + Math.Sqrt(1 - a) * eps;
        double output = type switch
        {
            PredictionType.Epsilon => eps,
            PredictionType.Sample => x0,
            _ => Math.Sqrt(a) * eps - Math.Sqrt(1 - a) * x0,
        };
        var c = ModelOutput.Coefficients(type, a);
        double scale = 1 / Math.Min(Math.Sqrt(a) + 1e-300, 1); // recovering x0 from eps amplifies by 1/sqrt(a)
        Assert.That(c.EpsFromOut * output + c.EpsFromX * x, Is.EqualTo(eps).Within(1e-12 * scale), "eps");
        Assert.That(c.X0FromOut * output + c.X0FromX * x, Is.EqualTo(x0).Within(1e-12 * scale), "x0");
    }

    [Test]
    public void Coefficients_MatchDiffusersFormulas()
    {
        const double a = 0.64; // sqrt(a) = 0.8, sqrt(1-a) = 0.6
        Assert.That(ModelOutput.Coefficients(PredictionType.VPrediction, a), Is.EqualTo((0.8, 0.6, -0.6, 0.8)).Using(TupleTolerance));
        Assert.That(ModelOutput.Coefficients(PredictionType.Epsilon, a), Is.EqualTo((1.0, 0.0, -0.75, 1.25)).Using(TupleTolerance));
        Assert.That(ModelOutput.Coefficients(PredictionType.Sample, a), Is.EqualTo((-0.8 / 0.6, 1 / 0.6, 1.0, 0.0)).Using(TupleTolerance));
    }

    private static readonly Comparison<(double, double, double, double)> TupleTolerance = (p, q) =>
        Math.Abs(p.Item1 - q.Item1) + Math.Abs(p.Item2 - q.Item2) + Math.Abs(p.Item3 - q.Item3) + Math.Abs(p.Item4 - q.Item4) < 1e-12 ? 0 : 1;

    [Test]
    public void Coefficients_RejectDegenerateAlphas()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => ModelOutput.Coefficients(PredictionType.Epsilon, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => ModelOutput.Coefficients(PredictionType.Sample, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => ModelOutput.Coefficients(PredictionType.VPrediction, 1.5));
        Assert.Throws<ArgumentOutOfRangeException>(() => ModelOutput.Coefficients(PredictionType.VPrediction, double.NaN));
        Assert.Throws<ArgumentOutOfRangeException>(() => ModelOutput.Coefficients((PredictionType)7, 0.5));
    }

    [Test]
    public void Parse_AndName_UseDiffusersNames()
    {
        foreach (var t in Enum.GetValues<PredictionType>()) Assert.That(ModelOutput.Parse(ModelOutput.Name(t)), Is.EqualTo(t));
        Assert.That(ModelOutput.Parse("v_prediction"), Is.EqualTo(PredictionType.VPrediction));
        var e = Assert.Throws<ArgumentException>(() => ModelOutput.Parse("v"))!;
        Assert.That(e.Message, Does.Contain("'v'").And.Contain("epsilon, v_prediction, sample"));
    }
}

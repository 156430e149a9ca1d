using MathNet.Numerics.LinearAlgebra;
using NUnit.Framework;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Samplers.Posterior;

namespace PosteriorGpu.Tests.Posterior;

/// <summary>The annealing-schedule type: admissibility, the fewest admissible levels, eta_1 from ||A|| and the accuracy
/// (checked against the exact mutual information of a Gaussian channel), and the paper's protocol (admissible ladder,
/// eta_1 from the accuracy, a constant step size) on exact Gaussian posteriors.</summary>
public class AnnealingScheduleTests
{
    [TestCase(1.0, 0.05)]
    [TestCase(80.0, 0.05)]
    [TestCase(3.0, 1.0)]
    [TestCase(2.0, 1.0)]                 // eta^2 falls by 4: two halvings, 3 levels
    [TestCase(1.4142135623730951, 1.0)] // ratio^2 = 2: admissible with 2 levels
    [TestCase(0.7, 0.7)]
    public void Admissible_IsTheFewestLevelsWhoseIncrementsAreAtMostOne(double first, double last)
    {
        var ladder = AnnealingSchedule.Admissible(first, last, 3);
        Assert.That(ladder.IsAdmissible, Is.True, $"{ladder.LargestIncrement}");
        Assert.That(ladder.AdmissibilityWarning, Is.Null);
        Assert.That(ladder.Levels[0], Is.EqualTo(first).Within(1e-12));
        Assert.That(ladder.Levels[^1], Is.EqualTo(last).Within(1e-12));
        Assert.That(ladder.TotalSteps, Is.EqualTo(3 * ladder.Count));
        if (ladder.Count > 2)   // (a one-level ladder is eta_K alone: trivially admissible)
            Assert.That(AnnealingSchedule.Geometric(first, last, ladder.Count - 1, 3).IsAdmissible, Is.False, "one level fewer");
    }

    [Test]
    public void AFewLevelsOverAWideRange_AreNotAdmissible_AndTheWarningSaysHowManyAreNeeded()
    {
        // The old image preset: 4 levels from 1 to 0.05: (eta_i / eta_{i+1})^2 - 1 = 20^(2/3) - 1 = 6.37.
        var ladder = AnnealingSchedule.Geometric(1, 0.05, 4, 4);
        Assert.That(ladder.LargestIncrement, Is.EqualTo(Math.Pow(20, 2.0 / 3) - 1).Within(1e-9));
        Assert.That(ladder.IsAdmissible, Is.False);
        Assert.That(ladder.AdmissibilityWarning, Does.Contain("6.37").And.Contain($"needs {AnnealingSchedule.AdmissibleCount(1, 0.05)} levels"));
        Assert.That(AnnealingSchedule.AdmissibleCount(1, 0.05), Is.EqualTo(1 + (int)Math.Ceiling(Math.Log2(400))));
    }

    [Test]
    public void TheReport_GivesTheLangevinTimePerLevel()
    {
        var ladder = AnnealingSchedule.Geometric(1, 0.1, 3, 5);
        var report = ladder.Report([0.1, 0.01, 0.001]);
        Assert.That(report.LangevinTimes, Is.EqualTo(new[] { 0.5, 0.05, 0.005 }).Within(1e-12));
        Assert.That(report.TotalLangevinTime, Is.EqualTo(0.555).Within(1e-12));
        Assert.That(report.Levels, Is.EqualTo(ladder.Levels));
        Assert.That(report.Warning, Is.EqualTo(ladder.AdmissibilityWarning));
    }

    [TestCase(1.0, 64, 64, 0.1)]
    [TestCase(2.5, 32, 8, 0.05)]
    [TestCase(0.3, 10, 40, 0.2)]
    public void FirstLevel_KeepsTheMutualInformationOfTheFirstMeasurementWithinPinskersBudget(double norm, int d, int m, double accuracy)
    {
        // For x ~ N(0, I) (the largest mutual information among priors with Cov <= I) and y_1 = A x + eta_1 z,
        // I(x; y_1) = 1/2 log det(I + A A^T / eta_1^2) must be at most 2 epsilon^2 (then E_y TV <= sqrt(I / 2) <= epsilon).
        var rng = new Random(7);
        var a = Matrix<double>.Build.Dense(m, d, (_, _) => rng.NextDouble() - 0.5);
        a *= norm / a.L2Norm();
        double eta = AnnealingSchedule.FirstLevel(norm, d, m, accuracy);
        double mi = MutualInformation(a, eta);
        Assert.That(mi, Is.LessThanOrEqualTo(2 * accuracy * accuracy));

        // And the bound is tight where it can be: A = ||A|| I puts every singular value at ||A||.
        int r = Math.Min(d, m);
        var flat = Matrix<double>.Build.DenseIdentity(r) * norm;
        double tight = MutualInformation(flat, AnnealingSchedule.FirstLevel(norm, r, r, accuracy));
        Assert.That(tight, Is.InRange(0.95 * 2 * accuracy * accuracy, 2 * accuracy * accuracy));
        Assert.That(MutualInformation(flat, 0.9 * AnnealingSchedule.FirstLevel(norm, r, r, accuracy)), Is.GreaterThan(2 * accuracy * accuracy),
            "a smaller eta_1 would break the budget");
    }

    [Test]
    public void FirstLevel_StartsWithinTheAccuracyInTotalVariation_InOneDimension()
    {
        // p(x) = N(0, 1), y = x + eta z: p(x | y) = N(y / (1 + eta^2), eta^2 / (1 + eta^2)); E_y TV(p(x | y), p(x)) by quadrature.
        const double accuracy = 0.1;
        double eta = AnnealingSchedule.FirstLevel(1, 1, 1, accuracy);
        double s2 = eta * eta / (1 + eta * eta), sy = Math.Sqrt(1 + eta * eta);
        double expected = 0;
        for (double y = -8 * sy; y <= 8 * sy; y += sy / 200)
        {
            double py = Gauss(y, 0, sy * sy) * sy / 200;
            double tv = 0;
            for (double x = -10; x <= 10; x += 0.002) tv += Math.Abs(Gauss(x, y / (1 + eta * eta), s2) - Gauss(x, 0, 1)) * 0.002;
            expected += py * tv / 2;
        }
        Assert.That(expected, Is.LessThanOrEqualTo(accuracy));
        Assert.That(expected, Is.GreaterThan(accuracy / 4), "the bound is not wildly loose in one dimension");
    }

    [Test]
    public void Arguments_AreChecked()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => AnnealingSchedule.FirstLevel(1, 4, 4, 1.5));
        Assert.Throws<ArgumentOutOfRangeException>(() => AnnealingSchedule.FirstLevel(0, 4, 4, 0.1));
        Assert.Throws<ArgumentOutOfRangeException>(() => AnnealingSchedule.Geometric(0.1, 1, 3, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => AnnealingSchedule.Geometric(1, 0.1, 3, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => AnnealingSchedule.AdmissibleCount(1, 0));
        using var c = ExactGaussianCase.Create(TestDevices.Cpu, "identity-1");
        var ex = Assert.Throws<InvalidOptionException>(() => new AnnealedLangevinOptions { StepSize = -1 }.Validate(c.Schedule));
        Assert.That(ex!.Message, Does.Contain("StepSize"));
    }

    [Test]
    public void TheSampler_ReportsItsSchedule_AndRefusesAnInadmissibleLadderWhenAskedTo()
    {
        var dev = TestDevices.Cpu;
        using var c = ExactGaussianCase.Create(dev, "identity-1");
        using var x = Tensor.Empty(dev, 8, c.Shape[0], c.Shape[1], c.Shape[2]);
        var options = new AnnealedLangevinOptions { Levels = 3, StepsPerLevel = 2, EtaMax = 4, StepSize = 0.01, PriorSteps = 5 };
        var run = options.CreateSampler(c.Prior, c.Schedule).Sample(x, c.Y, c.Operator, ExactGaussianCase.SigmaY, seed: 1);
        Assert.That(run.Annealing, Is.Not.Null);
        Assert.That(run.Annealing!.Levels, Is.EqualTo(AnnealingSchedule.Geometric(4, ExactGaussianCase.SigmaY, 3, 2).Levels));
        Assert.That(run.Annealing.StepSizes, Is.All.EqualTo(0.01));
        Assert.That(run.Annealing.LangevinTimes, Is.All.EqualTo(0.02).Within(1e-12));
        Assert.That(run.Annealing.Warning, Does.Contain("not admissible"));

        var strict = options with { RequireAdmissible = true };
        var ex = Assert.Throws<InvalidOptionException>(() => strict.CreateSampler(c.Prior, c.Schedule).Sample(x, c.Y, c.Operator, ExactGaussianCase.SigmaY, seed: 1));
        Assert.That(ex!.Message, Does.Contain("Levels").And.Contain("not admissible"));
        var admissible = strict.WithAdmissibleLadder(1, ExactGaussianCase.SigmaY, 1, 1);
        Assert.That(admissible.Levels, Is.EqualTo(AnnealingSchedule.AdmissibleCount(4, ExactGaussianCase.SigmaY)));
        Assert.DoesNotThrow(() => admissible.CreateSampler(c.Prior, c.Schedule).Sample(x, c.Y, c.Operator, ExactGaussianCase.SigmaY, seed: 1));
    }

    [TestCase("identity-1", 0.002, 400)]
    [TestCase("identity-64", null, 20)]
    public void ThePapersProtocol_SamplesTheExactPosterior(string name, double? stepSize, int stepsPerLevel)
    {
        // eta_1 from the accuracy (0.1), the fewest admissible levels down to sigma_y, and either a constant step size
        // small enough for the last level (h L / 2 = 0.1 with L = 1 + 1 / sigma_y^2: variance 1.11x) or the default scaled rule.
        const int chains = 4096;
        var dev = TestDevices.Cpu;
        using var c = ExactGaussianCase.Create(dev, name);
        int d = c.Dimension;
        var options = new AnnealedLangevinOptions { FirstLevelAccuracy = 0.1, StepSize = stepSize, StepsPerLevel = stepsPerLevel }
            .WithAdmissibleLadder(1, ExactGaussianCase.SigmaY, d, d);
        Assert.That(options.EtaMax, Is.EqualTo(Math.Sqrt(d) / 0.2).Within(1e-12));
        using var x = Tensor.Empty(dev, chains, c.Shape[0], c.Shape[1], c.Shape[2]);
        var run = options.CreateSampler(c.Prior, c.Schedule).Sample(x, c.Y, c.Operator, ExactGaussianCase.SigmaY, seed: 4);
        Assert.That(run.Annealing!.Warning, Is.Null);
        var verdict = c.Judge(x.ToHost(), chains);
        TestContext.Out.WriteLine($"{name}: {options.Levels} levels x {stepsPerLevel}, h {stepSize?.ToString() ?? "scaled"}: {verdict}; " +
                                  $"Langevin time {run.Annealing.TotalLangevinTime:G3}");
        Assert.That(verdict.Passes, Is.True, verdict.ToString());
    }

    private static double MutualInformation(Matrix<double> a, double eta)
    {
        var gram = Matrix<double>.Build.DenseIdentity(a.RowCount) + a * a.Transpose() / (eta * eta);
        return 0.5 * gram.Cholesky().DeterminantLn;
    }

    private static double Gauss(double x, double mean, double variance) =>
        Math.Exp(-(x - mean) * (x - mean) / (2 * variance)) / Math.Sqrt(2 * Math.PI * variance);
}

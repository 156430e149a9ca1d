using NUnit.Framework;

namespace PosteriorGpu.Tests.Cli;

public class PosteriorCommandsTests
{
    private static (int Code, string Out, string Err) Run(params string[] args) => CliRun.Run(args);

    [Test]
    public void Robustness_TinyRun_PrintsTheTables()
    {
        var (code, stdout, stderr) = Run("robustness", "--dims", "4", "--chains", "16", "--levels", "2", "--steps-per-level", "3", "--device", "cpu");
        Assert.That(code, Is.EqualTo(0), stderr);
        Assert.That(stdout, Does.Contain("| 4 | plain Langevin | exact |").And.Contain("annealed Langevin (perturbed)"));
    }

    [Test]
    public void BadOptions_AreUsageErrors()
    {
        var (code, _, stderr) = Run("robustness", "--dims", "0", "--device", "cpu");
        Assert.That(code, Is.EqualTo(2));
        Assert.That(stderr, Does.Contain("--dims"));
        (code, _, stderr) = Run("robustness", "--bonud", "3");
        Assert.That(code, Is.EqualTo(2));
        Assert.That(stderr, Does.Contain("--bonud"));
        (code, _, stderr) = Run("posterior-study", "--samplers", "dpnp,foo", "--device", "cpu");
        Assert.That(code, Is.EqualTo(2));
        Assert.That(stderr, Does.Contain("foo"));
    }
}

using System.Diagnostics;
using NUnit.Framework;
using PosteriorGpu.Cli;

namespace PosteriorGpu.Tests.Cli;

/// <summary>The command line's shell: per-command help with defaults, exit codes, completion, warnings, the devices
/// table, and output without escape codes when redirected (the real executable, run as a child process).</summary>
public class CliShellTests
{
    private string dir = "", model = "";

    [OneTimeSetUp]
    public void WriteModel()
    {
        dir = Directory.CreateTempSubdirectory("cli-shell-").FullName;
        model = Path.Combine(dir, "model");
        RandomUNet.Write(RandomUNet.Tiny32, model);
    }

    [OneTimeTearDown]
    public void DeleteDir() => Directory.Delete(dir, recursive: true);

    private static readonly string[] Commands =
        ["posterior", "sample", "train", "devices", "eps", "bench", "posterior-study", "convergence", "robustness", "inpaint-reference", "digits-quality", "mnist-export"];

    [Test]
    public void EveryCommand_HasHelp_WithDescriptionsAndDefaults()
    {
        foreach (string command in Commands)
        {
            var (code, stdout, stderr) = CliRun.Run(command, "--help");
            Assert.That(code, Is.EqualTo(0), command + ": " + stderr);
            Assert.That(stdout, Does.Contain($"posteriorgpu {command} [options]"), command);
            Assert.That(stdout, Does.Contain("--device <kind>"), command);
        }
        var help = CliRun.Run("posterior", "--help").Out;
        Assert.That(help, Does.Contain("--count <int>").And.Contain("[default: 4]"));
        Assert.That(help, Does.Contain("[default: dps]").And.Contain("[default: out/posterior]"));
        Assert.That(help, Does.Contain("DPS runs --steps + --prior-steps"), "DPS's real budget is stated");
        Assert.That(CliRun.Run("posterior", "-h").Out, Is.EqualTo(help));
    }

    [Test]
    public void NoCommand_ListsTheCommands_AndIsAUsageError()
    {
        var (code, stdout, _) = CliRun.Run();
        Assert.That(code, Is.EqualTo(ExitCodes.Usage));
        foreach (string command in Commands) Assert.That(stdout, Does.Contain(command));
        Assert.That(CliRun.Run("--help").Code, Is.EqualTo(0));
        var unknown = CliRun.Run("frobnicate");
        Assert.That(unknown.Code, Is.EqualTo(ExitCodes.Usage));
        Assert.That(unknown.Err, Does.Contain("frobnicate"));
    }

    [Test]
    public void Completion_OffersCommandsOptionsAndValues()
    {
        var root = CliApp.Build(CliContext.Plain(new StringWriter(), new StringWriter()), out _);
        Assert.That(root.Parse("post").GetCompletions().Select(c => c.Label), Does.Contain("posterior").And.Contain("posterior-study"));
        Assert.That(root.Parse("posterior --sam").GetCompletions().Select(c => c.Label), Does.Contain("--sampler").And.Contain("--samples"));
        Assert.That(root.Parse("posterior --task ").GetCompletions().Select(c => c.Label), Is.SupersetOf(new[] { "inpaint", "superres", "onebit" }));
        // The [suggest] directive that dotnet-suggest's shell scripts call.
        var (code, stdout, _) = CliRun.Run("[suggest:20]", "posterior --sampler ");
        Assert.That(code, Is.EqualTo(0));
        Assert.That(stdout, Does.Contain("annealed-langevin").And.Contain("dpnp"));
    }

    [Test]
    public void CountBeyondTheInputs_Warns()
    {
        string input = Path.Combine(dir, "two.npy");
        PosteriorGpu.Models.IO.Npy.Write(input, new float[2 * 1024], 2, 1, 32, 32);
        var (code, _, stderr) = CliRun.Run("posterior", "--model", model, "--input", input, "--count", "100000", "--samples", "1",
            "--steps", "1", "--prior-steps", "1", "--device", "cpu", "--out", Path.Combine(dir, "count"));
        Assert.That(code, Is.EqualTo(0), stderr);
        Assert.That(stderr, Does.Contain("warning: --count 100000").And.Contain("running 2"));
    }

    [Test]
    public void Devices_ReportsMeaningfulMemory()
    {
        var (code, stdout, stderr) = CliRun.Run("devices", "--device", "cpu");
        Assert.That(code, Is.EqualTo(0), stderr);
        Assert.That(stdout, Does.Contain("shared with host"));
        Assert.That(stdout, Does.Not.Contain("8796093022207"), "ILGPU's placeholder for the CPU accelerator");
        Assert.That(stdout, Does.Contain("chosen: cpu"));
        double gib = DevicesCommand.HostMemoryBytes() / (1024.0 * 1024 * 1024);
        Assert.That(gib, Is.InRange(0.1, 1 << 16), "the host's RAM, in a plausible range");
    }

    [Test]
    public void RedirectedOutput_HasNoEscapeCodes_AndErrorsExitCleanly()
    {
        // The real executable with stdout and stderr redirected (as in CI or `> log 2>&1`): plain progress lines, a table
        // without colour, no escape codes; an error under --verbose exits 1 with its stack trace, never an abort.
        string exe = Path.Combine(AppContext.BaseDirectory, "PosteriorGpu.Cli.dll");
        var run = Start(exe, "posterior", "--model", model, "--count", "1", "--samples", "2", "--steps", "2", "--prior-steps", "1",
            "--device", "cpu", "--out", Path.Combine(dir, "redirected"));
        Assert.That(run.Code, Is.EqualTo(0), run.Err);
        // Ordinal: a culture-aware Contains ignores control characters and would find them anywhere.
        Assert.That((run.Out + run.Err).Contains('\u001b'), Is.False, "no escape codes: " + run.Out + run.Err);
        Assert.That(run.Err, Does.Contain("posterior: 100% 3/3 steps"));
        Assert.That(run.Out, Does.Contain("PSNR"));

        var failed = Start(exe, "posterior", "--model", Path.Combine(dir, "nowhere"), "--verbose");
        Assert.That(failed.Code, Is.EqualTo(1), failed.Err);
        Assert.That(failed.Err, Does.Contain("model folder").And.Contain("   at "));
        Assert.That(failed.Err, Does.Not.Contain("Unhandled exception"));
    }

    private static (int Code, string Out, string Err) Start(string dll, params string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(dll);
        foreach (string a in args) info.ArgumentList.Add(a);
        using var p = Process.Start(info)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(5))) p.Kill(entireProcessTree: true);
        return (p.ExitCode, stdout.Result, stderr.Result);
    }
}

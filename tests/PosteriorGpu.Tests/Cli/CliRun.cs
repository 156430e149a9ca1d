using PosteriorGpu.Cli;

namespace PosteriorGpu.Tests.Cli;

/// <summary>Runs `posteriorgpu` in-process and captures its exit code and both streams.</summary>
public static class CliRun
{
    public static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CliApp.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }
}

namespace PosteriorGpu.Cli;

/// <summary>A mistake in the command line found after parsing (a flag the chosen sampler does not read, a sampler that
/// needs a linear operator, ...): exit code 2, like the parser's own errors.</summary>
internal sealed class UsageException(string message) : Exception(message);

using BenchmarkDotNet.Running;

namespace PosteriorGpu.Bench;

/// <summary>Entry point: BenchmarkDotNet's switcher over every suite in this assembly
/// (e.g. `dotnet run -c Release --project bench/PosteriorGpu.Bench -- --filter '*Elementwise*' --job short`).</summary>
public static class Program
{
    public static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
}

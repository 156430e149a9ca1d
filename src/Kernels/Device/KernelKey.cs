using System.Collections.Concurrent;

namespace PosteriorGpu.Kernels.Device;

/// <summary>
/// The cache keys of generic launchers ("key-TypeName" for a tile or configuration type <typeparamref name="T"/>),
/// composed once per (key, type): an interpolated key per launch would allocate a string on every launch, and a
/// sampler step in steady state allocates nothing (tests/Api/AllocationTests).
/// </summary>
internal static class KernelKey<T>
{
    private static readonly ConcurrentDictionary<string, string> Keys = new();

    /// <summary>"<paramref name="key"/>-<c>typeof(T).Name</c>", the same string instance on every call.</summary>
    public static string Of(string key) => Keys.GetOrAdd(key, static k => $"{k}-{typeof(T).Name}");
}

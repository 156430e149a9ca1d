namespace PosteriorGpu.Samplers.Unconditional;

/// <summary>How a run asked for <see cref="DiffusionSampler.GraphReplay"/> launched its steps.</summary>
/// <param name="DeviceTable">Whether its steps read their scalars from a per-run device table (the form a graph replays);
/// false: the plain path, each step's scalars passed as kernel arguments.</param>
/// <param name="StepsReplayed">Steps run by replaying a CUDA graph (the others launched their kernels one by one: the first
/// window, which warms up, and a last window shorter than the divergence check interval).</param>
/// <param name="GraphLaunches">Replays of the graph (one per window of <see cref="DiffusionSampler.DivergenceCheckInterval"/> steps).</param>
/// <param name="NodesPerGraph">Launches and memsets in the captured graph (0 without one).</param>
/// <param name="Fallback">Why steps were not replayed (null when every window that could be was), e.g. not a CUDA device.</param>
public sealed record StepLaunchReport(bool DeviceTable, int StepsReplayed, int GraphLaunches, int NodesPerGraph, string? Fallback);

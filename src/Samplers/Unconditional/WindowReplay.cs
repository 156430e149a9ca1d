using PosteriorGpu.Kernels.Device;

namespace PosteriorGpu.Samplers.Unconditional;

/// <summary>
/// The loop of graph replay, shared by the samplers whose steps read their scalars from a per-run device table
/// (<see cref="DiffusionSampler.GraphReplay"/>, <see cref="Posterior.DpsOptions.GraphReplay"/>): every step is the same
/// launches, so one window of <c>window</c> steps (the divergence ring's interval, so its slots repeat too),
/// captured as a CUDA graph, serves every later full window. The first window runs plainly (kernels load, pools grow);
/// so does a last, shorter one, and every step where capture is unavailable (off CUDA: the table's steps one by one).
/// </summary>
internal static class WindowReplay
{
    /// <summary>Runs <paramref name="steps"/> steps: <paramref name="step"/>(i) launches step i's work (captured once, so it
    /// must take no per-step value from the host), <paramref name="finish"/>(i) does its host side (divergence checks when
    /// due, progress) after the step or the replayed window that holds it. <paramref name="report"/> is called once, also
    /// when a step throws.</summary>
    public static void Run(GpuDevice device, int steps, int window, Action<int> step, Action<int> finish,
        Func<GpuDevice, Action, ILaunchReplay>? captureForTests, Action<StepLaunchReport> report, CancellationToken cancellationToken)
    {
        string? fallback = captureForTests is null ? CudaGraph.Unavailable(device) : null;
        ILaunchReplay? graph = null;
        int replayed = 0;
        try
        {
            for (int i = 0; i < steps;)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (fallback is null && i >= window && i + window <= steps)
                {
                    if (graph is null)
                    {
                        int start = i;
                        void Window() { for (int j = 0; j < window; j++) step(start + j); }
                        try { graph = captureForTests?.Invoke(device, Window) ?? CudaGraph.Capture(device, Window); }
                        catch (CudaGraphException e) { fallback = e.Message; }
                    }
                    if (graph is not null)
                    {
                        graph.Launch();
                        replayed += window;
                        for (int j = 0; j < window; j++) finish(i + j);
                        i += window;
                        continue;
                    }
                }
                step(i);
                finish(i);
                i++;
            }
        }
        finally
        {
            if (fallback is null && steps < 2 * window)
                fallback = $"{steps} steps hold no full window of {window} after the first, which warms up";
            report(new StepLaunchReport(true, replayed, graph?.Launches ?? 0, graph?.Nodes ?? 0, fallback));
            graph?.Dispose();
        }
    }
}

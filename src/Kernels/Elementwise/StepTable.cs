using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Norm;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Elementwise;

/// <summary>
/// A run's per-step scalars in device memory: a table of one row per step (written once, before the first step) and
/// a step counter that the device advances itself. <see cref="Select"/> copies row counter[0] into a small "current"
/// tensor (the scalars the step's kernels read), broadcasts the row's first value (the timestep) into the model's
/// per-item timesteps, and advances the counter. A step built this way launches the same kernels with the same
/// arguments at every step: what a CUDA graph needs to replay one captured step (or window of steps) for all of them.
/// Counters are held as floats (exact below 2^24 steps).
/// </summary>
public static class StepTable
{
    /// <summary>Most steps a table may hold (the counter is a float).</summary>
    public const int MaxSteps = 1 << 24;

    /// <summary>The specification: current = table[counter], timesteps[n] = current[0], counter += 1.</summary>
    public static void Reference(ReadOnlySpan<float> table, int width, Span<float> counter, Span<float> current, Span<float> timesteps)
    {
        int i = (int)counter[0];
        table.Slice(i * width, width).CopyTo(current);
        timesteps.Fill(current[0]);
        counter[0] = i + 1;
    }

    /// <summary>One group: every thread reads the counter before thread 0 advances it.</summary>
    internal static void Kernel(int width, ArrayView<float> table, ArrayView<float> counter, ArrayView<float> current, ArrayView<float> timesteps)
    {
        int t = Group.IdxX, threads = Group.DimX;
        int i = (int)counter[0];
        for (int k = t; k < width; k += threads) current[k] = table[i * width + k];
        float timestep = table[i * width];
        for (int n = t; n < timesteps.IntLength; n += threads) timesteps[n] = timestep;
        Group.Barrier();
        if (t == 0) counter[0] = i + 1;
    }

    /// <summary>Selects the counter's row of <paramref name="table"/> ([steps, width]) into <paramref name="current"/>
    /// ([width]) and <paramref name="timesteps"/> ([N], the row's first value each), and advances <paramref name="counter"/> ([1]).</summary>
    /// <exception cref="ArgumentException">A shape does not fit, or the tensors live on different devices.</exception>
    public static void Select(Tensor table, Tensor counter, Tensor current, Tensor timesteps)
    {
        const string op = "step table";
        Shape.RequireRank(op, table, "table", 2);
        int width = table.Shape[1];
        Shape.Require(op, counter, "counter", 1);
        Shape.Require(op, current, "current", width);
        Shape.RequireRank(op, timesteps, "timesteps", 1);
        Shape.RequireSameDevice(op, table, counter);
        Shape.RequireSameDevice(op, table, current);
        Shape.RequireSameDevice(op, table, timesteps);
        if (table.Shape[0] > MaxSteps) throw new ArgumentException($"{op}: {table.Shape[0]} steps exceed the {MaxSteps} a float counter counts exactly");
        var device = table.Device;
        var k = device.Kernel("step-table-select", static acc => acc.LoadStreamKernel<int, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>>(Kernel));
        k(new KernelConfig(1, GroupNorm.GroupThreads(device)), width, table.View, counter.View, current.View, timesteps.View);
    }
}

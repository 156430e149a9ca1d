using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Activations;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Norm;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Embedding;

/// <summary>
/// diffusers' time path outside training in one launch: y = linear_2(SiLU(linear_1(sinusoidal(t)))), then SiLU when asked
/// (the form every resnet reads). Unfused it is three launches (the embedding, two GEMMs with n = batch); at batch 1 each is
/// a few microseconds of launch for almost no work. Each group of threads takes one item and a chunk of linear_2's outputs:
/// it computes the sinusoid (the same functions as <see cref="TimestepEmbedding"/>, so the same values) and the whole hidden
/// layer itself into shared memory (every group of an item recomputes it: dim x hidden multiply-adds, small beside the
/// chunk's hidden x <see cref="OutputsPerGroup"/> for the models here), then its outputs, a warp each: a coalesced weight
/// row and a shuffle sum. Weights are PyTorch's [out, in]; both linears have biases.
/// </summary>
public static class TimestepMlp
{
    /// <summary>Largest sinusoid and hidden widths (shared memory: (1,024 + 4,096) floats a group).</summary>
    public const int MaxDim = 1024, MaxHidden = 4096;

    /// <summary>linear_2 outputs per group of threads.</summary>
    internal const int OutputsPerGroup = 32;

    /// <summary>Whether a model uses the fused launch on this device: where the GEMM core runs (GPUs, and the CPU when it
    /// takes the GPU's paths). On the CPU accelerator the three launches stay, so that inference there is bitwise the
    /// training path's (which keeps the hidden layer for the backward pass).</summary>
    public static bool IsFused(GpuDevice device) => Gemm.Gemm.UsesCore(device, Gemm.GemmVariant.Auto);

    /// <summary>Whether the fused launch serves these widths (else: the embedding and two linear launches).</summary>
    public static bool Serves(int dim, int hidden) => dim is > 0 and <= MaxDim && hidden is > 0 and <= MaxHidden;

    /// <summary>The specification, in double after the float sinusoid of <see cref="TimestepEmbedding.Reference"/>.</summary>
    public static void Reference(ReadOnlySpan<float> timesteps, int dim, bool flipSinToCos, float downscaleFreqShift,
        ReadOnlySpan<float> w1, ReadOnlySpan<float> b1, int hidden, ReadOnlySpan<float> w2, ReadOnlySpan<float> b2, int outputs,
        bool siluOut, Span<float> y)
    {
        var s = new float[timesteps.Length * dim];
        TimestepEmbedding.Reference(timesteps, dim, flipSinToCos, downscaleFreqShift, s);
        var h = new double[hidden];
        for (int n = 0; n < timesteps.Length; n++)
        {
            for (int j = 0; j < hidden; j++)
            {
                double acc = b1[j];
                for (int i = 0; i < dim; i++) acc += (double)w1[j * dim + i] * s[n * dim + i];
                h[j] = acc / (1 + Math.Exp(-acc));
            }
            for (int o = 0; o < outputs; o++)
            {
                double acc = b2[o];
                for (int j = 0; j < hidden; j++) acc += w2[o * hidden + j] * h[j];
                y[n * outputs + o] = (float)(siluOut ? acc / (1 + Math.Exp(-acc)) : acc);
            }
        }
    }

    /// <summary>The launch's scalars.</summary>
    internal struct Shape
    {
        public int Dim, Hidden, Outputs, Chunks, Flip, PerItem, SiluOut;
        public float NegLogMaxPeriod, Denominator, Timestep;
    }

    internal static void Kernel(Shape p, ArrayView<float> timesteps, ArrayView<float> w1, ArrayView<float> b1, ArrayView<float> w2,
        ArrayView<float> b2, ArrayView<float> y)
    {
        var s = SharedMemory.Allocate<float>(MaxDim);
        var hidden = SharedMemory.Allocate<float>(MaxHidden);
        int item = Grid.IdxX / p.Chunks, chunk = Grid.IdxX - item * p.Chunks;
        int t = Group.IdxX, threads = Group.DimX;
        int lane = Warp.LaneIdx, warp = Warp.WarpIdx, warps = threads / Warp.WarpSize;
        float timestep = p.PerItem != 0 ? timesteps[item] : p.Timestep;

        for (int j = t; j < p.Dim; j += threads)
            s[j] = TimestepEmbedding.Value(timestep, j, p.Dim, p.Flip, p.NegLogMaxPeriod, p.Denominator, 1f);
        Group.Barrier();

        for (int j = warp; j < p.Hidden; j += warps)
        {
            float acc = 0;
            for (int i = lane; i < p.Dim; i += Warp.WarpSize) acc += w1[j * p.Dim + i] * s[i];
            acc = GroupNormSlab.WarpSum(acc);
            if (lane == 0) hidden[j] = Silu.Apply(acc + b1[j]);
        }
        Group.Barrier();

        int o0 = chunk * OutputsPerGroup, end = Math.Min(o0 + OutputsPerGroup, p.Outputs);
        for (int o = o0 + warp; o < end; o += warps)
        {
            float acc = 0;
            for (int j = lane; j < p.Hidden; j += Warp.WarpSize) acc += w2[o * p.Hidden + j] * hidden[j];
            acc = GroupNormSlab.WarpSum(acc) + b2[o];
            if (lane == 0) y[item * p.Outputs + o] = p.SiluOut != 0 ? Silu.Apply(acc) : acc;
        }
    }

    /// <summary>y [N, outputs] for one timestep shared by the N items (a kernel argument: nothing is copied).</summary>
    /// <exception cref="ArgumentException">A shape does not fit, or <see cref="Serves"/> is false.</exception>
    public static void Run(float timestep, int dim, bool flipSinToCos, float downscaleFreqShift, Tensor w1, Tensor b1, Tensor w2, Tensor b2,
        bool siluOut, Tensor y) =>
        Launch(null, timestep, dim, flipSinToCos, downscaleFreqShift, w1, b1, w2, b2, siluOut, y);

    /// <summary>y [N, outputs] for one timestep per item (a device tensor [N]).</summary>
    /// <exception cref="ArgumentException">A shape does not fit, or <see cref="Serves"/> is false.</exception>
    public static void Run(Tensor timesteps, int dim, bool flipSinToCos, float downscaleFreqShift, Tensor w1, Tensor b1, Tensor w2, Tensor b2,
        bool siluOut, Tensor y)
    {
        Tensors.Shape.Require("timestep mlp", timesteps, "timesteps", y.N);
        Launch(timesteps, 0f, dim, flipSinToCos, downscaleFreqShift, w1, b1, w2, b2, siluOut, y);
    }

    private static void Launch(Tensor? timesteps, float timestep, int dim, bool flipSinToCos, float downscaleFreqShift, Tensor w1, Tensor b1,
        Tensor w2, Tensor b2, bool siluOut, Tensor y)
    {
        const string op = "timestep mlp";
        Tensors.Shape.RequireRank(op, y, "y", 2);
        Tensors.Shape.RequireRank(op, w1, "linear_1 weight", 2);
        Tensors.Shape.RequireRank(op, w2, "linear_2 weight", 2);
        int hidden = w1.Shape[0], outputs = w2.Shape[0];
        Tensors.Shape.Require(op, w1, "linear_1 weight", hidden, dim);
        Tensors.Shape.Require(op, b1, "linear_1 bias", hidden);
        Tensors.Shape.Require(op, w2, "linear_2 weight", outputs, hidden);
        Tensors.Shape.Require(op, b2, "linear_2 bias", outputs);
        Tensors.Shape.Require(op, y, "y", y.N, outputs);
        if (!Serves(dim, hidden))
            throw new ArgumentException($"{op}: widths {dim} -> {hidden} exceed the fused launch's {MaxDim} -> {MaxHidden}");
        int half = dim / 2;
        float denominator = (float)(half - (double)downscaleFreqShift);
        if (half > 0 && denominator == 0f)
            throw new ArgumentOutOfRangeException(nameof(downscaleFreqShift), downscaleFreqShift,
                $"{op}: dim/2 = {half} equals downscaleFreqShift, so the exponent divides by zero");
        if (y.N == 0 || outputs == 0) return;
        int chunks = (outputs + OutputsPerGroup - 1) / OutputsPerGroup;
        var shape = new Shape
        {
            Dim = dim, Hidden = hidden, Outputs = outputs, Chunks = chunks, Flip = flipSinToCos ? 1 : 0, PerItem = timesteps is null ? 0 : 1,
            SiluOut = siluOut ? 1 : 0, NegLogMaxPeriod = (float)-Math.Log(10000), Denominator = denominator, Timestep = timestep,
        };
        var device = y.Device;
        int threads = GroupNorm.GroupThreads(device);   // a power of two up to 256: whole warps
        var k = device.Kernel("timestep-mlp", static acc => acc.LoadStreamKernel<Shape, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>>(Kernel));
        // The uniform form passes y as the unread timesteps view (a kernel argument must be a valid view).
        k(new KernelConfig(y.N * chunks, threads), shape, (timesteps ?? y).View, w1.View, b1.View, w2.View, b2.View, y.View);
    }
}

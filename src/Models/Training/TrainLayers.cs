using PosteriorGpu.Kernels.Conv;
using PosteriorGpu.Kernels.Gemm;
using PosteriorGpu.Kernels.Norm;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Models.Training;

/// <summary>PyTorch's default initialisation of Conv2d and Linear (kaiming_uniform with a = sqrt(5)):
/// weights and biases uniform in +-1/sqrt(fan_in).</summary>
internal static class Init
{
    public static float[] Uniform(Random rng, int count, int fanIn)
    {
        double bound = 1 / Math.Sqrt(fanIn);
        var a = new float[count];
        for (int i = 0; i < a.Length; i++) a[i] = (float)((2 * rng.NextDouble() - 1) * bound);
        return a;
    }

    public static float[] Constant(int count, float value)
    {
        var a = new float[count];
        Array.Fill(a, value);
        return a;
    }
}

/// <summary>A trainable nn.Conv2d: the forward kernel with its fused epilogue, and its gradients.</summary>
internal sealed class TrainConv
{
    private readonly Parameter weight, bias;
    private readonly Conv2dParams p;
    private readonly int kernel;

    public TrainConv(ParameterStore s, Random rng, string prefix, int cin, int cout, int kernel, Conv2dParams p)
    {
        int fanIn = cin * kernel * kernel;
        weight = s.Add(prefix + ".weight", [cout, cin, kernel, kernel], Init.Uniform(rng, cout * fanIn, fanIn));
        bias = s.Add(prefix + ".bias", [cout], Init.Uniform(rng, cout, fanIn));
        this.p = p;
        this.kernel = kernel;
        OutChannels = cout;
    }

    public int OutChannels { get; }

    public Tensor Forward(Tensor x, TensorPool pool, Tensor? channelAdd = null, Tensor? residual = null, float outputScale = 1f)
    {
        var (ho, wo) = p.OutputSize(x.H, x.W, kernel, kernel);
        var y = pool.Rent(x.N, OutChannels, ho, wo);
        Conv2d.Run(x, weight.Value, bias.Value, y, p, channelAdd, residual, outputScale);
        return y;
    }

    public void ForwardInto(Tensor x, Tensor y) => Conv2d.Run(x, weight.Value, bias.Value, y, p);

    /// <summary>Weight and bias gradients from the layer's input x and dY (the gradient of conv(x) + b);
    /// dX (+)= the input gradient when <paramref name="dx"/> is given.</summary>
    public void Backward(Tensor x, Tensor dy, Tensor? dx, bool accumulateDx)
    {
        Conv2dBackward.WeightGradient(x, dy, p, weight.Gradient, bias.Gradient);
        if (dx is not null) Conv2dBackward.InputGradient(dy, weight.Value, p, dx, accumulateDx);
    }
}

/// <summary>A trainable nn.Linear on the last dimension.</summary>
internal sealed class TrainLinear
{
    private readonly Parameter weight, bias;

    public TrainLinear(ParameterStore s, Random rng, string prefix, int input, int output)
    {
        weight = s.Add(prefix + ".weight", [output, input], Init.Uniform(rng, output * input, input));
        bias = s.Add(prefix + ".bias", [output], Init.Uniform(rng, output, input));
        Out = output;
    }

    public int Out { get; }

    public Tensor Forward(Tensor x, TensorPool pool)
    {
        var y = x.Rank == 3 ? pool.Rent(x.Shape[0], x.Shape[1], Out) : pool.Rent(x.Shape[0], Out);
        Linear.Run(x, weight.Value, bias.Value, y);
        return y;
    }

    public void Backward(Tensor x, Tensor dy, Tensor? dx, bool accumulateDx)
    {
        LinearBackward.WeightGradient(x, dy, weight.Gradient, bias.Gradient);
        if (dx is not null) LinearBackward.InputGradient(dy, weight.Value, dx, accumulateDx);
    }
}

/// <summary>A trainable nn.GroupNorm (affine: gamma = 1, beta = 0 initially), optionally with SiLU fused.</summary>
internal sealed class TrainGroupNorm
{
    private readonly Parameter gamma, beta;
    private readonly int groups;
    private readonly float eps;

    public TrainGroupNorm(ParameterStore s, string prefix, int channels, int groups, float eps)
    {
        if (channels % groups != 0)
            throw new ArgumentException($"{prefix}: {channels} channels cannot be split into {groups} groups");
        gamma = s.Add(prefix + ".weight", [channels], Init.Constant(channels, 1f));
        beta = s.Add(prefix + ".bias", [channels], Init.Constant(channels, 0f));
        this.groups = groups;
        this.eps = eps;
    }

    public Tensor Forward(Tensor x, TensorPool pool, bool silu)
    {
        var y = pool.Rent(x.Shape);
        GroupNorm.Run(x, groups, gamma.Value, beta.Value, eps, y, silu);
        return y;
    }

    public void Backward(Tensor x, bool silu, Tensor dy, Tensor dx, bool accumulateDx) =>
        GroupNormBackward.Run(x, groups, gamma.Value, beta.Value, eps, silu, dy, dx, accumulateDx, gamma.Gradient, beta.Gradient, false);
}

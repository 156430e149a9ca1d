using PosteriorGpu.Kernels.Conv;
using PosteriorGpu.Kernels.Gemm;
using PosteriorGpu.Kernels.Norm;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Models.UNet;

/// <summary>nn.Conv2d with weights [Cout, Cin, k, k]: the forward kernel with its fused epilogue (bias, a
/// per-channel add, a residual, an output scale) and the gradients of conv(x) + b.</summary>
internal sealed class Conv2dLayer
{
    private readonly Parameter weight, bias;
    private readonly Conv2dParams p;
    private readonly int kernel;

    public Conv2dLayer(ParameterStore s, string prefix, int cin, int cout, int kernel, Conv2dParams p)
    {
        int fanIn = cin * kernel * kernel;
        weight = s.Add(prefix + ".weight", [cout, cin, kernel, kernel], ParameterInit.Uniform(fanIn));
        bias = s.Add(prefix + ".bias", [cout], ParameterInit.Uniform(fanIn));
        this.p = p;
        this.kernel = kernel;
        InChannels = cin;
        OutChannels = cout;
    }

    public int OutChannels { get; }

    /// <summary>Input channels (Cin of the weights).</summary>
    public int InChannels { get; }

    /// <summary>The output shape for an input [n, Cin, h, w].</summary>
    public int[] OutputShape(int n, int h, int w)
    {
        var (ho, wo) = p.OutputSize(h, w, kernel, kernel);
        return [n, OutChannels, ho, wo];
    }

    /// <summary>conv(x) + b with the fused epilogue, into <paramref name="into"/> (a view the caller owns, e.g. its part of
    /// a concatenation) or a rented tensor.</summary>
    public Tensor Forward(Tensor x, TensorPool pool, Tensor? channelAdd = null, Tensor? residual = null, float outputScale = 1f,
        Tensor? into = null)
    {
        var y = into ?? pool.Rent(OutputShape(x.N, x.H, x.W));
        Conv2d.Run(x, weight.Value, bias.Value, y, p, channelAdd, residual, outputScale);
        return y;
    }

    /// <summary>The layer applied to norm(x) (then SiLU when <paramref name="silu"/>) without writing the normalised tensor
    /// (<see cref="Conv2dNormalized"/>; the caller has checked <see cref="Conv2dNormalized.Serves"/>), with norm's table
    /// <paramref name="prepared"/> when the layer before made it. With <paramref name="next"/>, the same launch prepares the
    /// table of that norm over the result (<paramref name="preparedNext"/>; null where the shapes do not allow it).</summary>
    public Tensor ForwardNormalized(Tensor x, GroupNormLayer norm, bool silu, TensorPool pool, out PreparedGroupNorm? preparedNext,
        OutputNorm next = default, Tensor? channelAdd = null, Tensor? residual = null, float outputScale = 1f, Tensor? into = null,
        PreparedGroupNorm? prepared = null)
    {
        var y = into ?? pool.Rent(OutputShape(x.N, x.H, x.W));
        preparedNext = null;
        if (next.IsEmpty)
            Conv2dNormalized.Run(x, norm.Groups, norm.Gamma, norm.Beta, norm.Eps, silu, weight.Value, bias.Value, y, p, channelAdd, residual,
                outputScale, prepared);
        else
            preparedNext = Conv2dNormalized.RunPreparingNext(x, norm.Groups, norm.Gamma, norm.Beta, norm.Eps, silu, weight.Value, bias.Value, y, p,
                next, channelAdd, residual, outputScale, prepared);
        return y;
    }

    /// <summary>The layer applied to norm(x) (then SiLU) plus <paramref name="shortcut"/> applied to
    /// <paramref name="shortcutInput"/>, in one launch (<see cref="Conv2dNormalized.RunWithShortcut(Tensor, int, Tensor, Tensor, float, bool, Tensor, Tensor?, Tensor, Tensor, Tensor?, Tensor, Conv2dParams, float, PreparedGroupNorm?)"/>):
    /// a resnet's conv2 and conv_shortcut, the shortcut's output never written; <paramref name="prepared"/> and
    /// <paramref name="next"/> as in <see cref="ForwardNormalized"/>.</summary>
    public Tensor ForwardNormalizedWithShortcut(Tensor x, GroupNormLayer norm, bool silu, Conv2dLayer shortcut, Tensor shortcutInput,
        TensorPool pool, out PreparedGroupNorm? preparedNext, OutputNorm next = default, float outputScale = 1f, Tensor? into = null,
        PreparedGroupNorm? prepared = null)
    {
        var y = into ?? pool.Rent(OutputShape(x.N, x.H, x.W));
        preparedNext = null;
        if (next.IsEmpty)
            Conv2dNormalized.RunWithShortcut(x, norm.Groups, norm.Gamma, norm.Beta, norm.Eps, silu, weight.Value, bias.Value,
                shortcutInput, shortcut.weight.Value, shortcut.bias.Value, y, p, outputScale, prepared);
        else
            preparedNext = Conv2dNormalized.RunWithShortcutPreparingNext(x, norm.Groups, norm.Gamma, norm.Beta, norm.Eps, silu, weight.Value,
                bias.Value, shortcutInput, shortcut.weight.Value, shortcut.bias.Value, y, p, next, outputScale, prepared);
        return y;
    }

    /// <summary><see cref="Forward"/> (no channel add or residual) that also prepares <paramref name="next"/>'s table over the
    /// result in the same launch where it can (<see cref="Conv2d.RunPreparingNext(Tensor, Tensor, Tensor?, Tensor, Conv2dParams, OutputNorm)"/>;
    /// conv_in or a downsampler before a resnet); null where it does not.</summary>
    public Tensor ForwardPreparing(Tensor x, TensorPool pool, OutputNorm next, out PreparedGroupNorm? preparedNext, Tensor? into = null)
    {
        var y = into ?? pool.Rent(OutputShape(x.N, x.H, x.W));
        preparedNext = Conv2d.RunPreparingNext(x, weight.Value, bias.Value, y, p, next);
        return y;
    }

    /// <summary>The layer applied to the nearest 2x upsampling of x without writing it (<see cref="Conv2dUpsampled"/>: one
    /// launch where the GEMM core runs); the result is bitwise that of upsampling first. With <paramref name="next"/>, the same
    /// launch prepares what it asks of the result's statistics (<paramref name="preparedNext"/>: the table, where made).</summary>
    public Tensor ForwardUpsampled(Tensor x, TensorPool pool, out PreparedGroupNorm? preparedNext, OutputNorm next = default, Tensor? into = null)
    {
        var y = into ?? pool.Rent(OutputShape(x.N, 2 * x.H, 2 * x.W));
        preparedNext = Conv2dUpsampled.RunPreparingNext(x, weight.Value, bias.Value, y, p, next);
        return y;
    }

    /// <summary>Writes into a caller-owned output (its shape is checked by the kernel).</summary>
    public void ForwardInto(Tensor x, Tensor y) => Conv2d.Run(x, weight.Value, bias.Value, y, p);

    /// <summary>Weight and bias gradients (overwritten) from the layer's input x and dY; dX (+)= the input
    /// gradient when <paramref name="dx"/> is given.</summary>
    public void Backward(Tensor x, Tensor dy, Tensor? dx, bool accumulateDx)
    {
        Conv2dBackward.WeightGradient(x, dy, p, weight.Gradient!, bias.Gradient!);
        if (dx is not null) Conv2dBackward.InputGradient(dy, weight.Value, p, dx, accumulateDx);
    }
}

/// <summary>nn.Linear with weight [out, in] and bias [out], applied to the last dimension.</summary>
internal sealed class LinearLayer
{
    private readonly Parameter weight, bias;

    public LinearLayer(ParameterStore s, string prefix, int input, int output)
    {
        weight = s.Add(prefix + ".weight", [output, input], ParameterInit.Uniform(input));
        bias = s.Add(prefix + ".bias", [output], ParameterInit.Uniform(input));
        Out = output;
    }

    public int Out { get; }

    /// <summary>The weight [out, in] (its offset places it in the store's flat buffer).</summary>
    public Parameter Weight => weight;

    /// <summary>The bias [out].</summary>
    public Parameter Bias => bias;

    /// <summary>x [N, in] to [N, out], or [N, T, in] to [N, T, out]; then SiLU (in the same launch) when asked.</summary>
    public Tensor Forward(Tensor x, TensorPool pool, bool silu = false)
    {
        var y = x.Rank == 3 ? pool.Rent(x.Shape[0], x.Shape[1], Out) : pool.Rent(x.Shape[0], Out);
        Linear.Run(x, weight.Value, bias.Value, y, silu);
        return y;
    }

    /// <summary>Weight and bias gradients (overwritten); dX (+)= the input gradient when given.</summary>
    public void Backward(Tensor x, Tensor dy, Tensor? dx, bool accumulateDx)
    {
        LinearBackward.WeightGradient(x, dy, weight.Gradient!, bias.Gradient!);
        if (dx is not null) LinearBackward.InputGradient(dy, weight.Value, dx, accumulateDx);
    }
}

/// <summary>nn.GroupNorm (affine: gamma = 1, beta = 0 initially), optionally fused with the SiLU that follows it.</summary>
internal sealed class GroupNormLayer
{    /// <summary>The plain request for a preparing launch: this norm's table over the output (none for null).</summary>
    public static implicit operator OutputNorm(GroupNormLayer? layer) => layer is null ? default : new OutputNorm(layer.Parameters);


    private readonly Parameter gamma, beta;
    private readonly int groups;
    private readonly float eps;

    public GroupNormLayer(ParameterStore s, string prefix, int channels, int groups, float eps)
    {
        if (channels % groups != 0)
            throw new ArgumentException($"{prefix}: {channels} channels cannot be split into {groups} groups");
        gamma = s.Add(prefix + ".weight", [channels], ParameterInit.Constant(1f));
        beta = s.Add(prefix + ".bias", [channels], ParameterInit.Constant(0f));
        this.groups = groups;
        this.eps = eps;
    }

    /// <summary>The number of groups.</summary>
    public int Groups => groups;

    /// <summary>gamma [C].</summary>
    public Tensor Gamma => gamma.Value;

    /// <summary>beta [C].</summary>
    public Tensor Beta => beta.Value;

    /// <summary>The variance's epsilon.</summary>
    public float Eps => eps;

    /// <summary>Groups, gamma, beta and eps as the kernels take them.</summary>
    public GroupNormParameters Parameters => new(groups, gamma.Value, beta.Value, eps);

    public Tensor Forward(Tensor x, TensorPool pool, bool silu)
    {
        var y = pool.Rent(x.Shape);
        GroupNorm.Run(x, groups, gamma.Value, beta.Value, eps, y, silu);
        return y;
    }

    /// <summary>Gamma and beta gradients (overwritten); dX (+)= the input gradient.</summary>
    public void Backward(Tensor x, bool silu, Tensor dy, Tensor dx, bool accumulateDx) =>
        GroupNormBackward.Run(x, groups, gamma.Value, beta.Value, eps, silu, dy, dx, accumulateDx, gamma.Gradient!, beta.Gradient!, false);
}

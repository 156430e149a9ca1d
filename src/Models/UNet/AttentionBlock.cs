using PosteriorGpu.Kernels.Attention;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Gemm;
using PosteriorGpu.Kernels.Layout;
using PosteriorGpu.Kernels.Norm;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Models.UNet;

/// <summary>
/// diffusers' spatial self-attention (Attention with residual_connection, as in AttnDownBlock2D,
/// AttnUpBlock2D and UNetMidBlock2D): tokens = group_norm(x) as [N, HW, C]; q, k, v = linear(tokens);
/// a = multi-head softmax(q k^T / sqrt(d)) v; out = (to_out(a) + x) / rescale_output_factor.
/// </summary>
/// <remarks>
/// Outside training (no tape) the block launches four kernels: group norm, one grouped GEMM for q, k and v
/// that reads the image layout itself, attention, and one GEMM for to_out that writes the image layout with
/// the bias, the residual and the rescale in its epilogue (<see cref="AttentionProjections"/>); bitwise the
/// same on the CPU as the recording path, which keeps the token-layout tensors its backward pass needs
/// (eight launches).
/// </remarks>
internal sealed class AttentionBlock
{
    private readonly GroupNormLayer? norm;
    private readonly LinearLayer q, k, v, o;
    private readonly ParameterStore store;
    private readonly int heads;
    private readonly float outputScale;
    // Activations of the last recording forward pass.
    private Tensor x = null!, tokens = null!, tq = null!, tk = null!, tv = null!, attended = null!;

    public AttentionBlock(ParameterStore s, string prefix, int channels, int headDim, int? groups, float eps, double rescaleOutputFactor)
    {
        if (headDim <= 0 || channels % headDim != 0)
            throw new ArgumentException($"{prefix}: attention_head_dim {headDim} does not divide {channels} channels");
        if (groups is { } g) norm = new GroupNormLayer(s, prefix + ".group_norm", channels, g, eps);
        q = new LinearLayer(s, prefix + ".to_q", channels, channels);
        k = new LinearLayer(s, prefix + ".to_k", channels, channels);
        v = new LinearLayer(s, prefix + ".to_v", channels, channels);
        o = new LinearLayer(s, prefix + ".to_out.0", channels, channels);
        store = s;
        heads = channels / headDim;
        outputScale = (float)(1.0 / rescaleOutputFactor);
    }

    /// <summary>x [N, C, H, W] (the caller owns it); returns a rented tensor of the same shape (kept on the
    /// tape when recording), or writes <paramref name="into"/> (a view the caller owns) and returns it.</summary>
    public Tensor Forward(Tensor input, TensorPool pool, Tape tape, Tensor? into = null) => Forward(input, pool, tape, into, null, default, out _);

    /// <summary>The GroupNorm the block applies first when the layer before may prepare its table (the image-layout path
    /// on a GEMM-core device, outside training), else null.</summary>
    public GroupNormLayer? PreparableNorm(Tape tape, GpuDevice device) =>
        !tape.Recording && QkvEvenlySpaced && AttentionProjections.ServesNormalized(device) ? norm : null;

    /// <summary><see cref="Forward(Tensor, TensorPool, Tape, Tensor?)"/> with group_norm's table <paramref name="prepared"/>
    /// (made by the launch that produced the input; see <see cref="PreparableNorm"/>): the q/k/v GEMM then normalises on load
    /// and no GroupNorm runs. With <paramref name="next"/> (outside training), to_out's launch also prepares that norm's table
    /// over the output (<paramref name="preparedNext"/>; null where it does not).</summary>
    public Tensor Forward(Tensor input, TensorPool pool, Tape tape, Tensor? into, PreparedGroupNorm? prepared, OutputNorm next,
        out PreparedGroupNorm? preparedNext)
    {
        preparedNext = null;
        if (!tape.Recording && QkvEvenlySpaced) return ForwardImageLayout(input, pool, into, prepared, next, out preparedNext);
        x = input;
        int n = x.N, c = x.C, p = x.H * x.W;
        tokens = tape.Keep(pool.Rent(n, p, c));
        if (norm is null)
        {
            Tokens.FromImage(x, tokens);
        }
        else
        {
            using var normed = norm.Forward(x, pool, silu: false);
            Tokens.FromImage(normed, tokens);
        }
        tq = tape.Keep(q.Forward(tokens, pool));
        tk = tape.Keep(k.Forward(tokens, pool));
        tv = tape.Keep(v.Forward(tokens, pool));
        tape.Release(tokens);
        attended = tape.Keep(pool.Rent(n, p, c));
        SpatialAttention.Run(tq, tk, tv, heads, attended);
        tape.Release(tq);
        tape.Release(tk);
        tape.Release(tv);
        using var projected = o.Forward(attended, pool);
        tape.Release(attended);
        var y = into ?? pool.Rent(x.Shape);
        Tokens.ToImage(projected, x, outputScale, y);
        return tape.Keep(y);
    }

    /// <summary>True when to_q, to_k and to_v's weights (and biases) lie equally spaced in the store, as
    /// registered: then one grouped GEMM computes all three.</summary>
    private bool QkvEvenlySpaced =>
        k.Weight.Offset - q.Weight.Offset == v.Weight.Offset - k.Weight.Offset && k.Weight.Offset > q.Weight.Offset &&
        k.Bias.Offset - q.Bias.Offset == v.Bias.Offset - k.Bias.Offset && k.Bias.Offset > q.Bias.Offset;

    /// <summary>The forward pass in four launches (no tape): see the remarks.</summary>
    private Tensor ForwardImageLayout(Tensor input, TensorPool pool, Tensor? into, PreparedGroupNorm? prepared, OutputNorm next,
        out PreparedGroupNorm? preparedNext)
    {
        preparedNext = null;
        int n = input.N, c = input.C, p = input.H * input.W;
        bool onLoad = norm is not null && prepared is not null;
        using var normed = onLoad ? null : norm?.Forward(input, pool, silu: false);
        using var query = pool.Rent(n, p, c);
        using var key = pool.Rent(n, p, c);
        using var value = pool.Rent(n, p, c);
        int weightStride = k.Weight.Offset - q.Weight.Offset, biasStride = k.Bias.Offset - q.Bias.Offset;
        var flat = store.Values.View;
        var weights = flat.SubView(q.Weight.Offset, 2 * weightStride + c * c);
        var biases = flat.SubView(q.Bias.Offset, 2 * biasStride + c);
        if (onLoad)
            AttentionProjections.QueryKeyValueNormalized(input, prepared!.Value, norm!.Parameters, weights, weightStride, biases, biasStride, query, key, value);
        else
            AttentionProjections.QueryKeyValue(normed ?? input, weights, weightStride, biases, biasStride, query, key, value);
        using var attention = pool.Rent(n, p, c);
        SpatialAttention.Run(query, key, value, heads, attention);
        var y = into ?? pool.Rent(input.Shape);
        if (next.IsEmpty) AttentionProjections.OutputToImage(attention, o.Weight.Value, o.Bias.Value, input, outputScale, y);
        else preparedNext = AttentionProjections.OutputToImagePreparingNext(attention, o.Weight.Value, o.Bias.Value, input, outputScale, y, next);
        return y;
    }

    /// <summary>Parameter gradients from dOut (after a recording forward pass); dX (+)= the input gradient.</summary>
    public void Backward(Tensor dOut, Tensor dx, bool accumulateDx, TensorPool pool)
    {
        int n = x.N, c = x.C, p = x.H * x.W;
        using var dProjected = pool.Rent(n, p, c);
        Tokens.FromImage(dOut, dProjected);
        if (outputScale != 1f) Affine.Run(dProjected, outputScale, 0f, dProjected);
        using var dAttended = pool.Rent(n, p, c);
        o.Backward(attended, dProjected, dAttended, false);
        using var dq = pool.Rent(n, p, c);
        using var dk = pool.Rent(n, p, c);
        using var dv = pool.Rent(n, p, c);
        SpatialAttentionBackward.Run(tq, tk, tv, heads, dAttended, dq, dk, dv);
        using var dTokens = pool.Rent(n, p, c);
        q.Backward(tokens, dq, dTokens, false);
        k.Backward(tokens, dk, dTokens, true);
        v.Backward(tokens, dv, dTokens, true);
        // The residual: dX (+)= outputScale dOut.
        if (accumulateDx) Axpby.Run(outputScale, dOut, 1f, dx);
        else Affine.Run(dOut, outputScale, 0f, dx);
        if (norm is null)
        {
            using var dImage = pool.Rent(x.Shape);
            Tokens.ToImage(dTokens, null, 1f, dImage);
            Axpby.Run(1f, dImage, 1f, dx);
        }
        else
        {
            using var dNormed = pool.Rent(x.Shape);
            Tokens.ToImage(dTokens, null, 1f, dNormed);
            norm.Backward(x, silu: false, dNormed, dx, accumulateDx: true);
        }
    }
}

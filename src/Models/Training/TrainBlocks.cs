using PosteriorGpu.Kernels.Attention;
using PosteriorGpu.Kernels.Conv;
using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Layout;
using PosteriorGpu.Kernels.Reductions;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Models.Training;

/// <summary>
/// What a forward pass keeps for its backward pass: every activation a gradient needs. The tensors
/// come from the model's pool and go back to it when the tape is cleared (at the next forward pass).
/// </summary>
internal sealed class Tape
{
    private readonly List<Tensor> kept = new();

    public Tensor Keep(Tensor t)
    {
        kept.Add(t);
        return t;
    }

    public void Clear()
    {
        foreach (var t in kept) t.Dispose();
        kept.Clear();
    }
}

/// <summary>
/// diffusers' ResnetBlock2D with resnet_time_scale_shift "default", trainable:
/// h0 = silu(norm1(x)); h1 = conv1(h0) + time_emb_proj(silu(temb)); h2 = silu(norm2(h1));
/// out = (shortcut(x) + conv2(h2)) * outputScale.
/// </summary>
internal sealed class TrainResnet
{
    private readonly TrainGroupNorm norm1, norm2;
    private readonly TrainConv conv1, conv2;
    private readonly TrainConv? shortcut;
    private readonly TrainLinear timeProj;
    private readonly float outputScale;
    private Tensor x = null!, h0 = null!, h1 = null!, h2 = null!;

    public TrainResnet(ParameterStore s, Random rng, string prefix, int cin, int cout, int temb, int groups, float eps, double outputScaleFactor)
    {
        norm1 = new TrainGroupNorm(s, prefix + ".norm1", cin, groups, eps);
        conv1 = new TrainConv(s, rng, prefix + ".conv1", cin, cout, 3, Conv2dParams.Same(1, 1));
        timeProj = new TrainLinear(s, rng, prefix + ".time_emb_proj", temb, cout);
        norm2 = new TrainGroupNorm(s, prefix + ".norm2", cout, groups, eps);
        conv2 = new TrainConv(s, rng, prefix + ".conv2", cout, cout, 3, Conv2dParams.Same(1, 1));
        if (cin != cout) shortcut = new TrainConv(s, rng, prefix + ".conv_shortcut", cin, cout, 1, Conv2dParams.Same(1, 0));
        outputScale = (float)(1.0 / outputScaleFactor);
    }

    /// <summary>x stays alive (the caller keeps it) until <see cref="Backward"/>; returns a kept output.</summary>
    public Tensor Forward(Tensor input, Tensor tembSilu, TensorPool pool, Tape tape)
    {
        x = input;
        using var t = timeProj.Forward(tembSilu, pool);
        h0 = tape.Keep(norm1.Forward(x, pool, silu: true));
        h1 = tape.Keep(conv1.Forward(h0, pool, channelAdd: t));
        h2 = tape.Keep(norm2.Forward(h1, pool, silu: true));
        if (shortcut is null) return tape.Keep(conv2.Forward(h2, pool, residual: x, outputScale: outputScale));
        using var skip = shortcut.Forward(x, pool);
        return tape.Keep(conv2.Forward(h2, pool, residual: skip, outputScale: outputScale));
    }

    /// <summary>Parameter gradients from dOut; dX (+)= the input gradient; dTembSilu += its share.</summary>
    public void Backward(Tensor dOut, Tensor dx, bool accumulateDx, Tensor tembSilu, Tensor dTembSilu, TensorPool pool)
    {
        Tensor g = dOut;
        if (outputScale != 1f)
        {
            g = pool.Rent(dOut.Shape);
            Affine.Run(dOut, outputScale, 0f, g);
        }
        using var dh2 = pool.Rent(h2.Shape);
        conv2.Backward(h2, g, dh2, false);
        if (shortcut is not null) shortcut.Backward(x, g, dx, accumulateDx);
        else if (accumulateDx) Axpby.Run(1f, g, 1f, dx);
        else dx.CopyFrom(g);
        if (!ReferenceEquals(g, dOut)) g.Dispose();

        using var dh1 = pool.Rent(h1.Shape);
        norm2.Backward(h1, silu: true, dh2, dh1, false);
        using (var dt = pool.Rent(dh1.N, dh1.C))
        {
            ChannelSums.Run(dh1, dt, perItem: true);
            timeProj.Backward(tembSilu, dt, dTembSilu, accumulateDx: true);
        }
        using var dh0 = pool.Rent(h0.Shape);
        conv1.Backward(h0, dh1, dh0, false);
        norm1.Backward(x, silu: true, dh0, dx, accumulateDx: true);
    }
}

/// <summary>
/// diffusers' spatial self-attention block, trainable: tokens = group_norm(x) as [N, HW, C];
/// q, k, v = linear(tokens); a = attention(q, k, v); out = (to_out(a) + x) * outputScale.
/// </summary>
internal sealed class TrainAttention
{
    private readonly TrainGroupNorm? norm;
    private readonly TrainLinear q, k, v, o;
    private readonly int heads;
    private readonly float outputScale;
    private Tensor x = null!, tokens = null!, tq = null!, tk = null!, tv = null!, attended = null!;

    public TrainAttention(ParameterStore s, Random rng, string prefix, int channels, int headDim, int? groups, float eps, double rescaleOutputFactor)
    {
        if (headDim <= 0 || channels % headDim != 0)
            throw new ArgumentException($"{prefix}: attention_head_dim {headDim} does not divide {channels} channels");
        if (groups is { } g) norm = new TrainGroupNorm(s, prefix + ".group_norm", channels, g, eps);
        q = new TrainLinear(s, rng, prefix + ".to_q", channels, channels);
        k = new TrainLinear(s, rng, prefix + ".to_k", channels, channels);
        v = new TrainLinear(s, rng, prefix + ".to_v", channels, channels);
        o = new TrainLinear(s, rng, prefix + ".to_out.0", channels, channels);
        heads = channels / headDim;
        outputScale = (float)(1.0 / rescaleOutputFactor);
    }

    public Tensor Forward(Tensor input, TensorPool pool, Tape tape)
    {
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
        attended = tape.Keep(pool.Rent(n, p, c));
        SpatialAttention.Run(tq, tk, tv, heads, attended);
        using var projected = o.Forward(attended, pool);
        var y = tape.Keep(pool.Rent(x.Shape));
        Tokens.ToImage(projected, x, outputScale, y);
        return y;
    }

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

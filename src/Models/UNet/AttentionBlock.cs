using PosteriorGpu.Kernels.Attention;
using PosteriorGpu.Kernels.Layout;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Models.UNet;

/// <summary>
/// diffusers' spatial self-attention (Attention with residual_connection, as in AttnDownBlock2D,
/// AttnUpBlock2D and UNetMidBlock2D): h = group_norm(x) as tokens [N, HW, C]; q, k, v = linear(h);
/// multi-head softmax(q k^T / sqrt(d)) v; out = (to_out(a) + x) / rescale_output_factor.
/// </summary>
internal sealed class AttentionBlock : IDisposable
{
    private readonly GroupNormLayer? norm;
    private readonly LinearLayer q, k, v, o;
    private readonly int heads;
    private readonly float outputScale;

    public AttentionBlock(WeightLoader w, string prefix, int channels, int headDim, int? groups, float eps, double rescaleOutputFactor)
    {
        if (headDim <= 0 || channels % headDim != 0)
            throw new ArgumentException($"{prefix}: attention_head_dim {headDim} does not divide {channels} channels");
        if (groups is { } g) norm = new GroupNormLayer(w, prefix + ".group_norm", channels, g, eps);
        q = new LinearLayer(w, prefix + ".to_q", channels, channels);
        k = new LinearLayer(w, prefix + ".to_k", channels, channels);
        v = new LinearLayer(w, prefix + ".to_v", channels, channels);
        o = new LinearLayer(w, prefix + ".to_out.0", channels, channels);
        heads = channels / headDim;
        outputScale = (float)(1.0 / rescaleOutputFactor);
    }

    /// <summary>x [N, C, H, W]; returns a rented tensor of the same shape.</summary>
    public Tensor Forward(Tensor x, TensorPool pool)
    {
        int n = x.N, c = x.C, p = x.H * x.W;
        using var tokens = pool.Rent(n, p, c);
        if (norm is null)
        {
            Tokens.FromImage(x, tokens);
        }
        else
        {
            using var normed = norm.Forward(x, pool, silu: false);
            Tokens.FromImage(normed, tokens);
        }
        using var tq = q.Forward(tokens, pool);
        using var tk = k.Forward(tokens, pool);
        using var tv = v.Forward(tokens, pool);
        using var attended = pool.Rent(n, p, c);
        SpatialAttention.Run(tq, tk, tv, heads, attended);
        using var projected = o.Forward(attended, pool);
        var y = pool.Rent(x.Shape);
        Tokens.ToImage(projected, x, outputScale, y);
        return y;
    }

    public void Dispose()
    {
        norm?.Dispose();
        q.Dispose();
        k.Dispose();
        v.Dispose();
        o.Dispose();
    }
}

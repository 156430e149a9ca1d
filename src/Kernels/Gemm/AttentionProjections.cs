using ILGPU;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Gemm;

/// <summary>
/// The linear projections of a spatial self-attention block as GEMMs that read and write the image layout
/// themselves, so that the block needs no token-layout copies: q, k and v from an image [N, C, H, W] in one
/// launch (three weight matrices over the same images: a grouped GEMM), and the output projection written
/// straight back to [N, C, H, W] with its bias, the residual and diffusers' rescale in the epilogue. On the
/// CPU the products sum in the same order as the token-layout path (<c>Tokens.FromImage</c>, three
/// <see cref="Linear"/>s, <see cref="Linear"/> then <c>Tokens.ToImage</c>), so results are bitwise the same.
/// </summary>
public static class AttentionProjections
{
    /// <summary>
    /// q, k, v [N, HW, C] = tokens(image) W_g^T + b_g for g = q, k, v, where tokens(image)[n, p, c] =
    /// image[n, c, p]. The three weights [C, C] lie in <paramref name="weights"/> at 0, stride and 2 stride, the
    /// three biases [C] in <paramref name="biases"/> at 0, biasStride and 2 biasStride (a parameter store's layout).
    /// </summary>
    /// <exception cref="ArgumentException">Shapes or strides do not fit.</exception>
    public static void QueryKeyValue(Tensor image, ArrayView<float> weights, int weightStride, ArrayView<float> biases, int biasStride,
        Tensor q, Tensor k, Tensor v) =>
        QueryKeyValue(image, weights, weightStride, biases, biasStride, q, k, v, GemmVariant.Auto);

    internal static void QueryKeyValue(Tensor image, ArrayView<float> weights, int weightStride, ArrayView<float> biases, int biasStride,
        Tensor q, Tensor k, Tensor v, GemmVariant variant)
    {
        const string op = "attention q/k/v projection";
        if (image.Rank != 4) throw new ArgumentException($"{op}: expected an image [N, C, H, W] but got shape {Shape.Format(image.Shape)}");
        int n = image.N, c = image.C, p = image.H * image.W;
        Shape.Require(op, q, "q", n, p, c);
        Shape.Require(op, k, "k", n, p, c);
        Shape.Require(op, v, "v", n, p, c);
        Shape.RequireSameDevice(op, image, q);
        Shape.RequireSameDevice(op, image, k);
        Shape.RequireSameDevice(op, image, v);
        if (weightStride < c * c || weights.Length < 2L * weightStride + (long)c * c)
            throw new ArgumentException($"{op}: three {c}x{c} weights {weightStride} apart do not fit a view of {weights.Length} floats");
        if (biasStride < c || biases.Length < 2L * biasStride + c)
            throw new ArgumentException($"{op}: three biases of {c} {biasStride} apart do not fit a view of {biases.Length} floats");
        // Item b = g N + i: A(b, m = position, k = channel) = image[i C P + k P + m]; B(b, k, n) = W_g[n C + k].
        var ops = new Gemm.Operands(image.View, c * p, 1, p, weights, 0, 1, c, q.View, p, c, 1f, 0f, biases, true)
            .Grouped(n, 0, weightStride, biasStride, k.View, v.View);
        Gemm.Launch(q.Device, ops, c, 3 * n, variant);
    }

    /// <summary>
    /// y [N, C, H, W] = (attended W^T + bias, as an image, + residual) * scale, where attended [N, HW, C] holds
    /// tokens: diffusers' to_out, residual connection and rescale_output_factor in one GEMM. y may be the residual.
    /// </summary>
    /// <exception cref="ArgumentException">Shapes do not fit.</exception>
    public static void OutputToImage(Tensor attended, Tensor weight, Tensor bias, Tensor? residual, float scale, Tensor y) =>
        OutputToImage(attended, weight, bias, residual, scale, y, GemmVariant.Auto);

    internal static void OutputToImage(Tensor attended, Tensor weight, Tensor bias, Tensor? residual, float scale, Tensor y, GemmVariant variant)
    {
        const string op = "attention output projection";
        if (y.Rank != 4) throw new ArgumentException($"{op}: expected y [N, C, H, W] but got shape {Shape.Format(y.Shape)}");
        int n = y.N, c = y.C, p = y.H * y.W;
        Shape.Require(op, attended, "attended", n, p, c);
        Shape.Require(op, weight, "weight", c, c);
        Shape.Require(op, bias, "bias", c);
        if (residual is not null) Shape.RequireSame(op, y, "y", residual, "residual");
        Shape.RequireSameDevice(op, attended, y);
        // C(b, m = channel, n = position) = sum_k W[m, k] attended[b, n, k]: y's own layout, bias per row.
        var ops = new Gemm.Operands(weight.View, 0, c, 1, attended.View, p * c, 1, c, y.View, c, p, 1f, 0f, bias.View, true)
            .WithEpilogue(biasPerRow: true, (residual ?? y).View, residual is not null, scale);
        Gemm.Launch(y.Device, ops, c, n, variant);
    }
}

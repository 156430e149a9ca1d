using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Gemm;

/// <summary>
/// A fully connected layer in PyTorch's nn.Linear layout: y[r, o] = sum_i x[r, i] weight[o, i] + bias[o],
/// where r runs over every row of x ([N, in] or [N, T, in]). It is one GEMM with the weight read
/// transposed and the bias added per column, so it runs on the same two variants as <see cref="Gemm"/>.
/// </summary>
public static class Linear
{
    /// <summary>The specification: <paramref name="rows"/> rows of x times weight^T plus bias (empty for none).</summary>
    public static void Reference(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, Span<float> y,
        int rows, int inFeatures, int outFeatures) =>
        Gemm.Reference(x, false, weight, true, y, 1, rows, outFeatures, inFeatures, 1f, 0f, bias);

    /// <summary>y = x weight^T + bias; x is [N, in] or [N, T, in], weight [out, in], bias [out] or null,
    /// y [N, out] or [N, T, out].</summary>
    /// <exception cref="ArgumentException">A shape does not fit (the message names the shapes).</exception>
    public static void Run(Tensor x, Tensor weight, Tensor? bias, Tensor y) => Run(x, weight, bias, y, GemmVariant.Auto);

    /// <summary>y = x weight^T + bias, then SiLU when <paramref name="silu"/> (applied as each result is stored:
    /// one launch, bitwise the same as a separate SiLU pass).</summary>
    /// <exception cref="ArgumentException">A shape does not fit (the message names the shapes).</exception>
    public static void Run(Tensor x, Tensor weight, Tensor? bias, Tensor y, bool silu) => Run(x, weight, bias, y, GemmVariant.Auto, silu);

    internal static void Run(Tensor x, Tensor weight, Tensor? bias, Tensor y, GemmVariant variant, bool silu = false)
    {
        const string op = "linear";
        if (x.Rank is not (2 or 3))
            throw new ArgumentException($"{op}: expected x of shape [N, in] or [N, T, in] but got {Shape.Format(x.Shape)}");
        Shape.RequireRank(op, weight, "weight", 2);
        int inFeatures = x.Shape[^1], outFeatures = weight.Shape[0];
        if (weight.Shape[1] != inFeatures)
            throw new ArgumentException(
                $"{op}: weight {Shape.Format(weight.Shape)} takes {weight.Shape[1]} input features but x {Shape.Format(x.Shape)} has {inFeatures}");
        var expected = (int[])x.Shape.Clone();
        expected[^1] = outFeatures;
        Shape.Require(op, y, "y", expected);
        if (bias is not null) Shape.Require(op, bias, "bias", outFeatures);
        Shape.RequireSameDevice(op, x, y);
        Shape.RequireSameDevice(op, weight, y);
        if (bias is not null) Shape.RequireSameDevice(op, bias, y);
        int rows = x.Rank == 3 ? x.Shape[0] * x.Shape[1] : x.Shape[0];
        var ops = new Gemm.Operands(
            x.View, 0, inFeatures, 1,
            weight.View, 0, 1, inFeatures,
            y.View, rows, outFeatures, 1f, 0f, (bias ?? y).View, bias is not null);
        if (silu) ops = ops.WithSilu();
        Gemm.Launch(y.Device, ops, inFeatures, 1, variant);
    }
}

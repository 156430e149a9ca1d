using PosteriorGpu.Kernels.Reductions;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Gemm;

/// <summary>
/// Gradients of <see cref="Linear"/> (y = x W^T + b over every row r of x): dx = dy W, dW = dy^T x,
/// db = column sums of dy. Both products are GEMMs on the same two variants as the forward pass.
/// </summary>
public static class LinearBackward
{
    /// <summary>The specification, in double; empty spans are not computed.</summary>
    public static void Reference(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> dy, int rows, int inFeatures, int outFeatures,
        Span<float> dx, Span<float> dWeight, Span<float> dBias)
    {
        if (!dx.IsEmpty) Gemm.Reference(dy, false, weight, false, dx, 1, rows, inFeatures, outFeatures);
        if (!dWeight.IsEmpty) Gemm.Reference(dy, true, x, false, dWeight, 1, outFeatures, inFeatures, rows);
        if (!dBias.IsEmpty) ChannelSums.Reference(dy, rows, outFeatures, perItem: false, dBias);
    }

    /// <summary>dx (+)= dy W for dy [rows..., out], weight [out, in] and dx [rows..., in] (x's shape).</summary>
    /// <exception cref="ArgumentException">Shapes do not fit.</exception>
    public static void InputGradient(Tensor dy, Tensor weight, Tensor dx, bool accumulate = false)
    {
        var (rows, inF, outF) = Check("linear input gradient", dx, weight, dy);
        using var dy2 = dy.Reshape(rows, outF);
        using var dx2 = dx.Reshape(rows, inF);
        Gemm.Run(dy2, false, weight, false, dx2, 1f, accumulate ? 1f : 0f);
    }

    /// <summary>dWeight (+)= dy^T x and dBias (+)= column sums of dy (when not null).</summary>
    /// <exception cref="ArgumentException">Shapes do not fit.</exception>
    public static void WeightGradient(Tensor x, Tensor dy, Tensor dWeight, Tensor? dBias, bool accumulate = false)
    {
        var (rows, inF, outF) = Check("linear weight gradient", x, dWeight, dy);
        using var dy2 = dy.Reshape(rows, outF);
        using var x2 = x.Reshape(rows, inF);
        Gemm.Run(dy2, true, x2, false, dWeight, 1f, accumulate ? 1f : 0f);
        if (dBias is not null) ChannelSums.Run(dy2, dBias, perItem: false, accumulate);
    }

    private static (int Rows, int In, int Out) Check(string op, Tensor x, Tensor weight, Tensor dy)
    {
        if (x.Rank is not (2 or 3)) throw new ArgumentException($"{op}: expected x of shape [N, in] or [N, T, in] but got {Shape.Format(x.Shape)}");
        Shape.RequireRank(op, weight, "weight", 2);
        int outF = weight.Shape[0], inF = weight.Shape[1];
        if (x.Shape[^1] != inF) throw new ArgumentException($"{op}: weight {Shape.Format(weight.Shape)} takes {inF} features but x is {Shape.Format(x.Shape)}");
        var expected = (int[])x.Shape.Clone();
        expected[^1] = outF;
        Shape.Require(op, dy, "dy", expected);
        return (x.Length / inF, inF, outF);
    }
}

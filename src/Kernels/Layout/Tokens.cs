using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Layout;

/// <summary>
/// Layout changes around spatial self-attention (diffusers' Attention on a [N,C,H,W] input):
/// image to tokens, x.view(N,C,H*W).transpose(1,2) giving [N,H*W,C], and back, fused with the
/// residual add and the division by rescale_output_factor (here a multiplication by <c>scale</c>).
/// </summary>
public static class Tokens
{
    /// <summary>The specification of <see cref="FromImage"/>: tokens[n,p,c] = x[n,c,p].</summary>
    public static void FromImageReference(ReadOnlySpan<float> x, int batch, int channels, int positions, Span<float> tokens)
    {
        for (int n = 0; n < batch; n++)
            for (int c = 0; c < channels; c++)
                for (int p = 0; p < positions; p++)
                    tokens[(n * positions + p) * channels + c] = x[(n * channels + c) * positions + p];
    }

    /// <summary>The specification of <see cref="ToImage"/>: y[n,c,p] = (tokens[n,p,c] + residual[n,c,p]) * scale.</summary>
    public static void ToImageReference(ReadOnlySpan<float> tokens, ReadOnlySpan<float> residual, bool hasResidual,
        float scale, int batch, int channels, int positions, Span<float> y)
    {
        for (int n = 0; n < batch; n++)
            for (int c = 0; c < channels; c++)
                for (int p = 0; p < positions; p++)
                {
                    int i = (n * channels + c) * positions + p;
                    float t = tokens[(n * positions + p) * channels + c];
                    y[i] = (hasResidual ? t + residual[i] : t) * scale;
                }
    }

    // Both kernels walk the output in order (writes contiguous per CPU chunk / coalesced on a GPU)
    // and gather the transposed input.
    internal static void FromImageKernel(Index1D tid, ElementRange r, int channels, int positions, ArrayView<float> x, ArrayView<float> tokens)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            int c = i % channels;
            int np = i / channels;           // n * positions + p
            int p = np % positions;
            int n = np / positions;
            tokens[i] = x[(n * channels + c) * positions + p];
        }
    }

    internal static void ToImageKernel(Index1D tid, ElementRange r, int channels, int positions, int hasResidual, float scale,
        ArrayView<float> tokens, ArrayView<float> residual, ArrayView<float> y)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            int p = i % positions;
            int nc = i / positions;          // n * channels + c
            int c = nc % channels;
            int n = nc / channels;
            float t = tokens[(n * positions + p) * channels + c];
            if (hasResidual != 0) t += residual[i];
            y[i] = t * scale;
        }
    }

    /// <summary>tokens = x.view(N, C, H*W).transpose(1, 2): [N,C,H,W] -> [N,H*W,C].</summary>
    /// <exception cref="ArgumentException">x is not rank 4 or tokens is not [N, H*W, C].</exception>
    public static void FromImage(Tensor x, Tensor tokens)
    {
        Shape.RequireRank("tokens from image", x, "x", 4);
        Shape.Require("tokens from image", tokens, "tokens", x.N, x.H * x.W, x.C);
        Shape.RequireSameDevice("tokens from image", x, tokens);
        var plan = x.Device.Plan(x.Length);
        var k = x.Device.Kernel("tokens-from-image", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int, int,
            ArrayView<float>, ArrayView<float>>(FromImageKernel));
        k(plan.Threads, plan, x.C, x.H * x.W, x.View, tokens.View);
    }

    /// <summary>y[n,c,h,w] = (tokens[n, h*W+w, c] + residual[n,c,h,w]) * scale; residual may be null
    /// (then no add) and may be <paramref name="y"/> itself.</summary>
    /// <exception cref="ArgumentException">y is not rank 4, or tokens / residual do not fit y.</exception>
    public static void ToImage(Tensor tokens, Tensor? residual, float scale, Tensor y)
    {
        Shape.RequireRank("tokens to image", y, "y", 4);
        Shape.Require("tokens to image", tokens, "tokens", y.N, y.H * y.W, y.C);
        Shape.RequireSameDevice("tokens to image", tokens, y);
        if (residual is not null) Shape.RequireSame("tokens to image", residual, "residual", y, "y");
        var plan = y.Device.Plan(y.Length);
        var k = y.Device.Kernel("tokens-to-image", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int, int, int, float,
            ArrayView<float>, ArrayView<float>, ArrayView<float>>(ToImageKernel));
        k(plan.Threads, plan, y.C, y.H * y.W, residual is null ? 0 : 1, scale, tokens.View, (residual ?? y).View, y.View);
    }
}

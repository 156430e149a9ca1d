using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Layout;

/// <summary>Between images [N, C, H, W] and token sequences [N, HW, C] (x.view(N, C, HW).transpose(1, 2)),
/// as attention over spatial positions needs; the way back fuses the residual add and output scale.</summary>
public static class Tokens
{
    /// <summary>The specification of <see cref="FromImage"/>.</summary>
    public static void FromImageReference(ReadOnlySpan<float> x, int n, int c, int p, Span<float> tokens)
    {
        for (int b = 0; b < n; b++)
            for (int ch = 0; ch < c; ch++)
                for (int s = 0; s < p; s++) tokens[(b * p + s) * c + ch] = x[(b * c + ch) * p + s];
    }

    /// <summary>The specification of <see cref="ToImage"/>.</summary>
    public static void ToImageReference(ReadOnlySpan<float> tokens, ReadOnlySpan<float> residual, float scale, int n, int c, int p, Span<float> y)
    {
        for (int b = 0; b < n; b++)
            for (int ch = 0; ch < c; ch++)
                for (int s = 0; s < p; s++)
                {
                    int i = (b * c + ch) * p + s;
                    y[i] = (tokens[(b * p + s) * c + ch] + (residual.IsEmpty ? 0 : residual[i])) * scale;
                }
    }

    internal static void FromImageKernel(Index1D tid, ElementRange r, int c, int p, ArrayView<float> x, ArrayView<float> tokens)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int o = r.Index(tid, k);   // token-major output index: ((b * p) + s) * c + ch
            if (o >= r.Total) return;
            int ch = o % c;
            int bs = o / c;
            int s = bs % p;
            int b = bs / p;
            tokens[o] = x[(b * c + ch) * p + s];
        }
    }

    internal static void ToImageKernel(Index1D tid, ElementRange r, int c, int p, float residualWeight, float scale,
        ArrayView<float> tokens, ArrayView<float> residual, ArrayView<float> y)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int o = r.Index(tid, k);   // image output index: ((b * c) + ch) * p + s
            if (o >= r.Total) return;
            int s = o % p;
            int bc = o / p;
            int ch = bc % c;
            int b = bc / c;
            // A branch, not 0 * residual: y may hold NaN garbage when it stands in for a missing residual.
            float t = tokens[(b * p + s) * c + ch];
            y[o] = (residualWeight != 0 ? t + residual[o] : t) * scale;
        }
    }

    /// <summary>tokens [N, HW, C] from x [N, C, H, W].</summary>
    public static void FromImage(Tensor x, Tensor tokens)
    {
        Shape.RequireRank("tokens from image", x, "x", 4);
        Shape.Require("tokens from image", tokens, "tokens", x.N, x.H * x.W, x.C);
        var plan = x.Device.Plan(x.Length);
        var k = x.Device.Kernel("tokens-from-image", acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int, int,
            ArrayView<float>, ArrayView<float>>(FromImageKernel));
        k(plan.Threads, plan, x.C, x.H * x.W, x.View, tokens.View);
    }

    /// <summary>y [N, C, H, W] = (tokens [N, HW, C] transposed + residual) * scale; residual optional
    /// (it may be y itself).</summary>
    public static void ToImage(Tensor tokens, Tensor? residual, float scale, Tensor y)
    {
        Shape.RequireRank("tokens to image", y, "y", 4);
        Shape.Require("tokens to image", tokens, "tokens", y.N, y.H * y.W, y.C);
        if (residual is not null) Shape.RequireSame("tokens to image", residual, "residual", y, "y");
        var plan = y.Device.Plan(y.Length);
        var k = y.Device.Kernel("tokens-to-image", acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int, int, float, float,
            ArrayView<float>, ArrayView<float>, ArrayView<float>>(ToImageKernel));
        k(plan.Threads, plan, y.C, y.H * y.W, residual is null ? 0f : 1f, scale, tokens.View, (residual ?? y).View, y.View);
    }
}

using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Activations;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Gemm;
using PosteriorGpu.Kernels.Norm;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Conv;

/// <summary>
/// GroupNorm (+SiLU) fused into the convolution that consumes it, as a ResnetBlock2D runs them (norm1 -> SiLU -> conv1,
/// norm2 -> SiLU -> conv2): <see cref="GroupNormTable"/> reduces each group to a per-channel scale and shift (one read
/// of x, 2 floats per channel written), then <see cref="Conv2d"/>'s implicit GEMM normalises every im2col element as it
/// stages it (x scale[n, c] + shift[n, c], then SiLU; padding taps stay 0, as the convolution pads the normalised
/// tensor). So the normalised tensor is never written nor read back: per resnet two full-size tensors less through
/// memory, at the price of the affine map and SiLU per staged element (each input element is staged once per tap).
/// The arithmetic is GroupNormSlab's and the convolution's, in the same order, so the output is bitwise that of the
/// unfused pair (GroupNorm then <see cref="Conv2d"/> with the same GEMM variant). GEMM-core devices only (<see cref="Serves(Tensor)"/>).
/// </summary>
public static class Conv2dNormalized
{
    /// <summary>The specification: <see cref="GroupNorm.Reference"/> (+SiLU), then <see cref="Conv2d.Reference"/>.</summary>
    public static void Reference(ReadOnlySpan<float> x, int batch, int cin, int h, int w, int groups, ReadOnlySpan<float> gamma,
        ReadOnlySpan<float> beta, float eps, bool silu, ReadOnlySpan<float> weight, int cout, int kh, int kw, ReadOnlySpan<float> bias,
        Span<float> output, Conv2dParams p, ReadOnlySpan<float> channelAdd = default, ReadOnlySpan<float> residual = default, float outputScale = 1f)
    {
        var normalized = new float[x.Length];
        GroupNorm.Reference(x, batch, cin, h * w, groups, gamma, beta, eps, normalized, silu);
        Conv2d.Reference(normalized, batch, cin, h, w, weight, cout, kh, kw, bias, output, p, channelAdd, residual, outputScale);
    }

    /// <summary>Whether the fused pair runs for x on its device: the GEMM core runs there (not ILGPU's CPU accelerator) and
    /// x's positions are a multiple of 4 with x 16-byte aligned (the table's vector reads).</summary>
    public static bool Serves(Tensor x) => Serves(x, GemmVariant.Auto);

    internal static bool Serves(Tensor x, GemmVariant variant) =>
        x.Rank == 4 && Gemm.Gemm.UsesCore(x.Device, variant) && GroupNormTable.Fits(x, x.H * x.W);

    /// <summary>The im2col operand of the normalised input; A (the weights) and the epilogue are <see cref="Conv2d.Operands"/>'.
    /// Cursor parts as the convolution's (column P/Q/R, depth P/S/T) plus column S = 2 image Cin and depth Q = 2 channel:
    /// their sum indexes the table.</summary>
    internal readonly struct Operands : IGemmOperands, GemmNormStats.IFinalValue
    {
        public readonly Conv2d.Operands Conv;
        public readonly ArrayView<float> Table;
        public readonly int Silu;
        // One k step as (channels, kernel rows, kernel columns) digits and as an input offset.
        private readonly int stepCi, stepKy, stepKx, stepOffset;

        public Operands(Conv2d.Operands conv, ArrayView<float> table, bool silu)
        {
            Conv = conv;
            Table = table;
            Silu = silu ? 1 : 0;
            int khw = Math.Max(1, conv.Kh * conv.Kw), rem = GemmCore.BK % khw;
            stepCi = GemmCore.BK / khw;
            stepKy = rem / Math.Max(1, conv.Kw);
            stepKx = rem % Math.Max(1, conv.Kw);
            stepOffset = stepCi * conv.H * conv.W + stepKy * conv.W + stepKx;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float Final(int b, int m, int n, float acc) => Conv.Final(b, m, n, acc);

        public bool AContiguousInK => true;
        public bool BContiguousInN => true;
        public bool Im2Col => true;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GemmCursor RowA(int b, int m) => Conv.RowA(b, m);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GemmCursor DepthA(int b, int k) => Conv.DepthA(b, k);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GemmCursor StepA(GemmCursor depth) => Conv.StepA(depth);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float LoadA(GemmCursor row, GemmCursor depth) => Conv.LoadA(row, depth);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GemmCursor ColumnB(int b, int n)
        {
            var c = Conv.ColumnB(b, n);
            c.S = 2 * Conv.Cin * (n / (Conv.Ho * Conv.Wo));
            return c;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GemmCursor DepthB(int b, int k)
        {
            var d = Conv.DepthB(b, k);
            d.Q = 2 * (k / (Conv.Kh * Conv.Kw));
            return d;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GemmCursor StepB(GemmCursor depth)
        {
            int kx = depth.T + stepKx, ky = depth.S + stepKy, p = depth.P + stepOffset, q = depth.Q + 2 * stepCi;
            if (kx >= Conv.Kw) { kx -= Conv.Kw; ky++; p += Conv.W - Conv.Kw; }
            if (ky >= Conv.Kh) { ky -= Conv.Kh; p += Conv.H * Conv.W - Conv.Kh * Conv.W; q += 2; }
            return new GemmCursor { P = p, Q = q, S = ky, T = kx };
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float LoadB(GemmCursor depth, GemmCursor column)
        {
            // Branch-free as the convolution's: a padding tap loads element 0 and becomes zero after the map.
            int iy = column.Q + depth.S, ix = column.R + depth.T;
            bool inside = (uint)iy < (uint)Conv.H && (uint)ix < (uint)Conv.W;
            int t = column.S + depth.Q;
            float v = Conv.Input[inside ? column.P + depth.P : 0] * Table[t] + Table[t + 1];
            if (Silu != 0) v = Activations.Silu.Apply(v);
            return inside ? v : 0f;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Store(int b, int m, int n, float acc) => Conv.Store(b, m, n, acc);
    }

    /// <summary>
    /// output = outputScale (conv(GroupNorm(x) (+SiLU), weight) + bias + channelAdd + residual), GroupNorm with
    /// <paramref name="groups"/> groups, gamma, beta and eps; shapes as <see cref="Conv2d.Run(Tensor, Tensor, Tensor?, Tensor, Conv2dParams, Tensor?, Tensor?, float)"/>.
    /// Two launches (the table, the convolution). The table lives in the device's scratch area.
    /// </summary>
    /// <exception cref="ArgumentException">A shape does not fit, or <see cref="Serves(Tensor)"/> is false.</exception>
    /// <remarks>With <paramref name="prepared"/> (made by the launch that produced x, <c>RunPreparingNext</c>) the table
    /// is not computed again: one launch.</remarks>
    public static void Run(Tensor x, int groups, Tensor gamma, Tensor beta, float eps, bool silu, Tensor weight, Tensor? bias,
        Tensor output, Conv2dParams p, Tensor? channelAdd = null, Tensor? residual = null, float outputScale = 1f,
        PreparedGroupNorm? prepared = null) =>
        Run(x, groups, gamma, beta, eps, silu, weight, bias, output, p, channelAdd, residual, outputScale, GemmVariant.Auto, prepared);

    internal static void Run(Tensor x, int groups, Tensor gamma, Tensor beta, float eps, bool silu, Tensor weight, Tensor? bias,
        Tensor output, Conv2dParams p, Tensor? channelAdd, Tensor? residual, float outputScale, GemmVariant variant,
        PreparedGroupNorm? prepared = null) =>
        RunPreparingNext(x, groups, gamma, beta, eps, silu, weight, bias, output, p, default, channelAdd, residual, outputScale, variant, prepared);

    /// <summary>
    /// <see cref="Run(Tensor, int, Tensor, Tensor, float, bool, Tensor, Tensor?, Tensor, Conv2dParams, Tensor?, Tensor?, float, PreparedGroupNorm?)"/>
    /// that also prepares <paramref name="next"/>, the GroupNorm of its output that the next layer applies (a resnet's norm2
    /// after conv1), in the same launch (<see cref="GemmNormStats"/>): each block reduces the tile it stores,
    /// the last one merges the tiles into the table. Returns it for that layer's normalised convolution, or null where the
    /// shapes do not allow it (tiles straddling images, more than a few images; the output is the same either way and the
    /// consumer then computes its table itself). The output is bitwise the plain launch's; the table equals the one the
    /// consumer would compute within rounding.
    /// </summary>
    /// <exception cref="ArgumentException">A shape does not fit (this launch's or <paramref name="next"/>'s).</exception>
    public static PreparedGroupNorm? RunPreparingNext(Tensor x, int groups, Tensor gamma, Tensor beta, float eps, bool silu, Tensor weight,
        Tensor? bias, Tensor output, Conv2dParams p, OutputNorm next, Tensor? channelAdd = null, Tensor? residual = null,
        float outputScale = 1f, PreparedGroupNorm? prepared = null) =>
        RunPreparingNext(x, groups, gamma, beta, eps, silu, weight, bias, output, p, next, channelAdd, residual, outputScale, GemmVariant.Auto, prepared);

    /// <summary>The normalised convolution; with <paramref name="next"/>, preparing its table over the output where the
    /// preparing launch serves the shapes (returned), else the plain launch (null).</summary>
    internal static PreparedGroupNorm? RunPreparingNext(Tensor x, int groups, Tensor gamma, Tensor beta, float eps, bool silu, Tensor weight,
        Tensor? bias, Tensor output, Conv2dParams p, OutputNorm next, Tensor? channelAdd, Tensor? residual, float outputScale,
        GemmVariant variant, PreparedGroupNorm? prepared = null)
    {
        var conv = Conv2d.Prepare(Op, x, 1, weight, bias, output, p, channelAdd, residual, outputScale);
        next.Check(Op + " (next norm)", output, conv.Cout);
        var table = NormalizedTable(x, new GroupNormParameters(groups, gamma, beta, eps), conv, variant, prepared);
        if (x.N == 0 || conv.Cout == 0) return null;
        var ops = new Operands(conv, table, silu);
        int k = conv.Cin * conv.Kh * conv.Kw;
        if (GemmNormStats.TryLaunch("conv2d-normalized-core-norm-stats", ops, k, output, next, variant, out var made))
            return made;
        GemmCore.Launch(output.Device, "conv2d-normalized-core", ops, conv.Cout, x.N * conv.Ho * conv.Wo, k, 1, variant);
        return null;
    }

    /// <summary>
    /// A resnet's second convolution with its 1x1 shortcut in one GEMM-core launch:
    /// output = outputScale (conv(GroupNorm(x) (+SiLU), weight) + bias + conv1x1(shortcutInput, shortcutWeight) + shortcutBias).
    /// The two products run along one k (<see cref="GemmCore.KernelSum{TTile, TOps, TOps2}"/>: the normalised im2col of x,
    /// then shortcutInput's channels), so the shortcut's output, which the unfused block writes and reads back as the
    /// residual, never goes through memory and needs no launch. Its bias is added in the epilogue as a per-channel add
    /// (one [Cout] vector for every image). Equal to the unfused pair within rounding (the sum is ordered differently).
    /// Launches: the table and the convolution.
    /// </summary>
    /// <exception cref="ArgumentException">A shape does not fit, or <see cref="Serves(Tensor)"/> is false.</exception>
    public static void RunWithShortcut(Tensor x, int groups, Tensor gamma, Tensor beta, float eps, bool silu, Tensor weight, Tensor? bias,
        Tensor shortcutInput, Tensor shortcutWeight, Tensor? shortcutBias, Tensor output, Conv2dParams p, float outputScale = 1f,
        PreparedGroupNorm? prepared = null) =>
        RunWithShortcut(x, groups, gamma, beta, eps, silu, weight, bias, shortcutInput, shortcutWeight, shortcutBias, output, p, outputScale,
            GemmVariant.Auto, prepared);

    internal static void RunWithShortcut(Tensor x, int groups, Tensor gamma, Tensor beta, float eps, bool silu, Tensor weight, Tensor? bias,
        Tensor shortcutInput, Tensor shortcutWeight, Tensor? shortcutBias, Tensor output, Conv2dParams p, float outputScale, GemmVariant variant,
        PreparedGroupNorm? prepared = null) =>
        RunWithShortcutPreparingNext(x, groups, gamma, beta, eps, silu, weight, bias, shortcutInput, shortcutWeight, shortcutBias, output, p,
            default, outputScale, variant, prepared);

    /// <summary><see cref="RunWithShortcut(Tensor, int, Tensor, Tensor, float, bool, Tensor, Tensor?, Tensor, Tensor, Tensor?, Tensor, Conv2dParams, float, PreparedGroupNorm?)"/>
    /// that also prepares <paramref name="next"/> over the output in the same launch (as <c>RunPreparingNext</c>); null
    /// where it is not prepared.</summary>
    /// <exception cref="ArgumentException">A shape does not fit.</exception>
    public static PreparedGroupNorm? RunWithShortcutPreparingNext(Tensor x, int groups, Tensor gamma, Tensor beta, float eps, bool silu,
        Tensor weight, Tensor? bias, Tensor shortcutInput, Tensor shortcutWeight, Tensor? shortcutBias, Tensor output, Conv2dParams p,
        OutputNorm next, float outputScale = 1f, PreparedGroupNorm? prepared = null) =>
        RunWithShortcutPreparingNext(x, groups, gamma, beta, eps, silu, weight, bias, shortcutInput, shortcutWeight, shortcutBias, output, p,
            next, outputScale, GemmVariant.Auto, prepared);

    internal static PreparedGroupNorm? RunWithShortcutPreparingNext(Tensor x, int groups, Tensor gamma, Tensor beta, float eps, bool silu,
        Tensor weight, Tensor? bias, Tensor shortcutInput, Tensor shortcutWeight, Tensor? shortcutBias, Tensor output, Conv2dParams p,
        OutputNorm next, float outputScale, GemmVariant variant, PreparedGroupNorm? prepared = null)
    {
        var conv = Conv2d.Prepare(Op, x, 1, weight, bias, output, p, shortcutBias, null, outputScale, channelAddShared: true);
        next.Check(Op + " (next norm)", output, conv.Cout);
        if (shortcutWeight.Rank != 4 || shortcutWeight.Shape[2] != 1 || shortcutWeight.Shape[3] != 1)
            throw new ArgumentException($"{Op}: the shortcut is a 1x1 convolution but its weight has shape {Shape.Format(shortcutWeight.Shape)}");
        var shortcut = Conv2d.Prepare(Op + " shortcut", shortcutInput, 1, shortcutWeight, null, output, Conv2dParams.Same(1, 0), null, null, 1f);
        var table = NormalizedTable(x, new GroupNormParameters(groups, gamma, beta, eps), conv, variant, prepared);
        if (x.N == 0 || conv.Cout == 0) return null;
        var ops = new Operands(conv, table, silu);
        int k1 = conv.Cin * conv.Kh * conv.Kw;
        if (GemmNormStats.TryLaunchSum("conv2d-normalized-shortcut-core-norm-stats", ops, shortcut, k1, shortcut.Cin, output, next, variant,
                out var made))
            return made;
        GemmCore.LaunchSum(output.Device, "conv2d-normalized-shortcut-core", ops, shortcut, conv.Cout, x.N * conv.Ho * conv.Wo, k1, shortcut.Cin, 1,
            variant);
        return null;
    }

    private const string Op = "group norm + conv2d";

    /// <summary>Checks the norm's shapes; the per-channel scale/shift table of x: <paramref name="prepared"/>'s (checked to be
    /// x's under this norm), or filled now (one launch, in the scratch area).</summary>
    private static ArrayView<float> NormalizedTable(Tensor x, GroupNormParameters norm, Conv2d.Operands conv, GemmVariant variant,
        PreparedGroupNorm? prepared)
    {
        norm.Check(Op, x, conv.Cin);
        if (!Serves(x, variant))
            throw new ArgumentException($"{Op}: runs on the GEMM core with positions a multiple of 4 and x 16-byte aligned; x {Shape.Format(x.Shape)} on {x.Device.Description}");
        if (prepared is { } made) return made.TableFor(Op, x, norm);
        var device = x.Device;
        var table = device.Scratch(Math.Max(2 * x.N * conv.Cin, 1));
        if (x.N > 0 && conv.Cout > 0) GroupNormTable.Run(x, norm.Groups, norm.Gamma, norm.Beta, norm.Eps, table, GroupNorm.GroupThreads(device));
        return table;
    }
}

using System.Runtime.CompilerServices;
using ILGPU;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Norm;
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
        var ops = QueryKeyValueOperands("attention q/k/v projection", image, weights, weightStride, biases, biasStride, q, k, v);
        Gemm.Launch(q.Device, ops, image.C, 3 * image.N, variant);
    }

    /// <summary>Checks the shapes and builds the q/k/v GEMM: item b = g N + i, A(b, m = position, k = channel) =
    /// image[i C P + k P + m]; B(b, k, n) = W_g[n C + k].</summary>
    private static Gemm.Operands QueryKeyValueOperands(string op, Tensor image, ArrayView<float> weights, int weightStride,
        ArrayView<float> biases, int biasStride, Tensor q, Tensor k, Tensor v)
    {
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
        return new Gemm.Operands(image.View, c * p, 1, p, weights, 0, 1, c, q.View, p, c, 1f, 0f, biases, true)
            .Grouped(n, 0, weightStride, biasStride, k.View, v.View);
    }

    /// <summary>
    /// <see cref="QueryKeyValue(Tensor, ArrayView{float}, int, ArrayView{float}, int, Tensor, Tensor, Tensor)"/> of
    /// GroupNorm(image) without writing the normalised image: the GEMM normalises each element of the image as it stages it,
    /// with the table <paramref name="prepared"/> that the launch which produced the image made for <paramref name="norm"/>
    /// (a resnet's conv2 before the attention block: no GroupNorm launch at all). GEMM-core devices only
    /// (<see cref="ServesNormalized"/>). Equal to GroupNorm then the projections within rounding.
    /// </summary>
    /// <exception cref="ArgumentException">Shapes or strides do not fit, the table is another tensor's or norm's, or the
    /// device does not run the GEMM core.</exception>
    /// <exception cref="InvalidOperationException">The table was overwritten by a later preparing launch.</exception>
    public static void QueryKeyValueNormalized(Tensor image, PreparedGroupNorm prepared, GroupNormParameters norm, ArrayView<float> weights,
        int weightStride, ArrayView<float> biases, int biasStride, Tensor q, Tensor k, Tensor v) =>
        QueryKeyValueNormalized(image, prepared, norm, weights, weightStride, biases, biasStride, q, k, v, GemmVariant.Auto);

    /// <summary>Whether <c>QueryKeyValueNormalized</c> runs on this device (the GEMM core runs there).</summary>
    public static bool ServesNormalized(GpuDevice device) => Gemm.UsesCore(device, GemmVariant.Auto);

    internal static void QueryKeyValueNormalized(Tensor image, PreparedGroupNorm prepared, GroupNormParameters norm, ArrayView<float> weights,
        int weightStride, ArrayView<float> biases, int biasStride, Tensor q, Tensor k, Tensor v, GemmVariant variant)
    {
        const string op = "attention q/k/v projection of GroupNorm(image)";
        var ops = QueryKeyValueOperands(op, image, weights, weightStride, biases, biasStride, q, k, v);
        if (!Gemm.UsesCore(image.Device, variant))
            throw new ArgumentException($"{op}: runs on the GEMM core, not on {image.Device.Description}");
        var table = prepared.TableFor(op, image, norm);
        if (ops.M == 0 || ops.N == 0 || image.N == 0) return;
        GemmCore.Launch(image.Device, "attention-qkv-normalized-core", new NormalizedImageOperands(ops, table, image.C), ops.M, ops.N, image.C,
            3 * image.N, variant);
    }

    /// <summary>The q/k/v GEMM with A (the image, m = position, k = channel) normalised on load: A x scale[i, k] + shift[i, k]
    /// from a [N C, 2] table (item i = b mod N). Row part S = 2 C i, depth part Q = 2 k: their sum indexes the table.</summary>
    internal readonly struct NormalizedImageOperands : IGemmOperands
    {
        public readonly Gemm.Operands Plain;
        public readonly ArrayView<float> Table;
        public readonly int Channels;

        public NormalizedImageOperands(Gemm.Operands plain, ArrayView<float> table, int channels)
        {
            Plain = plain;
            Table = table;
            Channels = channels;
        }

        public bool AContiguousInK => Plain.AContiguousInK;
        public bool BContiguousInN => Plain.BContiguousInN;
        public bool Im2Col => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GemmCursor RowA(int b, int m)
        {
            var r = Plain.RowA(b, m);
            r.S = 2 * Channels * (b % Plain.Items);
            return r;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GemmCursor DepthA(int b, int k)
        {
            var d = Plain.DepthA(b, k);
            d.Q = 2 * k;
            return d;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GemmCursor StepA(GemmCursor depth)
        {
            var d = Plain.StepA(depth);
            d.Q = depth.Q + 2 * GemmCore.BK;
            return d;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float LoadA(GemmCursor row, GemmCursor depth)
        {
            int t = row.S + depth.Q;
            return Plain.LoadA(row, depth) * Table[t] + Table[t + 1];
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GemmCursor ColumnB(int b, int n) => Plain.ColumnB(b, n);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GemmCursor DepthB(int b, int k) => Plain.DepthB(b, k);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public GemmCursor StepB(GemmCursor depth) => Plain.StepB(depth);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float LoadB(GemmCursor depth, GemmCursor column) => Plain.LoadB(depth, column);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Store(int b, int m, int n, float acc) => Plain.Store(b, m, n, acc);
    }

    /// <summary>
    /// y [N, C, H, W] = (attended W^T + bias, as an image, + residual) * scale, where attended [N, HW, C] holds
    /// tokens: diffusers' to_out, residual connection and rescale_output_factor in one GEMM. y may be the residual.
    /// </summary>
    /// <exception cref="ArgumentException">Shapes do not fit.</exception>
    public static void OutputToImage(Tensor attended, Tensor weight, Tensor bias, Tensor? residual, float scale, Tensor y) =>
        OutputToImage(attended, weight, bias, residual, scale, y, GemmVariant.Auto);

    /// <summary>
    /// <see cref="OutputToImage(Tensor, Tensor, Tensor, Tensor?, float, Tensor)"/> that also prepares <paramref name="next"/>,
    /// the GroupNorm the following layer applies to y (the next resnet's norm1), in the same launch (as
    /// <c>Conv2dNormalized.RunPreparingNext</c>). Returns the table, or null where it is not prepared (more than one image,
    /// not a GEMM-core device, shapes the preparing launch does not serve); y is the same either way.
    /// </summary>
    /// <exception cref="ArgumentException">Shapes do not fit.</exception>
    public static PreparedGroupNorm? OutputToImagePreparingNext(Tensor attended, Tensor weight, Tensor bias, Tensor? residual, float scale, Tensor y,
        OutputNorm next) => OutputToImagePreparingNext(attended, weight, bias, residual, scale, y, next, GemmVariant.Auto);

    internal static PreparedGroupNorm? OutputToImagePreparingNext(Tensor attended, Tensor weight, Tensor bias, Tensor? residual, float scale,
        Tensor y, OutputNorm next, GemmVariant variant)
    {
        var ops = OutputOperands(attended, weight, bias, residual, scale, y);
        next.Check("attention output projection (next norm)", y, y.C);
        // The preparing kernel folds images into n; this GEMM has one batch item per image, so one image only.
        if (y.N == 1 && y.C > 0 && Gemm.UsesCore(y.Device, variant) &&
            GemmNormStats.TryLaunch("attention-out-core-norm-stats", ops, y.C, y, next, variant, out var prepared))
            return prepared;
        Gemm.Launch(y.Device, ops, y.C, y.N, variant);
        return null;
    }

    internal static void OutputToImage(Tensor attended, Tensor weight, Tensor bias, Tensor? residual, float scale, Tensor y, GemmVariant variant) =>
        Gemm.Launch(y.Device, OutputOperands(attended, weight, bias, residual, scale, y), y.C, y.N, variant);

    private static Gemm.Operands OutputOperands(Tensor attended, Tensor weight, Tensor bias, Tensor? residual, float scale, Tensor y)
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
        return new Gemm.Operands(weight.View, 0, c, 1, attended.View, p * c, 1, c, y.View, c, p, 1f, 0f, bias.View, true)
            .WithEpilogue(biasPerRow: true, (residual ?? y).View, residual is not null, scale);
    }
}

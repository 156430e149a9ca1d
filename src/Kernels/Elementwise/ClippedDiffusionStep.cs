using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Gemm;
using PosteriorGpu.Kernels.Random;
using PosteriorGpu.Kernels.Reductions;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Elementwise;

/// <summary>
/// A DDPM/DDIM step whose predicted x0 is clipped or dynamically thresholded first, as diffusers'
/// DDPMScheduler.step and DDIMScheduler.step do with clip_sample or thresholding set:
/// x0 = (x - sqrt(1 - a_t) eps) / sqrt(a_t); x0' = clamp(x0, -r, r) (clip_sample, r = clip_sample_range) or
/// clamp(x0, -s_n, s_n) / s_n with item n's threshold s_n (<see cref="DynamicThreshold"/>);
/// x' = X0 * x0' + X * x + Eps * eps + Sigma * z. One read of x and eps, one write, as <see cref="DiffusionStep"/>;
/// that unclipped step stays the default path (its fused coefficients fold x0 away, which a clamp forbids).
/// </summary>
public static class ClippedDiffusionStep
{
    /// <summary>Scalars of one step: x0 = (x - SqrtOneMinusAlpha * eps) / SqrtAlpha, then x' = X0 * x0' + X * x + Eps * eps + Sigma * z.</summary>
    public readonly record struct Coefficients(float SqrtAlpha, float SqrtOneMinusAlpha, float X0, float X, float Eps, float Sigma);

    /// <summary>
    /// DDPM (Ho et al. 2020, eqs. 6-7, diffusers' DDPMScheduler.step stages 4-6): beta_t = 1 - a_t / a_p,
    /// x' = sqrt(a_p) beta_t / (1 - a_t) x0' + sqrt(a_t / a_p) (1 - a_p) / (1 - a_t) x + sigma z, sigma as
    /// <see cref="DiffusionStep.Ddpm"/> ("fixed_small" or "fixed_large").
    /// </summary>
    public static Coefficients Ddpm(double alphaT, double alphaPrev, bool fixedLarge = false)
    {
        double beta = 1 - alphaT / alphaPrev;
        double c0 = Math.Sqrt(alphaPrev) * beta / (1 - alphaT);
        double ct = Math.Sqrt(alphaT / alphaPrev) * (1 - alphaPrev) / (1 - alphaT);
        return new Coefficients((float)Math.Sqrt(alphaT), (float)Math.Sqrt(1 - alphaT), (float)c0, (float)ct, 0f,
            DiffusionStep.Ddpm(alphaT, alphaPrev, fixedLarge).Sigma);
    }

    /// <summary>
    /// DDIM (Song et al. 2021, eq. 12, diffusers' DDIMScheduler.step stages 5-7): x' = sqrt(a_p) x0' + d eps + sigma z with
    /// d = sqrt(1 - a_p - sigma^2) and the model's eps. With <paramref name="useClippedModelOutput"/> (diffusers' step
    /// argument of that name, GLIDE's choice) eps is first re-derived from the clipped x0,
    /// eps' = (x - sqrt(a_t) x0') / sqrt(1 - a_t), which folds into the coefficients of x0' and x.
    /// </summary>
    public static Coefficients Ddim(double alphaT, double alphaPrev, double eta, bool useClippedModelOutput = false)
    {
        float sigma = DiffusionStep.Ddim(alphaT, alphaPrev, eta).Sigma;
        double d = Math.Sqrt(Math.Max(1 - alphaPrev - (double)sigma * sigma, 0));
        double sa = Math.Sqrt(alphaT), s1 = Math.Sqrt(1 - alphaT);
        return useClippedModelOutput
            ? new Coefficients((float)sa, (float)s1, (float)(Math.Sqrt(alphaPrev) - d * sa / s1), (float)(d / s1), 0f, sigma)
            : new Coefficients((float)sa, (float)s1, (float)Math.Sqrt(alphaPrev), 0f, (float)d, sigma);
    }

    /// <summary>diffusers' stage "clip or threshold predicted x_0" for one value: clamp(x0, -clipRange, clipRange), or with
    /// <paramref name="thresholded"/> non-zero clamp(x0, -s, s) / s for the item's threshold s. Both bounds are positive
    /// (clip_sample_range and sample_max_value are validated so; a threshold is at least min(1, sample_max_value)), where
    /// the symmetric clamp is torch.clamp bit for bit.</summary>
    public static float ClipX0(float x0, float clipRange, int thresholded, float s) =>
        thresholded == 0 ? DynamicThreshold.ClampSymmetric(x0, clipRange) : DynamicThreshold.ClampSymmetric(x0, s) / s;

    /// <summary>The specification: a plain loop. <paramref name="thresholds"/> empty clips to [-clipRange, clipRange];
    /// else it holds one threshold per item (x's length must be a multiple of its length).</summary>
    public static void Reference(Span<float> x, ReadOnlySpan<float> eps, Coefficients c, float clipRange, ReadOnlySpan<float> thresholds, RandomDraw draw)
    {
        int itemLength = thresholds.Length == 0 ? x.Length : x.Length / thresholds.Length;
        for (int i = 0; i < x.Length; i++)
        {
            float x0 = DynamicThreshold.PredictX0(x[i], eps[i], c.SqrtAlpha, c.SqrtOneMinusAlpha);
            float p = ClipX0(x0, clipRange, thresholds.Length == 0 ? 0 : 1, thresholds.Length == 0 ? 0f : thresholds[i / itemLength]);
            x[i] = c.X0 * p + c.X * x[i] + c.Eps * eps[i] + (c.Sigma != 0 ? c.Sigma * draw.Normal(i) : 0);
        }
    }

    /// <summary>One Philox block and (<see cref="VectorIO"/>) one 16-byte load per operand per whole quad; thread 0 does the
    /// partial quads (see <see cref="LangevinStep"/>). <typeparamref name="TClip"/> fixes at compile time whether x0 is
    /// clipped to a range or thresholded by item, and how a quad finds its items (so each loop holds only its own path).</summary>
    internal static void Kernel<TIO, TClip>(Index1D tid, ElementRange quads, QuadSplit split, ArrayView<float> x, ArrayView<float> eps,
        Coefficients c, float clipRange, ItemDivisor items, ArrayView<float> thresholds, QuadDraw draw)
        where TIO : struct, IQuadIO where TClip : struct, IClipKind
    {
        if (c.Sigma != 0) Loop<TIO, TClip, Noisy>(tid, quads, split, x, eps, c, clipRange, items, thresholds, draw);
        else Loop<TIO, TClip, Quiet>(tid, quads, split, x, eps, c, clipRange, items, thresholds, draw);
    }

    private static void Loop<TIO, TClip, TNoise>(Index1D tid, ElementRange quads, QuadSplit split, ArrayView<float> x, ArrayView<float> eps,
        Coefficients c, float clipRange, ItemDivisor items, ArrayView<float> thresholds, QuadDraw draw)
        where TIO : struct, IQuadIO where TClip : struct, IClipKind where TNoise : struct, INoiseFlag
    {
        if (tid == 0)
        {
            if (split.Lead > 0) Edge<TClip, TNoise>(0, split.Total, x, eps, c, clipRange, items, thresholds, draw);
            if (split.Tail > 0) Edge<TClip, TNoise>(split.FirstQuad + split.Full, split.Total, x, eps, c, clipRange, items, thresholds, draw);
        }
        var io = default(TIO);
        var kind = default(TClip);
        for (int q = quads.First(tid), end = quads.End(tid), stride = quads.Stride; q < end; q += stride)
        {
            int e = split.Lead + 4 * q;
            Float4 s = default;
            if (kind.PerQuad)
            {
                // Every lane of a whole quad lies in one item (item length a multiple of 4, quads from element 0).
                s.X = thresholds[items.Of(e)];
                s.Y = s.X;
                s.Z = s.X;
                s.W = s.X;
            }
            else if (kind.TwoItems)
            {
                // Item length >= 3: four consecutive elements touch at most two items. The quad's lanes below b lie in
                // e's item, the others in the next one. A quad inside one item (b >= 4) loads its own item twice, so the
                // last item never reads past the end.
                int item = items.Of(e), b = (item + 1) * items.Length - e;
                float first = thresholds[item], next = thresholds[b < 4 ? item + 1 : item];
                s.X = first;
                s.Y = b > 1 ? first : next;
                s.Z = b > 2 ? first : next;
                s.W = b > 3 ? first : next;
            }
            else if (kind.Thresholded)
            {
                // Items of 1 or 2 elements: a lane's item is its index shifted right by 0 or 1 (no division).
                int shift = items.Length - 1;
                s.X = thresholds[e >> shift];
                s.Y = thresholds[(e + 1) >> shift];
                s.Z = thresholds[(e + 2) >> shift];
                s.W = thresholds[(e + 3) >> shift];
            }
            io.Store(x, e, Update<TNoise>(io.Load(x, e), io.Load(eps, e), s, c, clipRange, kind.Thresholded ? 1 : 0, split.FirstQuad + q, draw));
        }
    }

    private static void Edge<TClip, TNoise>(int q, int total, ArrayView<float> x, ArrayView<float> eps, Coefficients c, float clipRange,
        ItemDivisor items, ArrayView<float> thresholds, QuadDraw draw) where TClip : struct, IClipKind where TNoise : struct, INoiseFlag
    {
        int i0 = draw.QuadStart(q);
        Float4 s = default;
        bool thresholded = default(TClip).Thresholded;
        if (thresholded)
        {
            // Lanes outside the range read a neighbour's threshold (their result is not stored).
            s.X = thresholds[items.Of(Math.Min(Math.Max(i0, 0), total - 1))];
            s.Y = thresholds[items.Of(Math.Min(Math.Max(i0 + 1, 0), total - 1))];
            s.Z = thresholds[items.Of(Math.Min(Math.Max(i0 + 2, 0), total - 1))];
            s.W = thresholds[items.Of(Math.Min(Math.Max(i0 + 3, 0), total - 1))];
        }
        QuadEdge.Store(x, i0, total, Update<TNoise>(QuadEdge.Load(x, i0, total), QuadEdge.Load(eps, i0, total), s, c, clipRange,
            thresholded ? 1 : 0, q, draw));
    }

    private static Float4 Update<TNoise>(Float4 x, Float4 eps, Float4 s, Coefficients c, float clipRange, int thresholded, int q, QuadDraw draw)
        where TNoise : struct, INoiseFlag
    {
        bool draws = default(TNoise).Draws;
        float z0 = 0, z1 = 0, z2 = 0, z3 = 0;
        if (draws) draw.Normal4(q, out z0, out z1, out z2, out z3);
        x.X = Lane(x.X, eps.X, s.X, c, clipRange, thresholded, draws, z0);
        x.Y = Lane(x.Y, eps.Y, s.Y, c, clipRange, thresholded, draws, z1);
        x.Z = Lane(x.Z, eps.Z, s.Z, c, clipRange, thresholded, draws, z2);
        x.W = Lane(x.W, eps.W, s.W, c, clipRange, thresholded, draws, z3);
        return x;
    }

    /// <summary>One element; <paramref name="draws"/> is c.Sigma != 0.</summary>
    private static float Lane(float xi, float ei, float s, Coefficients c, float clipRange, int thresholded, bool draws, float z)
    {
        float x0 = DynamicThreshold.PredictX0(xi, ei, c.SqrtAlpha, c.SqrtOneMinusAlpha);
        float p = ClipX0(x0, clipRange, thresholded, thresholded == 0 ? 0f : s);
        float v = c.X0 * p + c.X * xi + c.Eps * ei;
        if (draws) v += c.Sigma * z;
        return v;
    }

    /// <summary>How the kernel clips x0: to [-clipRange, clipRange], or by the threshold of each lane's item.</summary>
    internal interface IClipKind
    {
        /// <summary>Thresholded by item (else clipped to the range).</summary>
        bool Thresholded { get; }
        /// <summary>Thresholded, and every whole quad lies in one item: one lookup per quad.</summary>
        bool PerQuad { get; }
        /// <summary>Thresholded, items of at least 3 elements: a quad spans at most two items, two lookups per quad.</summary>
        bool TwoItems { get; }
    }

    /// <summary>clip_sample: clamp to [-clipRange, clipRange].</summary>
    internal readonly struct ClipToRange : IClipKind
    {
        public bool Thresholded => false;
        public bool PerQuad => false;
        public bool TwoItems => false;
    }

    /// <summary>Dynamic thresholding, one item lookup per lane (items of 1 or 2 elements: the item is the index shifted).</summary>
    internal readonly struct ThresholdShortItems : IClipKind
    {
        public bool Thresholded => true;
        public bool PerQuad => false;
        public bool TwoItems => false;
    }

    /// <summary>Dynamic thresholding, two item lookups per quad (items of at least 3 elements at any length and offset).</summary>
    internal readonly struct ThresholdTwoItems : IClipKind
    {
        public bool Thresholded => true;
        public bool PerQuad => false;
        public bool TwoItems => true;
    }

    /// <summary>Dynamic thresholding, one item lookup per quad (item length a multiple of 4, no head quad).</summary>
    internal readonly struct ThresholdPerQuad : IClipKind
    {
        public bool Thresholded => true;
        public bool PerQuad => true;
        public bool TwoItems => false;
    }

    /// <summary>The step in place, x0 clipped to [-clipRange, clipRange] when <paramref name="thresholds"/> is null,
    /// else thresholded by item (thresholds [N], from <see cref="DynamicThreshold.Run"/>).</summary>
    public static void Run(Tensor x, Tensor eps, Coefficients c, float clipRange, Tensor? thresholds, RandomDraw draw)
    {
        const string op = "clipped diffusion step";
        Shape.RequireSame(op, eps, "eps", x, "x");
        if (thresholds is null && !(clipRange > 0))
            throw new ArgumentOutOfRangeException(nameof(clipRange), clipRange, $"{op}: the clip range must be positive (clip_sample_range)");
        if (thresholds is not null) Shape.Require(op, thresholds, "thresholds", x.N);
        var split = QuadSplit.For(x.Length, draw);
        var plan = x.Device.Plan(split.Full);
        int itemLength = Math.Max(x.ItemLength, 1);
        bool aligned = split.Aligned(x.View, eps.View);
        var k = thresholds is null ? Load<ClipToRange>(x.Device, "", aligned)
            : itemLength % 4 == 0 && split.Lead == 0 ? Load<ThresholdPerQuad>(x.Device, "-per-quad", aligned)
            : itemLength >= 3 ? Load<ThresholdTwoItems>(x.Device, "-two-items", aligned)
            : Load<ThresholdShortItems>(x.Device, "-short-items", aligned);
        k(plan.Threads, plan, split, x.View, eps.View, c, clipRange, new ItemDivisor(itemLength), (thresholds ?? x).View, new QuadDraw(draw));
    }

    private static Action<Index1D, ElementRange, QuadSplit, ArrayView<float>, ArrayView<float>, Coefficients, float, ItemDivisor,
        ArrayView<float>, QuadDraw> Load<TClip>(GpuDevice device, string kind, bool aligned) where TClip : struct, IClipKind =>
        aligned
            ? device.Kernel("clipped-diffusion-step" + kind, static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, QuadSplit,
                ArrayView<float>, ArrayView<float>, Coefficients, float, ItemDivisor, ArrayView<float>, QuadDraw>(Kernel<VectorIO, TClip>))
            : device.Kernel("clipped-diffusion-step" + kind + "-unaligned", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, QuadSplit,
                ArrayView<float>, ArrayView<float>, Coefficients, float, ItemDivisor, ArrayView<float>, QuadDraw>(Kernel<ScalarIO, TClip>));
}

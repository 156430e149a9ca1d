using PosteriorGpu.Kernels.Conv;
using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Norm;
using PosteriorGpu.Kernels.Reductions;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Models.UNet;

/// <summary>
/// diffusers' ResnetBlock2D (pre-norm): h0 = silu(norm1(x)); h1 = conv1(h0) (+ time_emb_proj(silu(temb))
/// when "default"); h2 = silu(norm2(h1)) (or silu(norm2(h1) (1 + scale) + shift) when "scale_shift");
/// out = (shortcut(x) + conv2(h2)) / output_scale_factor. The time add, skip add and scale are fused into
/// the convolutions' epilogues. The backward pass covers "default" only.
/// </summary>
internal sealed class ResnetBlock2D
{
    private readonly GroupNormLayer norm1, norm2;
    private readonly Conv2dLayer conv1, conv2;
    private readonly Conv2dLayer? shortcut;
    private readonly LinearLayer timeProj;
    private readonly bool scaleShift;
    private readonly float outputScale;
    // Activations of the last recording forward pass.
    private Tensor x = null!, h0 = null!, h1 = null!, h2 = null!;

    public ResnetBlock2D(ParameterStore s, string prefix, int cin, int cout, int temb, int groups, float eps,
        bool scaleShift, double outputScaleFactor)
    {
        norm1 = new GroupNormLayer(s, prefix + ".norm1", cin, groups, eps);
        conv1 = new Conv2dLayer(s, prefix + ".conv1", cin, cout, 3, Conv2dParams.Same(1, 1));
        timeProj = new LinearLayer(s, prefix + ".time_emb_proj", temb, scaleShift ? 2 * cout : cout);
        norm2 = new GroupNormLayer(s, prefix + ".norm2", cout, groups, eps);
        conv2 = new Conv2dLayer(s, prefix + ".conv2", cout, cout, 3, Conv2dParams.Same(1, 1));
        if (cin != cout) shortcut = new Conv2dLayer(s, prefix + ".conv_shortcut", cin, cout, 1, Conv2dParams.Same(1, 0));
        this.scaleShift = scaleShift;
        outputScale = (float)(1.0 / outputScaleFactor);
    }

    /// <summary>Input and output channels.</summary>
    public int InChannels => conv1.InChannels;

    /// <inheritdoc cref="InChannels"/>
    public int OutChannels => conv2.OutChannels;

    /// <summary>time_emb_proj, whose product the model computes for every resnet in one launch.</summary>
    public LinearLayer TimeProjection => timeProj;

    /// <summary>time_emb_proj(silu(temb)) [N, Cout or 2 Cout] of the current pass, computed by the model for all resnets
    /// at once (a view into its buffer); null: the block computes it itself.</summary>
    public Tensor? ProjectedTime { get; set; }

    /// <summary>norm1 where the block reads a table of it that the layer before may prepare (norm1 normalised while conv1
    /// loads); null with scale-shift time conditioning, whose path normalises norm1 itself.</summary>
    public GroupNormLayer? PreparableNorm1 => scaleShift ? null : norm1;

    /// <summary>x [N, Cin, H, W] (the caller owns it); tembSilu = silu(time embedding) [N, temb];
    /// returns a rented [N, Cout, H, W] (kept on the tape when recording), or writes <paramref name="into"/> (a view the
    /// caller owns) and returns it.</summary>
    public Tensor Forward(Tensor input, Tensor tembSilu, TensorPool pool, Tape tape, Tensor? into = null) =>
        Forward(input, tembSilu, pool, tape, out _, into);

    /// <summary><see cref="Forward(Tensor, Tensor, TensorPool, Tape, Tensor?)"/> with norm1's table <paramref name="prepared"/>
    /// when the layer before made it, and, with <paramref name="next"/>, that norm's table of the output prepared by conv2's
    /// launch (<paramref name="preparedNext"/>; null where it is not: training, other devices, shapes it does not serve).</summary>
    public Tensor Forward(Tensor input, Tensor tembSilu, TensorPool pool, Tape tape, out PreparedGroupNorm? preparedNext, Tensor? into = null,
        PreparedGroupNorm? prepared = null, OutputNorm next = default)
    {
        preparedNext = null;
        if (ProjectedTime is { } projected) return Run(input, projected, pool, tape, into, prepared, next, out preparedNext);
        using var t = timeProj.Forward(tembSilu, pool);
        return Run(input, t, pool, tape, into, prepared, next, out preparedNext);
    }

    private Tensor Run(Tensor input, Tensor t, TensorPool pool, Tape tape, Tensor? into, PreparedGroupNorm? prepared, OutputNorm next,
        out PreparedGroupNorm? preparedNext)
    {
        x = input;
        preparedNext = null;
        if (!tape.Recording && !scaleShift && Conv2dNormalized.Serves(input))
            return RunNormalizedOnLoad(t, pool, tape, into, prepared, next, out preparedNext);
        h0 = tape.Keep(norm1.Forward(x, pool, silu: true));
        h1 = tape.Keep(scaleShift ? conv1.Forward(h0, pool) : conv1.Forward(h0, pool, channelAdd: t));
        tape.Release(h0);
        if (scaleShift)
        {
            h2 = tape.Keep(norm2.Forward(h1, pool, silu: false));
            ChannelScaleShift.Run(h2, t, h2, silu: true);
        }
        else
        {
            h2 = tape.Keep(norm2.Forward(h1, pool, silu: true));
        }
        tape.Release(h1);
        Tensor y;
        if (shortcut is null)
        {
            y = conv2.Forward(h2, pool, residual: x, outputScale: outputScale, into: into);
        }
        else
        {
            using var skip = shortcut.Forward(x, pool);
            y = conv2.Forward(h2, pool, residual: skip, outputScale: outputScale, into: into);
        }
        tape.Release(h2);
        return tape.Keep(y);
    }

    /// <summary>Outside training, on the GEMM core: each GroupNorm (+SiLU) is normalised while its convolution loads its input
    /// (<see cref="Conv2dNormalized"/>), so neither normalised tensor goes through memory; conv1 also prepares norm2's table (and conv2 the next layer's norm1, when asked)
    /// (<see cref="Conv2dNormalized.RunPreparingNext(Tensor, int, Tensor, Tensor, float, bool, Tensor, Tensor?, Tensor, Conv2dParams, OutputNorm, Tensor?, Tensor?, float, PreparedGroupNorm?)"/>).
    /// Equal to the unfused GPU path within rounding (the prepared table sums in another order; bitwise where it is not prepared).</summary>
    private Tensor RunNormalizedOnLoad(Tensor t, TensorPool pool, Tape tape, Tensor? into, PreparedGroupNorm? prepared, OutputNorm next,
        out PreparedGroupNorm? preparedNext)
    {
        // conv1 also prepares norm2's table of its output (no table launch for conv2) where the shapes allow; conv2 likewise
        // the next layer's norm1.
        var h = tape.Keep(conv1.ForwardNormalized(x, norm1, silu: true, pool, out var prepared2, next: norm2, channelAdd: t, prepared: prepared));
        preparedNext = null;
        if (shortcut is not null && Conv2dNormalized.Serves(h))
        {
            // conv2 and the 1x1 shortcut as one GEMM along a longer k: no shortcut tensor, no launch for it.
            var fused = conv2.ForwardNormalizedWithShortcut(h, norm2, silu: true, shortcut, x, pool, out preparedNext, next, outputScale, into,
                prepared2);
            tape.Release(h);
            return tape.Keep(fused);
        }
        Tensor? skip = shortcut?.Forward(x, pool);
        var residual = skip ?? x;
        Tensor y;
        if (Conv2dNormalized.Serves(h))
            y = conv2.ForwardNormalized(h, norm2, silu: true, pool, out preparedNext, next, residual: residual, outputScale: outputScale,
                into: into, prepared: prepared2);
        else
        {
            using var normalized = norm2.Forward(h, pool, silu: true);
            y = conv2.Forward(normalized, pool, residual: residual, outputScale: outputScale, into: into);
        }
        skip?.Dispose();
        tape.Release(h);
        return tape.Keep(y);
    }

    /// <summary>Parameter gradients from dOut (after a recording forward pass); dX (+)= the input gradient;
    /// dTembSilu += its share.</summary>
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

using PosteriorGpu.Kernels.Conv;
using PosteriorGpu.Kernels.Elementwise;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Models.UNet;

/// <summary>
/// diffusers' ResnetBlock2D (pre-norm): h = conv1(silu(norm1(x))) (+ time projection when
/// "default"); h = silu(norm2(h)) (or silu(norm2(h) (1 + scale) + shift) when "scale_shift");
/// out = (shortcut(x) + conv2(h)) / output_scale_factor. The time add, skip add and scale are
/// fused into the convolutions' epilogues.
/// </summary>
internal sealed class ResnetBlock2D : IDisposable
{
    private readonly GroupNormLayer norm1;
    private readonly Conv2dLayer conv1;
    private readonly LinearLayer timeProj;
    private readonly GroupNormLayer norm2;
    private readonly Conv2dLayer conv2;
    private readonly Conv2dLayer? shortcut;
    private readonly bool scaleShift;
    private readonly float outputScale;

    public ResnetBlock2D(WeightLoader w, string prefix, int cin, int cout, int tembChannels, int groups, float eps,
        bool scaleShift, double outputScaleFactor)
    {
        norm1 = new GroupNormLayer(w, prefix + ".norm1", cin, groups, eps);
        conv1 = new Conv2dLayer(w, prefix + ".conv1", cin, cout, 3, Conv2dParams.Same(1, 1));
        timeProj = new LinearLayer(w, prefix + ".time_emb_proj", tembChannels, scaleShift ? 2 * cout : cout);
        norm2 = new GroupNormLayer(w, prefix + ".norm2", cout, groups, eps);
        conv2 = new Conv2dLayer(w, prefix + ".conv2", cout, cout, 3, Conv2dParams.Same(1, 1));
        if (cin != cout) shortcut = new Conv2dLayer(w, prefix + ".conv_shortcut", cin, cout, 1, Conv2dParams.Same(1, 0));
        this.scaleShift = scaleShift;
        outputScale = (float)(1.0 / outputScaleFactor);
    }

    /// <summary>x [N, Cin, H, W]; tembSilu = silu(time embedding) [N, temb]; returns a rented [N, Cout, H, W].</summary>
    public Tensor Forward(Tensor x, Tensor tembSilu, TensorPool pool)
    {
        using var t = timeProj.Forward(tembSilu, pool);
        Tensor h2;
        using (var h0 = norm1.Forward(x, pool, silu: true))
        {
            using var h1 = scaleShift ? conv1.Forward(h0, pool) : conv1.Forward(h0, pool, channelAdd: t);
            if (scaleShift)
            {
                h2 = norm2.Forward(h1, pool, silu: false);
                ChannelScaleShift.Run(h2, t, h2, silu: true);
            }
            else
            {
                h2 = norm2.Forward(h1, pool, silu: true);
            }
        }
        using (h2)
        {
            if (shortcut is null) return conv2.Forward(h2, pool, residual: x, outputScale: outputScale);
            using var skip = shortcut.Forward(x, pool);
            return conv2.Forward(h2, pool, residual: skip, outputScale: outputScale);
        }
    }

    public void Dispose()
    {
        norm1.Dispose();
        conv1.Dispose();
        timeProj.Dispose();
        norm2.Dispose();
        conv2.Dispose();
        shortcut?.Dispose();
    }
}

using PosteriorGpu.Kernels.Conv;
using PosteriorGpu.Kernels.Layout;
using PosteriorGpu.Kernels.Resample;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Models.UNet;

/// <summary>DownBlock2D / AttnDownBlock2D: resnets (each followed by attention in the Attn variant),
/// then an optional stride-2 conv downsampler; every output is kept for the skip connections.</summary>
internal sealed class DownBlock : IDisposable
{
    private readonly ResnetBlock2D[] resnets;
    private readonly AttentionBlock?[] attentions;
    private readonly Conv2dLayer? downsampler;

    public DownBlock(WeightLoader w, string prefix, UNet2DConfig c, int index, int cin, int cout, int temb, bool attention, bool addDownsample)
    {
        // Grown as the weights load, not sized from the config: a config claiming a billion layers fails at the
        // first missing tensor instead of allocating for all of them.
        var r = new List<ResnetBlock2D>();
        var a = new List<AttentionBlock?>();
        for (int i = 0; i < c.LayersPerBlock; i++)
        {
            r.Add(new ResnetBlock2D(w, $"{prefix}.resnets.{i}", i == 0 ? cin : cout, cout, temb, c.NormNumGroups, (float)c.NormEps,
                c.ResnetTimeScaleShift == "scale_shift", 1.0));
            a.Add(attention ? new AttentionBlock(w, $"{prefix}.attentions.{i}", cout, c.AttentionHeadSize(cout), c.NormNumGroups, (float)c.NormEps, 1.0) : null);
        }
        resnets = r.ToArray();
        attentions = a.ToArray();
        if (addDownsample)
        {
            // diffusers' Downsample2D: padding 0 means an asymmetric (0, 1, 0, 1) pad before the stride-2 conv.
            var p = c.DownsamplePadding == 0 ? new Conv2dParams(2, 0, 0, 1, 1) : Conv2dParams.Same(2, c.DownsamplePadding);
            downsampler = new Conv2dLayer(w, $"{prefix}.downsamplers.0.conv", cout, cout, 3, p);
        }
        Index = index;
    }

    public int Index { get; }

    /// <summary>Consumes x (disposes it unless it is kept as a skip); pushes skips; returns the output.</summary>
    public Tensor Forward(Tensor x, Tensor tembSilu, TensorPool pool, List<Tensor> skips)
    {
        var h = x;
        for (int i = 0; i < resnets.Length; i++)
        {
            var next = resnets[i].Forward(h, tembSilu, pool);
            if (attentions[i] is { } attn)
            {
                var attended = attn.Forward(next, pool);
                next.Dispose();
                next = attended;
            }
            skips.Add(next);
            h = next;
        }
        if (downsampler is not null)
        {
            h = downsampler.Forward(h, pool);
            skips.Add(h);
        }
        return h;
    }

    public void Dispose()
    {
        foreach (var r in resnets) r.Dispose();
        foreach (var a in attentions) a?.Dispose();
        downsampler?.Dispose();
    }
}

/// <summary>UNetMidBlock2D: resnet, then (attention, resnet) pairs; one pair in UNet2DModel.</summary>
internal sealed class MidBlock : IDisposable
{
    private readonly ResnetBlock2D first;
    private readonly AttentionBlock? attention;
    private readonly ResnetBlock2D second;

    public MidBlock(WeightLoader w, UNet2DConfig c, int channels, int temb)
    {
        bool scaleShift = c.ResnetTimeScaleShift == "scale_shift";
        first = new ResnetBlock2D(w, "mid_block.resnets.0", channels, channels, temb, c.NormNumGroups, (float)c.NormEps, scaleShift, c.MidBlockScaleFactor);
        if (c.AddAttention)
        {
            attention = new AttentionBlock(w, "mid_block.attentions.0", channels, c.AttentionHeadSize(channels), c.MidAttentionNormGroups,
                (float)c.NormEps, c.MidBlockScaleFactor);
        }
        second = new ResnetBlock2D(w, "mid_block.resnets.1", channels, channels, temb, c.NormNumGroups, (float)c.NormEps, scaleShift, c.MidBlockScaleFactor);
    }

    public Tensor Forward(Tensor x, Tensor tembSilu, TensorPool pool)
    {
        var h = first.Forward(x, tembSilu, pool);
        if (attention is not null)
        {
            var a = attention.Forward(h, pool);
            h.Dispose();
            h = a;
        }
        using (h) return second.Forward(h, tembSilu, pool);
    }

    public void Dispose()
    {
        first.Dispose();
        attention?.Dispose();
        second.Dispose();
    }
}

/// <summary>UpBlock2D / AttnUpBlock2D: layers_per_block + 1 resnets, each on the concatenation of the
/// running tensor with the newest skip, attention after each in the Attn variant, then an optional
/// nearest-2x upsample followed by a 3x3 conv.</summary>
internal sealed class UpBlock : IDisposable
{
    private readonly ResnetBlock2D[] resnets;
    private readonly AttentionBlock?[] attentions;
    private readonly Conv2dLayer? upsampler;

    public UpBlock(WeightLoader w, string prefix, UNet2DConfig c, int cin, int prevOut, int cout, int temb, bool attention, bool addUpsample)
    {
        long layers = (long)c.LayersPerBlock + 1;   // grown as the weights load, as in DownBlock
        var r = new List<ResnetBlock2D>();
        var a = new List<AttentionBlock?>();
        for (int i = 0; i < layers; i++)
        {
            int skipChannels = i == layers - 1 ? cin : cout;
            int inChannels = i == 0 ? prevOut : cout;
            r.Add(new ResnetBlock2D(w, $"{prefix}.resnets.{i}", inChannels + skipChannels, cout, temb, c.NormNumGroups, (float)c.NormEps,
                c.ResnetTimeScaleShift == "scale_shift", 1.0));
            a.Add(attention ? new AttentionBlock(w, $"{prefix}.attentions.{i}", cout, c.AttentionHeadSize(cout), c.NormNumGroups, (float)c.NormEps, 1.0) : null);
        }
        resnets = r.ToArray();
        attentions = a.ToArray();
        if (addUpsample) upsampler = new Conv2dLayer(w, $"{prefix}.upsamplers.0.conv", cout, cout, 3, Conv2dParams.Same(1, 1));
    }

    public int Resnets => resnets.Length;

    /// <summary>Consumes x and the skips it pops; returns the output.</summary>
    public Tensor Forward(Tensor x, Tensor tembSilu, TensorPool pool, List<Tensor> skips)
    {
        var h = x;
        for (int i = 0; i < resnets.Length; i++)
        {
            var skip = skips[^1];
            skips.RemoveAt(skips.Count - 1);
            Tensor next;
            using (var cat = pool.Rent(h.N, h.C + skip.C, h.H, h.W))
            {
                ConcatChannels.Run(h, skip, cat);
                h.Dispose();
                skip.Dispose();
                next = resnets[i].Forward(cat, tembSilu, pool);
            }
            if (attentions[i] is { } attn)
            {
                var attended = attn.Forward(next, pool);
                next.Dispose();
                next = attended;
            }
            h = next;
        }
        if (upsampler is not null)
        {
            using var up = pool.Rent(h.N, h.C, 2 * h.H, 2 * h.W);
            Upsample2x.Run(h, up);
            h.Dispose();
            h = upsampler.Forward(up, pool);
        }
        return h;
    }

    public void Dispose()
    {
        foreach (var r in resnets) r.Dispose();
        foreach (var a in attentions) a?.Dispose();
        upsampler?.Dispose();
    }
}

using PosteriorGpu.Kernels.Attention;
using PosteriorGpu.Kernels.Conv;
using PosteriorGpu.Kernels.Embedding;
using PosteriorGpu.Kernels.Gemm;
using PosteriorGpu.Kernels.Norm;
using PosteriorGpu.Models.UNet;

namespace PosteriorGpu.Tests.Models;

/// <summary>
/// A second, host-only forward pass of diffusers' UNet2DModel, written straight from diffusers'
/// Python (unet_2d.py, unet_2d_blocks.py, resnet.py, attention_processor.py) with the kernels' plain
/// C# references as its primitive ops. Weights come from a <see cref="WeightSource"/>: in recording
/// mode it invents a random tensor for every name the forward pass asks for, which gives a complete
/// diffusers-named checkpoint for any configuration.
/// </summary>
internal sealed class ReferenceUNet(UNet2DConfig c, ReferenceUNet.WeightSource weights)
{
    /// <summary>Named weights; with <c>record</c> set, unknown names get seeded random values.</summary>
    internal sealed class WeightSource(int seed)
    {
        public Dictionary<string, (int[] Shape, float[] Data)> Tensors { get; } = new();

        public float[] Get(string name, params int[] shape)
        {
            if (Tensors.TryGetValue(name, out var t))
            {
                if (!t.Shape.SequenceEqual(shape)) throw new InvalidOperationException($"{name} asked with two shapes");
                return t.Data;
            }
            int n = shape.Aggregate(1, (a, b) => a * b);
            var rng = new System.Random(HashCode.Combine(seed, name.GetHashCode(StringComparison.Ordinal)) & 0x7fffffff);
            bool norm = name.EndsWith("norm1.weight") || name.EndsWith("norm2.weight") || name.EndsWith("group_norm.weight") || name == "conv_norm_out.weight";
            int fanIn = shape.Length > 1 ? shape.Skip(1).Aggregate(1, (a, b) => a * b) : 1;
            var data = new float[n];
            for (int i = 0; i < n; i++)
            {
                double u = rng.NextDouble() * 2 - 1;
                data[i] = (float)(norm ? 1 + 0.2 * u
                    : name.EndsWith(".bias") ? 0.1 * u
                    : name == "class_embedding.weight" ? u
                    : u * Math.Sqrt(3.0 / fanIn) * 1.2);
            }
            Tensors[name] = (shape, data);
            return data;
        }
    }

    private sealed record Img(float[] D, int N, int C, int H, int W)
    {
        public int Plane => H * W;
    }

    private Img Conv(Img x, string name, int cout, int k, Conv2dParams p)
    {
        var (ho, wo) = p.OutputSize(x.H, x.W, k, k);
        var y = new float[x.N * cout * ho * wo];
        Conv2d.Reference(x.D, x.N, x.C, x.H, x.W, weights.Get(name + ".weight", cout, x.C, k, k), cout, k, k,
            weights.Get(name + ".bias", cout), y, p);
        return new Img(y, x.N, cout, ho, wo);
    }

    private Img Norm(Img x, string name, int groups, bool silu)
    {
        var y = new float[x.D.Length];
        GroupNorm.Reference(x.D, x.N, x.C, x.Plane, groups, weights.Get(name + ".weight", x.C), weights.Get(name + ".bias", x.C),
            (float)c.NormEps, y, silu);
        return x with { D = y };
    }

    private float[] Lin(float[] x, int rows, int inF, string name, int outF)
    {
        var y = new float[rows * outF];
        Linear.Reference(x, weights.Get(name + ".weight", outF, inF), weights.Get(name + ".bias", outF), y, rows, inF, outF);
        return y;
    }

    private static float Silu(float v) => v / (1 + MathF.Exp(-v));

    private Img Resnet(Img x, float[] temb, string prefix, int cout, double outputScaleFactor)
    {
        bool scaleShift = c.ResnetTimeScaleShift == "scale_shift";
        var h = Norm(x, prefix + ".norm1", c.NormNumGroups, silu: true);
        h = Conv(h, prefix + ".conv1", cout, 3, Conv2dParams.Same(1, 1));
        int tembDim = temb.Length / x.N;
        var t = Lin(temb.Select(Silu).ToArray(), x.N, tembDim, prefix + ".time_emb_proj", scaleShift ? 2 * cout : cout);
        if (!scaleShift)
        {
            for (int i = 0; i < h.D.Length; i++) h.D[i] += t[i / h.Plane];   // [N, C] broadcast over H, W
            h = Norm(h, prefix + ".norm2", c.NormNumGroups, silu: false);
        }
        else
        {
            h = Norm(h, prefix + ".norm2", c.NormNumGroups, silu: false);
            for (int i = 0; i < h.D.Length; i++)
            {
                int nc = i / h.Plane, n = nc / cout, ch = nc % cout;
                h.D[i] = h.D[i] * (1 + t[n * 2 * cout + ch]) + t[n * 2 * cout + cout + ch];
            }
        }
        for (int i = 0; i < h.D.Length; i++) h.D[i] = Silu(h.D[i]);
        h = Conv(h, prefix + ".conv2", cout, 3, Conv2dParams.Same(1, 1));
        var skip = x.C != cout ? Conv(x, prefix + ".conv_shortcut", cout, 1, Conv2dParams.Same(1, 0)) : x;
        var y = new float[h.D.Length];
        for (int i = 0; i < y.Length; i++) y[i] = (float)((skip.D[i] + h.D[i]) / outputScaleFactor);
        return h with { D = y };
    }

    private Img Attention(Img x, string prefix, int headDim, int? groups, double rescale)
    {
        int n = x.N, ch = x.C, p = x.Plane;
        var h = groups is int g ? Norm(x, prefix + ".group_norm", g, silu: false) : x;
        var tokens = new float[h.D.Length];
        for (int b = 0; b < n; b++)
            for (int k = 0; k < ch; k++)
                for (int s = 0; s < p; s++) tokens[(b * p + s) * ch + k] = h.D[(b * ch + k) * p + s];
        var q = Lin(tokens, n * p, ch, prefix + ".to_q", ch);
        var kk = Lin(tokens, n * p, ch, prefix + ".to_k", ch);
        var v = Lin(tokens, n * p, ch, prefix + ".to_v", ch);
        var a = new float[q.Length];
        SpatialAttention.Reference(q, kk, v, n, p, p, ch, ch / headDim, a, 1f / MathF.Sqrt(headDim));
        var o = Lin(a, n * p, ch, prefix + ".to_out.0", ch);
        var y = new float[x.D.Length];
        for (int b = 0; b < n; b++)
            for (int k = 0; k < ch; k++)
                for (int s = 0; s < p; s++)
                {
                    int i = (b * ch + k) * p + s;
                    y[i] = (float)((o[(b * p + s) * ch + k] + x.D[i]) / rescale);
                }
        return x with { D = y };
    }

    private static Img Cat(Img a, Img b)
    {
        var y = new float[a.D.Length + b.D.Length];
        int ia = a.C * a.Plane, ib = b.C * b.Plane;
        for (int n = 0; n < a.N; n++)
        {
            Array.Copy(a.D, n * ia, y, n * (ia + ib), ia);
            Array.Copy(b.D, n * ib, y, n * (ia + ib) + ia, ib);
        }
        return new Img(y, a.N, a.C + b.C, a.H, a.W);
    }

    private static Img Upsample(Img x)
    {
        var y = new float[x.D.Length * 4];
        for (int pl = 0; pl < x.N * x.C; pl++)
            for (int i = 0; i < 2 * x.H; i++)
                for (int j = 0; j < 2 * x.W; j++)
                    y[(pl * 2 * x.H + i) * 2 * x.W + j] = x.D[(pl * x.H + i / 2) * x.W + j / 2];
        return new Img(y, x.N, x.C, 2 * x.H, 2 * x.W);
    }

    /// <summary>UNet2DModel.forward(sample, timestep, class_labels).sample.</summary>
    public float[] Forward(float[] sample, int n, int h, int w, float[] timesteps, int[]? classLabels)
    {
        var x = new Img((float[])sample.Clone(), n, c.InChannels, h, w);
        if (c.CenterInputSample) x = x with { D = x.D.Select(v => 2 * v - 1f).ToArray() };
        int ch0 = c.BlockOutChannels[0];
        int tembDim = c.TimeEmbeddingDim ?? 4 * ch0;
        var sinusoid = new float[n * ch0];
        TimestepEmbedding.Reference(timesteps, ch0, c.FlipSinToCos, (float)c.FreqShift, sinusoid);
        var emb = Lin(Lin(sinusoid, n, ch0, "time_embedding.linear_1", tembDim).Select(Silu).ToArray(), n, tembDim, "time_embedding.linear_2", tembDim);
        if (c.NumClassEmbeds is int classes)
        {
            var table = weights.Get("class_embedding.weight", classes, tembDim);
            for (int b = 0; b < n; b++)
                for (int j = 0; j < tembDim; j++) emb[b * tembDim + j] += table[classLabels![b] * tembDim + j];
        }

        var hImg = Conv(x, "conv_in", ch0, 3, Conv2dParams.Same(1, 1));
        var res = new List<Img> { hImg };
        int blocks = c.BlockOutChannels.Length;
        int output = ch0;
        for (int i = 0; i < blocks; i++)
        {
            output = c.BlockOutChannels[i];
            bool attn = c.DownBlockTypes[i] == "AttnDownBlock2D";
            for (int j = 0; j < c.LayersPerBlock; j++)
            {
                hImg = Resnet(hImg, emb, $"down_blocks.{i}.resnets.{j}", output, 1.0);
                if (attn) hImg = Attention(hImg, $"down_blocks.{i}.attentions.{j}", c.AttentionHeadDim ?? output, c.NormNumGroups, 1.0);
                res.Add(hImg);
            }
            if (i < blocks - 1)
            {
                var p = c.DownsamplePadding == 0 ? new Conv2dParams(2, 0, 0, 1, 1) : Conv2dParams.Same(2, c.DownsamplePadding);
                hImg = Conv(hImg, $"down_blocks.{i}.downsamplers.0.conv", output, 3, p);
                res.Add(hImg);
            }
        }
        if (c.MidBlockType is not null)
        {
            int midC = c.BlockOutChannels[^1];
            hImg = Resnet(hImg, emb, "mid_block.resnets.0", midC, c.MidBlockScaleFactor);
            if (c.AddAttention)
            {
                int? groups = c.AttnNormNumGroups ?? (c.ResnetTimeScaleShift == "default" ? c.NormNumGroups : null);
                hImg = Attention(hImg, "mid_block.attentions.0", c.AttentionHeadDim ?? midC, groups, c.MidBlockScaleFactor);
            }
            hImg = Resnet(hImg, emb, "mid_block.resnets.1", midC, c.MidBlockScaleFactor);
        }
        var reversed = c.BlockOutChannels.Reverse().ToArray();
        for (int i = 0; i < blocks; i++)
        {
            output = reversed[i];
            bool attn = c.UpBlockTypes[i] == "AttnUpBlock2D";
            for (int j = 0; j < c.LayersPerBlock + 1; j++)
            {
                var skip = res[^1];
                res.RemoveAt(res.Count - 1);
                hImg = Resnet(Cat(hImg, skip), emb, $"up_blocks.{i}.resnets.{j}", output, 1.0);
                if (attn) hImg = Attention(hImg, $"up_blocks.{i}.attentions.{j}", c.AttentionHeadDim ?? output, c.NormNumGroups, 1.0);
            }
            if (i < blocks - 1) hImg = Conv(Upsample(hImg), $"up_blocks.{i}.upsamplers.0.conv", output, 3, Conv2dParams.Same(1, 1));
        }
        hImg = Norm(hImg, "conv_norm_out", c.NormNumGroups, silu: true);
        return Conv(hImg, "conv_out", c.OutChannels, 3, Conv2dParams.Same(1, 1)).D;
    }
}

using PosteriorGpu.Kernels.Conv;

namespace PosteriorGpu.Models.UNet;

/// <summary>
/// The layer stack of <see cref="UNet2DModel"/>, registered over a parameter store in diffusers' module order:
/// conv_in and the down blocks (each output a skip), the mid block, the up blocks, then conv_norm_out and
/// conv_out. The one place the architecture is wired: the model runs it, and
/// <see cref="UNet2DModel.ParameterLayout"/> lists its tensors without a device.
/// </summary>
internal sealed class UNetLayers
{
    public Conv2dLayer ConvIn { get; }
    public LinearLayer TimeLinear1 { get; }
    public LinearLayer TimeLinear2 { get; }
    public Parameter? ClassEmbedding { get; }
    public List<UNetStep> Down { get; } = new();
    public List<UNetStep> Mid { get; } = new();
    public List<UNetStep> Up { get; } = new();
    public GroupNormLayer NormOut { get; }
    public Conv2dLayer ConvOut { get; }

    public UNetLayers(UNet2DConfig config, ParameterStore store)
    {
        var s = store;
        var c = config;
        int ch0 = c.BlockOutChannels[0], tembDim = c.TimeEmbedDim, groups = c.NormNumGroups;
        float eps = (float)c.NormEps;
        bool scaleShift = c.ResnetTimeScaleShift == "scale_shift";
        // Registration order is diffusers' module order: a checkpoint missing a tensor fails at the first one,
        // and a seed gives the same initial weights every time.
        ConvIn = new Conv2dLayer(s, "conv_in", c.InChannels, ch0, 3, Conv2dParams.Same(1, 1));
        TimeLinear1 = new LinearLayer(s, "time_embedding.linear_1", ch0, tembDim);
        TimeLinear2 = new LinearLayer(s, "time_embedding.linear_2", tembDim, tembDim);
        if (c.NumClassEmbeds is { } classes) ClassEmbedding = s.Add("class_embedding.weight", [classes, tembDim], ParameterInit.Normal);

        // Steps are grown as the weights load, not sized from the config: a config claiming a billion layers
        // fails at the first missing tensor instead of allocating for all of them.
        int blocks = c.BlockOutChannels.Length;
        Down.Add(new UNetStep { Conv = ConvIn });
        int output = ch0;
        for (int i = 0; i < blocks; i++)
        {
            int input = output;
            output = c.BlockOutChannels[i];
            bool attention = c.DownBlockTypes[i] == "AttnDownBlock2D";
            for (int j = 0; j < c.LayersPerBlock; j++)
            {
                string prefix = $"down_blocks.{i}";
                Down.Add(new UNetStep
                {
                    Resnet = new ResnetBlock2D(s, $"{prefix}.resnets.{j}", j == 0 ? input : output, output, tembDim, groups, eps, scaleShift, 1.0),
                    Attention = attention
                        ? new AttentionBlock(s, $"{prefix}.attentions.{j}", output, c.AttentionHeadSize(output), groups, eps, 1.0)
                        : null,
                });
            }
            if (i < blocks - 1)
            {
                // diffusers' Downsample2D: padding 0 means an asymmetric (0, 1, 0, 1) pad before the stride-2 conv.
                var p = c.DownsamplePadding == 0 ? new Conv2dParams(2, 0, 0, 1, 1) : Conv2dParams.Same(2, c.DownsamplePadding);
                Down.Add(new UNetStep { Conv = new Conv2dLayer(s, $"down_blocks.{i}.downsamplers.0.conv", output, output, 3, p) });
            }
        }

        if (c.MidBlockType is not null)
        {
            // UNetMidBlock2D: resnet, then one (attention, resnet) pair.
            int ch = c.BlockOutChannels[^1];
            Mid.Add(new UNetStep
            {
                Resnet = new ResnetBlock2D(s, "mid_block.resnets.0", ch, ch, tembDim, groups, eps, scaleShift, c.MidBlockScaleFactor),
                Attention = c.AddAttention
                    ? new AttentionBlock(s, "mid_block.attentions.0", ch, c.AttentionHeadSize(ch), c.MidAttentionNormGroups, eps, c.MidBlockScaleFactor)
                    : null,
            });
            Mid.Add(new UNetStep { Resnet = new ResnetBlock2D(s, "mid_block.resnets.1", ch, ch, tembDim, groups, eps, scaleShift, c.MidBlockScaleFactor) });
        }

        // UpBlock2D: layers_per_block + 1 resnets, each on the running tensor concatenated with the newest skip.
        var reversed = c.BlockOutChannels.Reverse().ToArray();
        output = reversed[0];
        int skip = Down.Count;
        for (int i = 0; i < blocks; i++)
        {
            int prev = output;
            output = reversed[i];
            int input = reversed[Math.Min(i + 1, blocks - 1)];
            bool attention = c.UpBlockTypes[i] == "AttnUpBlock2D";
            long layers = (long)c.LayersPerBlock + 1;
            for (int j = 0; j < layers; j++)
            {
                int skipChannels = j == layers - 1 ? input : output;
                int inChannels = j == 0 ? prev : output;
                string prefix = $"up_blocks.{i}";
                Up.Add(new UNetStep
                {
                    Skip = --skip,
                    Resnet = new ResnetBlock2D(s, $"{prefix}.resnets.{j}", inChannels + skipChannels, output, tembDim, groups, eps, scaleShift, 1.0),
                    Attention = attention
                        ? new AttentionBlock(s, $"{prefix}.attentions.{j}", output, c.AttentionHeadSize(output), groups, eps, 1.0)
                        : null,
                });
            }
            if (i < blocks - 1)
                Up.Add(new UNetStep { Upsample = true, Conv = new Conv2dLayer(s, $"up_blocks.{i}.upsamplers.0.conv", output, output, 3, Conv2dParams.Same(1, 1)) });
        }
        NormOut = new GroupNormLayer(s, "conv_norm_out", ch0, groups, eps);
        ConvOut = new Conv2dLayer(s, "conv_out", ch0, c.OutChannels, 3, Conv2dParams.Same(1, 1));
    }
}

using PosteriorGpu.Kernels.Conv;
using PosteriorGpu.Kernels.Layout;
using PosteriorGpu.Kernels.Norm;
using PosteriorGpu.Kernels.Resample;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Models.UNet;

/// <summary>
/// One stage of the U-Net's layer stack, in the order diffusers runs them: a convolution (conv_in, a
/// downsampler, or an upsampler's conv after nearest 2x upsampling), or a resnet optionally followed by
/// attention; an up-path resnet first concatenates the skip it consumes. DownBlock2D, UNetMidBlock2D and
/// UpBlock2D (and their Attn variants) are runs of these stages; the parameter names keep diffusers' block
/// paths.
/// </summary>
internal sealed class UNetStep
{
    public Conv2dLayer? Conv { get; init; }
    public bool Upsample { get; init; }
    public ResnetBlock2D? Resnet { get; init; }
    public AttentionBlock? Attention { get; init; }

    /// <summary>The index of the skip this step concatenates, or -1.</summary>
    public int Skip { get; init; } = -1;

    // Activations of the last recording forward pass.
    public Tensor Input { get; private set; } = null!;
    private Tensor convInput = null!, resnetOutput = null!;

    /// <summary>The GroupNorm the stage applies to its input first, which the stage before may prepare: a resnet's norm1
    /// (not after a concatenation, whose two parts come from two layers, nor one the resnet normalises itself); null for a
    /// convolution.</summary>
    public GroupNormLayer? InputNorm => Conv is null && Skip < 0 ? Resnet!.PreparableNorm1 : null;

    /// <summary>The resnet's norm1 over its concatenation (a table the stage before may prepare from its output's and the
    /// skip's statistics, when the concatenation is written in place); null without a skip.</summary>
    public GroupNormLayer? ConcatenationNorm => Conv is null && Skip >= 0 ? Resnet!.PreparableNorm1 : null;

    /// <summary>The table of the next stage's <see cref="InputNorm"/> over this stage's output that the last
    /// <see cref="Forward"/> prepared (asked for with its next argument), or null.</summary>
    public PreparedGroupNorm? PreparedOutputNorm { get; private set; }

    /// <summary>Channels of the tensor the stage consumes (after concatenating its skip).</summary>
    public int ConsumedChannels => Conv?.InChannels ?? Resnet!.InChannels;

    /// <summary>The output shape for an input [n, C, h, w].</summary>
    public int[] OutputShape(int n, int h, int w)
    {
        if (Conv is not null) return Upsample ? Conv.OutputShape(n, 2 * h, 2 * w) : Conv.OutputShape(n, h, w);
        return [n, Resnet!.OutChannels, h, w];
    }

    /// <summary>Runs the stage on h; <paramref name="ownsInput"/> says h is this pass's to release (not a skip,
    /// not the caller's input). A consumed skip is released too. Returns the output (kept when recording), or
    /// writes <paramref name="into"/> (a view the caller owns: its part of a later concatenation) and returns it.
    /// <paramref name="concatenated"/>: h and the skip were written into their parts of this tensor (batch 1, no
    /// tape), which the stage consumes and releases instead of concatenating. <paramref name="prepared"/>: the table of
    /// <see cref="InputNorm"/> over h, made by the stage before; <paramref name="next"/>: the next stage's
    /// <see cref="InputNorm"/>, whose table over the output this stage's last launch prepares where it can
    /// (<see cref="PreparedOutputNorm"/>).</summary>
    public Tensor Forward(Tensor h, bool ownsInput, Tensor[] skips, Tensor tembSilu, TensorPool pool, Tape tape,
        Tensor? into = null, Tensor? concatenated = null, PreparedGroupNorm? prepared = null, OutputNorm next = default)
    {
        Input = h;
        PreparedOutputNorm = null;
        if (concatenated is not null)
        {
            if (Skip < 0 || concatenated.C != h.C + skips[Skip].C)
                throw new InvalidOperationException("unet: a stage was handed a concatenation it does not consume");
            h = concatenated;
            ownsInput = true;
        }
        else if (Skip >= 0)
        {
            var skip = skips[Skip];
            var cat = tape.Keep(pool.Rent(h.N, h.C + skip.C, h.H, h.W));
            ConcatChannels.Run(h, skip, cat);
            if (ownsInput) tape.Release(h);
            tape.Release(skip);   // each skip feeds exactly one up-path step
            h = cat;
            ownsInput = true;
        }
        if (Conv is not null)
        {
            if (Upsample && !tape.Recording && Conv2dUpsampled.IsFused(h.Device))
            {
                // Outside training the upsampled tensor is never needed again: fold the upsampling into the conv's loads.
                var folded = tape.Keep(Conv.ForwardUpsampled(h, pool, out var preparedUp, next, into));
                PreparedOutputNorm = preparedUp;
                if (ownsInput) tape.Release(h);
                return folded;
            }
            if (Upsample)
            {
                var upsampled = tape.Keep(pool.Rent(h.N, h.C, 2 * h.H, 2 * h.W));
                Upsample2x.Run(h, upsampled);
                if (ownsInput) tape.Release(h);
                h = upsampled;
                ownsInput = true;
            }
            convInput = h;
            PreparedGroupNorm? made = null;
            var y = tape.Keep(!next.IsEmpty && !tape.Recording ? Conv.ForwardPreparing(h, pool, next, out made, into) : Conv.Forward(h, pool, into: into));
            PreparedOutputNorm = made;
            if (ownsInput) tape.Release(h);
            return y;
        }
        convInput = h;
        // A resnet alone prepares the next stage's norm; followed by attention, it prepares attention's group_norm, and the
        // attention's to_out prepares the next stage's.
        var nextOfResnet = tape.Recording ? default : Attention is null ? next : (OutputNorm)Attention.PreparableNorm(tape, h.Device);
        resnetOutput = Resnet!.Forward(h, tembSilu, pool, tape, out var preparedNext, Attention is null ? into : null, prepared, nextOfResnet);
        if (ownsInput) tape.Release(h);
        if (Attention is null)
        {
            PreparedOutputNorm = preparedNext;
            return resnetOutput;
        }
        var attended = Attention.Forward(resnetOutput, pool, tape, into, preparedNext, tape.Recording ? default : next, out var preparedByAttention);
        PreparedOutputNorm = preparedByAttention;
        tape.Release(resnetOutput);
        return attended;
    }

    /// <summary>Backpropagates dOut through the conv or resnet (+attention) to the tensor the step consumed
    /// (after concatenation or upsampling); returns a rented gradient of it.</summary>
    public Tensor BackToConsumed(Tensor dOut, Tensor tembSilu, Tensor dTembSilu, TensorPool pool)
    {
        var dx = pool.Rent(convInput.Shape);
        Backward(dOut, dx, false, tembSilu, dTembSilu, pool);
        return dx;
    }

    /// <summary>dX (+)= the gradient of the tensor the step consumed; parameter gradients overwritten;
    /// dTembSilu += the resnet's share.</summary>
    public void Backward(Tensor dOut, Tensor dx, bool accumulate, Tensor tembSilu, Tensor dTembSilu, TensorPool pool)
    {
        if (Conv is not null)
        {
            Conv.Backward(convInput, dOut, dx, accumulate);
            return;
        }
        if (Attention is null)
        {
            Resnet!.Backward(dOut, dx, accumulate, tembSilu, dTembSilu, pool);
            return;
        }
        using var dR = pool.Rent(resnetOutput.Shape);
        Attention.Backward(dOut, dR, false, pool);
        Resnet!.Backward(dR, dx, accumulate, tembSilu, dTembSilu, pool);
    }
}

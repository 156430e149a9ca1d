using PosteriorGpu.Kernels.Conv;
using PosteriorGpu.Kernels.Layout;
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

    /// <summary>Runs the stage on h; <paramref name="ownsInput"/> says h is this pass's to release (not a skip,
    /// not the caller's input). A consumed skip is released too. Returns the output (kept when recording).</summary>
    public Tensor Forward(Tensor h, bool ownsInput, Tensor[] skips, Tensor tembSilu, TensorPool pool, Tape tape)
    {
        Input = h;
        if (Skip >= 0)
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
                var folded = tape.Keep(Conv.ForwardUpsampled(h, pool));
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
            var y = tape.Keep(Conv.Forward(h, pool));
            if (ownsInput) tape.Release(h);
            return y;
        }
        convInput = h;
        resnetOutput = Resnet!.Forward(h, tembSilu, pool, tape);
        if (ownsInput) tape.Release(h);
        if (Attention is null) return resnetOutput;
        var attended = Attention.Forward(resnetOutput, pool, tape);
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

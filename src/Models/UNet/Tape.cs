using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Models.UNet;

/// <summary>
/// What a forward pass keeps for its backward pass. One forward code path serves both modes: a
/// recording pass keeps every activation a gradient needs until the next pass (<see cref="Keep"/>);
/// an inference pass keeps nothing, and <see cref="Release"/> gives each activation back to the pool
/// as soon as the forward pass is done with it, so repeated calls reuse the same buffers.
/// </summary>
internal sealed class Tape
{
    private readonly List<Tensor> kept = new();

    /// <summary>True while a recording (gradient) forward pass runs or its activations are held.</summary>
    public bool Recording { get; private set; }

    /// <summary>Frees the previous pass's activations and starts a pass that records or not.</summary>
    public void Begin(bool recording)
    {
        Clear();
        Recording = recording;
    }

    /// <summary>Keeps t until the next pass when recording; returns t.</summary>
    public Tensor Keep(Tensor t)
    {
        if (Recording) kept.Add(t);
        return t;
    }

    /// <summary>The forward pass is done with t: back to the pool now unless the tape keeps it.</summary>
    public void Release(Tensor t)
    {
        if (!Recording) t.Dispose();
    }

    /// <summary>Gives every kept activation back to the pool; a backward pass is no longer possible.</summary>
    public void Clear()
    {
        foreach (var t in kept) t.Dispose();
        kept.Clear();
        Recording = false;
    }
}

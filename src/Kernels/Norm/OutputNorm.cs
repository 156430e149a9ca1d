using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Norm;

/// <summary>
/// What a launch that produces a tensor prepares from that tensor's statistics for the layers that consume it
/// (<see cref="Gemm.GemmNormStats"/>, in the producing launch itself):
/// <list type="bullet">
/// <item><see cref="Next"/>: the table of the GroupNorm the next layer applies (<see cref="PreparedGroupNorm"/>), over the
/// output alone, or, with <see cref="Following"/>, over <see cref="Concatenation"/> = [output, Following.Of] along
/// channels: a U-Net's up path concatenates the running tensor with a skip whose statistics were saved when it was made,
/// and the launch that writes the running tensor into its part makes the table of the whole.</item>
/// <item><see cref="Save"/>: the output's own per-channel statistics, kept for such a later concatenation.</item>
/// </list>
/// A <see cref="GroupNormParameters"/> converts to the plain request (the next norm over the output).
/// </summary>
public readonly struct OutputNorm
{
    /// <summary>The table of <paramref name="next"/> over the output.</summary>
    public OutputNorm(GroupNormParameters next) => Next = next;

    /// <summary>The table of <paramref name="next"/> over the output.</summary>
    public static implicit operator OutputNorm(GroupNormParameters next) => new(next);

    /// <summary>The GroupNorm whose table to prepare, or null (statistics only).</summary>
    public GroupNormParameters? Next { get; init; }

    /// <summary>The tensor <see cref="Next"/> applies to when it is not the output alone: the output's channels first, then
    /// <see cref="Following"/>'s tensor's (the output is usually a view of its first channels).</summary>
    public Tensor? Concatenation { get; init; }

    /// <summary>Saved statistics of the channels that follow the output in <see cref="Concatenation"/>.</summary>
    public ChannelStatistics? Following { get; init; }

    /// <summary>Where to save the output's per-channel statistics, or null.</summary>
    public ChannelStatistics? Save { get; init; }

    /// <summary>Nothing asked: the plain launch.</summary>
    public bool IsEmpty => Next is null && Save is null;

    /// <summary>Channels after the output's in the normalised tensor (0 without <see cref="Following"/>).</summary>
    internal int FollowingChannels => Following?.Channels ?? 0;

    /// <summary>Throws unless the request fits an output of <paramref name="channels"/> channels.</summary>
    /// <exception cref="ArgumentException">A shape does not fit, or a concatenation is half given.</exception>
    /// <exception cref="InvalidOperationException">The following statistics were never saved.</exception>
    internal void Check(string op, Tensor output, int channels)
    {
        if (Save is not null && !ReferenceEquals(Save.Device, output.Device))
            throw new ArgumentException($"{op}: the statistics to save live on another device than the output");
        if (Following is null && Concatenation is null)
        {
            Next?.Check(op, output, channels);
            return;
        }
        if (Following is null || Concatenation is null || Next is null)
            throw new ArgumentException($"{op}: a concatenation's norm needs the concatenation, the following part's statistics and the norm");
        if (Following.Of is not { } tail)
            throw new InvalidOperationException($"{op}: the statistics of the concatenation's following part were never saved");
        int n = output.N, spatial = output.Length / Math.Max(1, n * channels);
        int total = channels + FollowingChannels;
        bool fits = Concatenation.Rank == output.Rank && Concatenation.N == n && Concatenation.C == total && tail.N == n &&
                    Concatenation.Length == n * total * spatial && tail.Length == n * FollowingChannels * spatial;
        if (!fits)
            throw new ArgumentException($"{op}: the output {Shape.Format(output.Shape)} and the saved part {Shape.Format(tail.Shape)} do not " +
                                        $"make the concatenation {Shape.Format(Concatenation.Shape)}");
        Next.Value.Check(op, Concatenation, total);
    }
}

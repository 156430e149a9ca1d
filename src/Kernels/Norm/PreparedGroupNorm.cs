using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Norm;

/// <summary>A GroupNorm's parameters as the layer that applies it holds them (groups, gamma [C], beta [C], eps).</summary>
public readonly record struct GroupNormParameters(int Groups, Tensor Gamma, Tensor Beta, float Eps)
{
    /// <summary>Throws unless the norm fits x's <paramref name="channels"/> channels (groups divide them, gamma and beta [C]).</summary>
    /// <exception cref="ArgumentException">It does not.</exception>
    internal void Check(string op, Tensor x, int channels)
    {
        if (Groups < 1 || channels % Groups != 0)
            throw new ArgumentException($"{op}: {channels} channels of {Shape.Format(x.Shape)} do not split into {Groups} groups");
        Shape.Require(op, Gamma, "gamma", channels);
        Shape.Require(op, Beta, "beta", channels);
    }
}

/// <summary>
/// The per-channel scale/shift table of GroupNorm(<see cref="Input"/>) that the launch which produced the tensor left in
/// device memory (<c>Conv2dNormalized.RunPreparingNext</c>), for the normalised convolution that consumes it,
/// which then needs no table launch of its own. Valid until the device's next preparing launch: a consumer given a stale
/// one, or one made for another tensor or other parameters, throws.
/// </summary>
public readonly struct PreparedGroupNorm
{
    internal PreparedGroupNorm(Tensor input, GroupNormParameters norm, ArrayView<float> table, long generation)
    {
        Input = input;
        Norm = norm;
        Table = table;
        Generation = generation;
    }

    /// <summary>The tensor whose GroupNorm this is.</summary>
    public Tensor Input { get; }

    /// <summary>The norm it was prepared for.</summary>
    public GroupNormParameters Norm { get; }

    internal ArrayView<float> Table { get; }

    internal long Generation { get; }

    /// <summary>The table for x under <paramref name="norm"/>; throws when this was prepared for something else or overwritten.</summary>
    /// <exception cref="ArgumentException">Another tensor or other parameters.</exception>
    /// <exception cref="InvalidOperationException">A later launch has prepared another table over this one.</exception>
    internal ArrayView<float> TableFor(string op, Tensor x, GroupNormParameters norm)
    {
        if (!ReferenceEquals(x, Input))
            throw new ArgumentException($"{op}: the prepared GroupNorm table belongs to another tensor ({Shape.Format(Input.Shape)}) than x ({Shape.Format(x.Shape)})");
        if (norm.Groups != Norm.Groups || !ReferenceEquals(norm.Gamma, Norm.Gamma) || !ReferenceEquals(norm.Beta, Norm.Beta) || norm.Eps != Norm.Eps)
            throw new ArgumentException($"{op}: the prepared GroupNorm table was made for other parameters (groups {Norm.Groups}, eps {Norm.Eps}, gamma and beta tensors) than this norm's");
        if (x.Device.PreparedNormGeneration != Generation)
            throw new InvalidOperationException($"{op}: the prepared GroupNorm table was overwritten by a later preparing launch on {x.Device.Description}");
        return Table;
    }
}

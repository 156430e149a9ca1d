namespace PosteriorGpu.Kernels.Tensors;

/// <summary>Shape arithmetic and the checks every kernel launcher runs before it launches.</summary>
public static class Shape
{
    /// <summary>Product of the dimensions.</summary>
    /// <exception cref="ArgumentException">A dimension is negative or the product overflows int.</exception>
    public static int Elements(ReadOnlySpan<int> shape)
    {
        long n = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException($"shape {Format(shape)} has a negative dimension");
            n *= d;
            if (n > int.MaxValue) throw new ArgumentException($"shape {Format(shape)} has more than 2^31-1 elements");
        }
        return (int)n;
    }

    /// <summary>Formats a shape as [a, b, c].</summary>
    public static string Format(ReadOnlySpan<int> shape) => "[" + string.Join(", ", shape.ToArray()) + "]";

    /// <summary>Throws unless the two tensors have the same shape; the message names both.</summary>
    public static void RequireSame(string op, Tensor a, string aName, Tensor b, string bName)
    {
        if (!a.Shape.AsSpan().SequenceEqual(b.Shape))
            throw new ArgumentException(
                $"{op}: {aName} has shape {Format(a.Shape)} but {bName} has shape {Format(b.Shape)}; they must match");
        RequireSameDevice(op, a, b);
    }

    /// <summary>Throws unless the tensor has exactly the expected shape.</summary>
    public static void Require(string op, Tensor t, string name, params ReadOnlySpan<int> expected)
    {
        if (!t.Shape.AsSpan().SequenceEqual(expected))
            throw new ArgumentException(
                $"{op}: expected {name} of shape {Format(expected)} but got {Format(t.Shape)}");
    }

    /// <summary>Throws unless the tensor has the given rank.</summary>
    public static void RequireRank(string op, Tensor t, string name, int rank)
    {
        if (t.Rank != rank)
            throw new ArgumentException(
                $"{op}: expected {name} of rank {rank} but got shape {Format(t.Shape)}");
    }

    /// <summary>Throws unless both tensors live on the same device.</summary>
    public static void RequireSameDevice(string op, Tensor a, Tensor b)
    {
        if (!ReferenceEquals(a.Device, b.Device))
            throw new ArgumentException($"{op}: tensors live on different devices ({a.Device.Description} and {b.Device.Description})");
    }
}

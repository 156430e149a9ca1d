using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.IO;

namespace PosteriorGpu.Models.UNet;

/// <summary>One named weight tensor: a view of the store's flat value buffer and, when the store keeps
/// gradients, one of its flat gradient buffer.</summary>
public sealed class Parameter
{
    internal Parameter(string name, int[] shape, int offset, int length)
    {
        Name = name;
        Shape = shape;
        Offset = offset;
        Length = length;
    }

    /// <summary>The diffusers state-dict name, e.g. "down_blocks.0.resnets.1.conv2.weight".</summary>
    public string Name { get; }

    /// <summary>The tensor's shape in PyTorch's layout.</summary>
    public int[] Shape { get; }

    /// <summary>Where the tensor starts in the flat buffers.</summary>
    public int Offset { get; }

    /// <summary>Elements.</summary>
    public int Length { get; }

    /// <summary>The weights (valid once the store is materialised).</summary>
    public Tensor Value { get; internal set; } = null!;

    /// <summary>The gradient of the last backward pass; null when the store keeps no gradients.</summary>
    public Tensor? Gradient { get; internal set; }
}

/// <summary>
/// Every weight of a network in one flat device buffer and, for a network that trains or differentiates,
/// its gradient in a second one: the optimiser, the EMA and the gradient norm are then one launch each
/// over all weights, and each layer sees its tensors as views. Layers register their tensors, whose
/// initial values come from the store's source (a checkpoint, or a seeded initialisation), then
/// <see cref="Materialize"/> allocates. Holds device memory: dispose it. Not thread-safe.
/// </summary>
public sealed class ParameterStore : IDisposable
{
    private readonly ParameterSource source;
    private readonly List<Parameter> parameters = new();
    private readonly Dictionary<string, Parameter> byName = new(StringComparer.Ordinal);
    // Initial values, held on the host only between registration and materialisation.
    private List<float[]?>? initial = new();
    private int total;

    internal ParameterStore(ParameterSource source) => this.source = source;

    /// <summary>The parameters in registration order.</summary>
    public IReadOnlyList<Parameter> Parameters => parameters;

    /// <summary>Total number of weights.</summary>
    public int Count => total;

    /// <summary>All weights, flat (after <see cref="Materialize"/>).</summary>
    public Tensor Values { get; private set; } = null!;

    /// <summary>All gradients, flat, in the same order; null when the store keeps no gradients.</summary>
    public Tensor? Gradients { get; private set; }

    /// <summary>True when the store has a gradient buffer (the network was made with gradients).</summary>
    public bool HasGradients => Gradients is not null;

    /// <summary>The parameter with this diffusers name.</summary>
    /// <exception cref="KeyNotFoundException">No such parameter.</exception>
    public Parameter this[string name] => byName[name];

    /// <summary>Registers a tensor; its initial values come from the source now, so a checkpoint that lacks it
    /// fails at the first missing tensor, before anything reaches the device.</summary>
    internal Parameter Add(string name, int[] shape, ParameterInit init)
    {
        if (initial is null) throw new InvalidOperationException("parameters cannot be added after the store is materialised");
        int length = PosteriorGpu.Kernels.Tensors.Shape.Elements(shape);
        var values = source.Values(name, shape, init);
        if (values is not null && values.Length != length)
            throw new ArgumentException($"{name}: {values.Length} initial values for shape {PosteriorGpu.Kernels.Tensors.Shape.Format(shape)}");
        if ((long)total + length > int.MaxValue)
            throw new NotSupportedException($"{name}: the network has more than {int.MaxValue} weights, which one flat buffer cannot hold");
        var p = new Parameter(name, shape, total, length);
        if (!byName.TryAdd(name, p)) throw new ArgumentException($"parameter '{name}' is registered twice");
        parameters.Add(p);
        initial.Add(values);
        total += length;
        return p;
    }

    /// <summary>Allocates the flat buffers on <paramref name="device"/> (the gradient one only
    /// <paramref name="withGradients"/>), copies the initial values and drops the host copies.</summary>
    internal void Materialize(GpuDevice device, bool withGradients)
    {
        if (initial is null) throw new InvalidOperationException("the store is already materialised");
        source.Complete();
        Values = Tensor.Empty(device, total);
        try
        {
            if (withGradients) Gradients = Tensor.Zeros(device, total);
            for (int i = 0; i < parameters.Count; i++)
            {
                var p = parameters[i];
                p.Value = View(Values, p);
                p.Value.CopyFrom(initial[i] ?? throw new InvalidOperationException("a layout-only store has no values to materialise"));
                if (Gradients is not null) p.Gradient = View(Gradients, p);
            }
        }
        catch
        {
            Dispose();
            throw;
        }
        initial = null;
    }

    private static Tensor View(Tensor flat, Parameter p) => flat.SliceBatch(p.Offset, p.Length).Reshape(p.Shape);

    /// <summary>Splits a flat host copy (of <see cref="Values"/> or an optimiser state) into named tensors.</summary>
    public IEnumerable<(string Name, int[] Shape, float[] Data)> Split(float[] flat, string prefix = "")
    {
        if (flat.Length != total) throw new ArgumentException($"{flat.Length} values for {total} parameters");
        foreach (var p in parameters) yield return (prefix + p.Name, p.Shape, flat.AsSpan(p.Offset, p.Length).ToArray());
    }

    /// <summary>Gathers named tensors of a checkpoint into a flat host array (every parameter must be
    /// present with its shape; legacy attention names are not accepted here).</summary>
    /// <exception cref="CheckpointFormatException">A tensor is missing or misshapen.</exception>
    public float[] Gather(SafeTensorsFile file, string prefix = "")
    {
        var flat = new float[total];
        foreach (var p in parameters) file.GetFloat32(prefix + p.Name, p.Shape).CopyTo(flat, p.Offset);
        return flat;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Values?.Dispose();
        Gradients?.Dispose();
    }
}

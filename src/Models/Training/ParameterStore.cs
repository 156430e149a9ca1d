using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;
using PosteriorGpu.Models.IO;

namespace PosteriorGpu.Models.Training;

/// <summary>One named weight tensor: a view of the store's flat value buffer and one of its flat gradient buffer.</summary>
public sealed class Parameter
{
    internal Parameter(string name, int[] shape, int offset, float[] initial)
    {
        Name = name;
        Shape = shape;
        Offset = offset;
        Initial = initial;
    }

    /// <summary>The diffusers state-dict name, e.g. "down_blocks.0.resnets.1.conv2.weight".</summary>
    public string Name { get; }

    /// <summary>The tensor's shape in PyTorch's layout.</summary>
    public int[] Shape { get; }

    /// <summary>Where the tensor starts in the flat buffers.</summary>
    public int Offset { get; }

    /// <summary>Elements.</summary>
    public int Length => Initial.Length;

    internal float[] Initial { get; }

    /// <summary>The weights (valid once the store is materialised).</summary>
    public Tensor Value { get; internal set; } = null!;

    /// <summary>The gradient of the last backward pass.</summary>
    public Tensor Gradient { get; internal set; } = null!;
}

/// <summary>
/// Every weight of a network in one flat device buffer, its gradient in a second one: the optimiser,
/// the EMA and the gradient norm are then one launch each over all weights, and each layer sees its
/// tensors as views. Layers register their tensors with their initial values, then
/// <see cref="Materialize"/> allocates. Holds device memory: dispose it.
/// Not thread-safe.
/// </summary>
public sealed class ParameterStore : IDisposable
{
    private readonly List<Parameter> parameters = new();
    private readonly Dictionary<string, Parameter> byName = new(StringComparer.Ordinal);
    private int total;

    /// <summary>The parameters in registration order.</summary>
    public IReadOnlyList<Parameter> Parameters => parameters;

    /// <summary>Total number of weights.</summary>
    public int Count => total;

    /// <summary>All weights, flat (after <see cref="Materialize"/>).</summary>
    public Tensor Values { get; private set; } = null!;

    /// <summary>All gradients, flat, in the same order.</summary>
    public Tensor Gradients { get; private set; } = null!;

    /// <summary>The parameter with this diffusers name.</summary>
    /// <exception cref="KeyNotFoundException">No such parameter.</exception>
    public Parameter this[string name] => byName[name];

    internal Parameter Add(string name, int[] shape, float[] initial)
    {
        if (Values is not null) throw new InvalidOperationException("parameters cannot be added after the store is materialised");
        if (initial.Length != PosteriorGpu.Kernels.Tensors.Shape.Elements(shape))
            throw new ArgumentException($"{name}: {initial.Length} initial values for shape {PosteriorGpu.Kernels.Tensors.Shape.Format(shape)}");
        var p = new Parameter(name, shape, total, initial);
        if (!byName.TryAdd(name, p)) throw new ArgumentException($"parameter '{name}' is registered twice");
        parameters.Add(p);
        total = checked(total + initial.Length);
        return p;
    }

    /// <summary>Allocates the flat buffers on <paramref name="device"/> and copies the initial values.</summary>
    internal void Materialize(GpuDevice device)
    {
        var host = new float[total];
        foreach (var p in parameters) p.Initial.CopyTo(host, p.Offset);
        Values = Tensor.FromHost(device, host, total);
        Gradients = Tensor.Zeros(device, total);
        foreach (var p in parameters)
        {
            p.Value = View(Values, p);
            p.Gradient = View(Gradients, p);
        }
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

namespace PosteriorGpu.Models.UNet;

/// <summary>How a freshly created parameter is initialised, as PyTorch's module defaults do it.</summary>
internal readonly record struct ParameterInit(ParameterInit.Kinds Kind, int FanIn, float Value)
{
    public enum Kinds { Uniform, Constant, Normal }

    /// <summary>nn.Conv2d / nn.Linear (kaiming_uniform with a = sqrt(5)): uniform in +-1/sqrt(fan_in), weights and biases alike.</summary>
    public static ParameterInit Uniform(int fanIn) => new(Kinds.Uniform, fanIn, 0f);

    /// <summary>nn.GroupNorm's affine parameters: ones and zeros.</summary>
    public static ParameterInit Constant(float value) => new(Kinds.Constant, 0, value);

    /// <summary>nn.Embedding: standard normal.</summary>
    public static ParameterInit Normal => new(Kinds.Normal, 0, 0f);
}

/// <summary>Where a parameter store's initial values come from: a checkpoint (<see cref="WeightLoader"/>)
/// or a seeded initialisation (<see cref="RandomParameters"/>).</summary>
internal abstract class ParameterSource
{
    /// <summary>The initial values of the tensor <paramref name="name"/> of this shape; null when the store only
    /// lists the layout (<see cref="UNet2DModel.ParameterLayout"/>).</summary>
    public abstract float[]? Values(string name, int[] shape, ParameterInit init);

    /// <summary>Called once every parameter is registered: a checkpoint reports tensors nobody asked for.</summary>
    public virtual void Complete() { }
}

/// <summary>No values: the store only records names and shapes (and cannot be materialised).</summary>
internal sealed class LayoutOnly : ParameterSource
{
    public override float[]? Values(string name, int[] shape, ParameterInit init) => null;
}

/// <summary>PyTorch's default initialisation drawn from one seeded generator in registration order, so a
/// seed gives the same network every time.</summary>
internal sealed class RandomParameters(int seed) : ParameterSource
{
    private readonly Random rng = new(seed);

    public override float[] Values(string name, int[] shape, ParameterInit init)
    {
        var a = new float[PosteriorGpu.Kernels.Tensors.Shape.Elements(shape)];
        switch (init.Kind)
        {
            case ParameterInit.Kinds.Uniform:
                double bound = 1 / Math.Sqrt(init.FanIn);
                for (int i = 0; i < a.Length; i++) a[i] = (float)((2 * rng.NextDouble() - 1) * bound);
                break;
            case ParameterInit.Kinds.Constant:
                Array.Fill(a, init.Value);
                break;
            case ParameterInit.Kinds.Normal:
                // Box-Muller; 1 - u keeps the logarithm finite.
                for (int i = 0; i < a.Length; i++)
                    a[i] = (float)(Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));
                break;
        }
        return a;
    }
}

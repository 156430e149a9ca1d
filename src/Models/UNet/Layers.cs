using PosteriorGpu.Kernels.Conv;
using PosteriorGpu.Kernels.Gemm;
using PosteriorGpu.Kernels.Norm;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Models.UNet;

/// <summary>nn.Conv2d with weights [Cout, Cin, k, k]; its epilogue fuses bias, a per-channel add, a
/// residual and an output scale.</summary>
internal sealed class Conv2dLayer : IDisposable
{
    private readonly Tensor weight;
    private readonly Tensor bias;
    private readonly Conv2dParams p;
    private readonly int kernel;

    public Conv2dLayer(WeightLoader w, string prefix, int cin, int cout, int kernel, Conv2dParams p)
    {
        weight = w.Load(prefix + ".weight", cout, cin, kernel, kernel);
        bias = w.Load(prefix + ".bias", cout);
        this.p = p;
        this.kernel = kernel;
        OutChannels = cout;
    }

    public int OutChannels { get; }

    public Tensor Forward(Tensor x, TensorPool pool, Tensor? channelAdd = null, Tensor? residual = null, float outputScale = 1f)
    {
        var (ho, wo) = p.OutputSize(x.H, x.W, kernel, kernel);
        var y = pool.Rent(x.N, OutChannels, ho, wo);
        Conv2d.Run(x, weight, bias, y, p, channelAdd, residual, outputScale);
        return y;
    }

    /// <summary>Writes into a caller-owned output (its shape is checked by the kernel).</summary>
    public void ForwardInto(Tensor x, Tensor y) => Conv2d.Run(x, weight, bias, y, p);

    public void Dispose()
    {
        weight.Dispose();
        bias.Dispose();
    }
}

/// <summary>nn.Linear with weight [out, in] and bias [out], applied to the last dimension.</summary>
internal sealed class LinearLayer : IDisposable
{
    private readonly Tensor weight;
    private readonly Tensor bias;

    public LinearLayer(WeightLoader w, string prefix, int input, int output)
    {
        weight = w.Load(prefix + ".weight", output, input);
        bias = w.Load(prefix + ".bias", output);
        Out = output;
    }

    public int Out { get; }

    /// <summary>x [N, in] to [N, out], or [N, T, in] to [N, T, out].</summary>
    public Tensor Forward(Tensor x, TensorPool pool)
    {
        var y = x.Rank == 3 ? pool.Rent(x.Shape[0], x.Shape[1], Out) : pool.Rent(x.Shape[0], Out);
        Linear.Run(x, weight, bias, y);
        return y;
    }

    public void Dispose()
    {
        weight.Dispose();
        bias.Dispose();
    }
}

/// <summary>nn.GroupNorm (affine), optionally fused with the SiLU that follows it.</summary>
internal sealed class GroupNormLayer : IDisposable
{
    private readonly Tensor gamma;
    private readonly Tensor beta;
    private readonly int groups;
    private readonly float eps;

    public GroupNormLayer(WeightLoader w, string prefix, int channels, int groups, float eps)
    {
        if (channels % groups != 0)
            throw new ArgumentException($"{prefix}: {channels} channels cannot be split into {groups} groups");
        gamma = w.Load(prefix + ".weight", channels);
        beta = w.Load(prefix + ".bias", channels);
        this.groups = groups;
        this.eps = eps;
    }

    public Tensor Forward(Tensor x, TensorPool pool, bool silu)
    {
        var y = pool.Rent(x.Shape);
        GroupNorm.Run(x, groups, gamma, beta, eps, y, silu);
        return y;
    }

    public void Dispose()
    {
        gamma.Dispose();
        beta.Dispose();
    }
}

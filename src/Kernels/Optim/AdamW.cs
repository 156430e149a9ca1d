using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Optim;

/// <summary>
/// One AdamW step (Loshchilov &amp; Hutter 2019, as torch.optim.AdamW) over a flat parameter vector,
/// with the gradient scaled first (global-norm clipping): g = gradScale grad;
/// m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p = p (1 - lr wd) - lr mhat / (sqrt(vhat) + eps)
/// with mhat = m / (1 - b1^t), vhat = v / (1 - b2^t).
/// </summary>
public static class AdamW
{
    /// <summary>The hyper-parameters of one step; <see cref="Step"/> counts from 1.</summary>
    public readonly record struct Settings(float LearningRate, float Beta1, float Beta2, float Epsilon, float WeightDecay, int Step, float GradScale)
    {
        internal float Correction1 => 1f - MathF.Pow(Beta1, Step);
        internal float Correction2 => 1f - MathF.Pow(Beta2, Step);
    }

    /// <summary>The specification: a plain loop in double.</summary>
    public static void Reference(Span<float> p, ReadOnlySpan<float> grad, Span<float> m, Span<float> v, Settings s)
    {
        double c1 = 1 - Math.Pow(s.Beta1, s.Step), c2 = 1 - Math.Pow(s.Beta2, s.Step);
        for (int i = 0; i < p.Length; i++)
        {
            double g = (double)grad[i] * s.GradScale;
            double mi = s.Beta1 * (double)m[i] + (1 - s.Beta1) * g;
            double vi = s.Beta2 * (double)v[i] + (1 - s.Beta2) * g * g;
            m[i] = (float)mi;
            v[i] = (float)vi;
            p[i] = (float)(p[i] * (1 - (double)s.LearningRate * s.WeightDecay) - s.LearningRate * (mi / c1) / (Math.Sqrt(vi / c2) + s.Epsilon));
        }
    }

    internal static void Kernel(Index1D tid, ElementRange r, Settings s, float c1, float c2,
        ArrayView<float> p, ArrayView<float> grad, ArrayView<float> m, ArrayView<float> v)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            float g = grad[i] * s.GradScale;
            float mi = s.Beta1 * m[i] + (1f - s.Beta1) * g;
            float vi = s.Beta2 * v[i] + (1f - s.Beta2) * g * g;
            m[i] = mi;
            v[i] = vi;
            p[i] = p[i] * (1f - s.LearningRate * s.WeightDecay) - s.LearningRate * (mi / c1) / (MathF.Sqrt(vi / c2) + s.Epsilon);
        }
    }

    /// <summary>Updates p, m and v in place (all the same length).</summary>
    /// <exception cref="ArgumentException">The tensors differ in length.</exception>
    /// <exception cref="ArgumentOutOfRangeException">Step is below 1 or a setting is not finite.</exception>
    public static void Run(Tensor p, Tensor grad, Tensor m, Tensor v, Settings s)
    {
        if (s.Step < 1) throw new ArgumentOutOfRangeException(nameof(s), s.Step, "adamw: the step count starts at 1");
        if (!float.IsFinite(s.LearningRate) || !float.IsFinite(s.GradScale))
            throw new ArgumentOutOfRangeException(nameof(s), "adamw: learning rate and gradient scale must be finite");
        Shape.RequireSame("adamw", p, "p", grad, "grad");
        Shape.RequireSame("adamw", p, "p", m, "m");
        Shape.RequireSame("adamw", p, "p", v, "v");
        var plan = p.Device.Plan(p.Length);
        var k = p.Device.Kernel("adamw", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, Settings, float, float,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, s, s.Correction1, s.Correction2, p.View, grad.View, m.View, v.View);
    }
}

using ILGPU;
using ILGPU.Runtime;
using PosteriorGpu.Kernels.Device;
using PosteriorGpu.Kernels.Tensors;

namespace PosteriorGpu.Kernels.Fft;

/// <summary>
/// Conversions between real tensors [..., H, W] and interleaved complex tensors [..., H, W, 2]
/// (last dimension = real, imaginary), the layout <see cref="Fft2d"/> transforms.
/// </summary>
public static class ComplexOps
{
    /// <summary>What an elementwise conversion computes.</summary>
    internal enum Op
    {
        /// <summary>complex = (real, 0).</summary>
        FromReal,
        /// <summary>real = Re(complex).</summary>
        RealPart,
        /// <summary>real = |complex|.</summary>
        Magnitude,
    }

    /// <summary>The specification of <see cref="FromReal"/>: z[i] = (r[i], 0).</summary>
    public static void FromRealReference(ReadOnlySpan<float> real, Span<float> complex)
    {
        RequireLengths(real.Length, complex.Length);
        for (int i = 0; i < real.Length; i++)
        {
            complex[2 * i] = real[i];
            complex[2 * i + 1] = 0;
        }
    }

    /// <summary>The specification of <see cref="RealPart"/>: r[i] = Re z[i].</summary>
    public static void RealPartReference(ReadOnlySpan<float> complex, Span<float> real)
    {
        RequireLengths(real.Length, complex.Length);
        for (int i = 0; i < real.Length; i++) real[i] = complex[2 * i];
    }

    /// <summary>The specification of <see cref="Magnitude"/>: r[i] = |z[i]|, in double.</summary>
    public static void MagnitudeReference(ReadOnlySpan<float> complex, Span<float> real)
    {
        RequireLengths(real.Length, complex.Length);
        for (int i = 0; i < real.Length; i++)
        {
            double re = complex[2 * i], im = complex[2 * i + 1];
            real[i] = (float)Math.Sqrt(re * re + im * im);
        }
    }

    private static void RequireLengths(int real, int complex)
    {
        if (complex != 2 * real)
            throw new ArgumentException($"complex ops: a complex span of {complex} floats does not match a real span of {real} (needs {2 * real})");
    }

    internal static void Kernel(Index1D tid, ElementRange r, int op, ArrayView<float> real, ArrayView<float> complex)
    {
        for (int k = 0; k < r.Count; k++)
        {
            int i = r.Index(tid, k);
            if (i >= r.Total) return;
            if (op == 0)
            {
                complex[2 * i] = real[i];
                complex[2 * i + 1] = 0f;
            }
            else if (op == 1)
            {
                real[i] = complex[2 * i];
            }
            else
            {
                // |z| = a sqrt(1 + (b/a)^2) with a = max(|re|, |im|), so large values do not overflow.
                float re = MathF.Abs(complex[2 * i]), im = MathF.Abs(complex[2 * i + 1]);
                float a = MathF.Max(re, im), b = MathF.Min(re, im);
                float q = a > 0f ? b / a : 0f;
                real[i] = a * MathF.Sqrt(1f + q * q);
            }
        }
    }

    /// <summary>complex = real + 0i: [..., H, W] into [..., H, W, 2].</summary>
    /// <exception cref="ArgumentException">complex's shape is not real's shape with a trailing 2.</exception>
    public static void FromReal(Tensor real, Tensor complex) => Run(Op.FromReal, "complex-from-real", real, complex);

    /// <summary>real = Re(complex): [..., H, W, 2] into [..., H, W].</summary>
    /// <exception cref="ArgumentException">complex's shape is not real's shape with a trailing 2.</exception>
    public static void RealPart(Tensor complex, Tensor real) => Run(Op.RealPart, "complex-real-part", real, complex);

    /// <summary>real = |complex|: [..., H, W, 2] into [..., H, W].</summary>
    /// <exception cref="ArgumentException">complex's shape is not real's shape with a trailing 2.</exception>
    public static void Magnitude(Tensor complex, Tensor real) => Run(Op.Magnitude, "complex-magnitude", real, complex);

    private static void Run(Op op, string name, Tensor real, Tensor complex)
    {
        var rs = real.Shape;
        var cs = complex.Shape;
        if (cs.Length != rs.Length + 1 || cs[^1] != 2 || !cs.AsSpan(0, rs.Length).SequenceEqual(rs))
            throw new ArgumentException(
                $"{name}: complex has shape {Shape.Format(cs)} but real has shape {Shape.Format(rs)}; complex must be real's shape with a trailing 2");
        Shape.RequireSameDevice(name, real, complex);
        var device = real.Device;
        var plan = device.Plan(real.Length);
        if (plan.Total == 0) return;
        var k = device.Kernel("complex-ops", static acc =>
            acc.LoadAutoGroupedStreamKernel<Index1D, ElementRange, int, ArrayView<float>, ArrayView<float>>(Kernel));
        k(plan.Threads, plan, (int)op, real.View, complex.View);
    }
}

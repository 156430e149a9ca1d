namespace PosteriorGpu.Models.Schedules;

/// <summary>Bit-exact emulations of the few PyTorch float32 CPU operations diffusers uses to build a schedule.</summary>
/// <remarks>
/// Checked against torch 2.11 (CPU capability AVX512) on every element for T in {1, 2, 37, 1000}
/// and several beta ranges; see NoiseScheduleTests.
/// </remarks>
internal static class TorchFloat32
{
    /// <summary>torch.linspace(start, end, steps, dtype=torch.float32) on the CPU.</summary>
    /// <remarks>
    /// ATen's linspace_cpu kernel (aten/src/ATen/native/cpu/RangeFactoriesKernel.cpp, scalar loop only)
    /// converts start/end to float, forms step = (end - start) / (steps - 1) in float, then fills the
    /// first half (i &lt; steps/2) with start + step*i and the second half with end - step*(steps-1-i), so
    /// both endpoints are exact. PyTorch's x86 builds compile that kernel for AVX2/AVX512 with FMA and
    /// GCC contracts both expressions into fused multiply-adds: a plain float multiply-then-add differs
    /// from torch in 15-20% of the betas at T = 1000 (by one ulp), the fused form matches every element.
    /// (A PyTorch forced onto its non-FMA DEFAULT kernel, ATEN_CPU_CAPABILITY=default, may differ.)
    /// </remarks>
    public static float[] Linspace(double start, double end, int steps)
    {
        var r = new float[steps];
        float s = (float)start, e = (float)end;
        if (steps == 1) { r[0] = s; return r; }
        float step = (e - s) / (float)(steps - 1);
        int halfway = steps / 2;
        for (int i = 0; i < steps; i++)
            r[i] = i < halfway ? MathF.FusedMultiplyAdd(step, i, s) : MathF.FusedMultiplyAdd(-step, steps - 1 - i, e);
        return r;
    }

    /// <summary>torch.cumprod(x, dim=0) for a float32 tensor on the CPU.</summary>
    /// <remarks>
    /// ATen accumulates a float32 cumprod in double (acc_type&lt;float, /*is_cuda=*/false&gt; is double)
    /// and rounds each partial product to float on store; a float32 running product differs in the
    /// last bits after a few dozen steps (verified against torch: the double-accumulated version
    /// matches every element, the float-accumulated one does not).
    /// </remarks>
    public static float[] Cumprod(ReadOnlySpan<float> x)
    {
        var r = new float[x.Length];
        double acc = 1.0;
        for (int i = 0; i < x.Length; i++)
        {
            acc *= x[i];
            r[i] = (float)acc;
        }
        return r;
    }

}

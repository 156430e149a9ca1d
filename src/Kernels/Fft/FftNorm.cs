namespace PosteriorGpu.Kernels.Fft;

/// <summary>
/// Scaling of a transform pair, as numpy.fft's <c>norm</c>: which direction carries the 1/(H W).
/// </summary>
public enum FftNorm
{
    /// <summary>Forward unscaled, inverse scaled by 1/(H W) (numpy's default "backward").</summary>
    Backward,
    /// <summary>Both directions scaled by 1/sqrt(H W): the transform is unitary (Parseval holds).</summary>
    Ortho,
    /// <summary>Forward scaled by 1/(H W), inverse unscaled.</summary>
    Forward,
}

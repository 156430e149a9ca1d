namespace PosteriorGpu.Samplers.Operators;

/// <summary>Philox stream tags of the seeded operators, so that each random quantity (a mask, a
/// matrix, a dither) comes from its own stream and one seed may serve several operators.</summary>
internal static class OperatorStreams
{
    public const uint InpaintingMask = 0x0F0001;
    public const uint SensingMatrix = 0x0F0002;
    public const uint FourierLines = 0x0F0003;
    public const uint PhaseMask = 0x0F0004;
    public const uint OneBitMatrix = 0x0F0005;
    public const uint OneBitDither = 0x0F0006;
}

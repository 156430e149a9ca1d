using System.Buffers.Binary;
using PosteriorGpu.Models.Data;

namespace PosteriorGpu.Tests.Data;

/// <summary>A tiny MNIST stand-in for command tests: an IDX image file of 28 x 28 images where image i
/// is a full-height vertical bar in column 3 i + 2 (column 3 i + 4 once padded to 32 x 32).</summary>
public static class SyntheticMnist
{
    /// <summary>Writes <paramref name="count"/> bar images as <paramref name="fileName"/> in <paramref name="folder"/>.</summary>
    public static void WriteBars(string folder, int count, string fileName = MnistFolder.TrainImages)
    {
        var bytes = new byte[16 + count * 784];
        bytes[2] = 0x08;
        bytes[3] = 3;
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(4), (uint)count);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(8), 28);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(12), 28);
        for (int i = 0; i < count; i++)
            for (int y = 0; y < 28; y++)
                bytes[16 + i * 784 + y * 28 + 3 * i + 2] = 255;
        File.WriteAllBytes(Path.Combine(folder, fileName), bytes);
    }
}

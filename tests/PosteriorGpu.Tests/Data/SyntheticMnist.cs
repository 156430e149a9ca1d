using System.Buffers.Binary;
using PosteriorGpu.Models.Data;

namespace PosteriorGpu.Tests.Data;

/// <summary>IDX files for tests, and a tiny MNIST stand-in for command tests: 28 x 28 images where image i
/// is a full-height vertical bar in column 3 i + 2 (column 3 i + 4 once padded to 32 x 32).</summary>
public static class SyntheticMnist
{
    /// <summary>An IDX file by the format's definition: 0, 0, type, rank, big-endian u32 dimensions, data.</summary>
    public static byte[] IdxFile(byte type, uint[] dims, byte[] data)
    {
        var bytes = new byte[4 + 4 * dims.Length + data.Length];
        bytes[2] = type;
        bytes[3] = (byte)dims.Length;
        for (int i = 0; i < dims.Length; i++) BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(4 + 4 * i), dims[i]);
        data.CopyTo(bytes, 4 + 4 * dims.Length);
        return bytes;
    }

    /// <summary>Writes <paramref name="count"/> bar images as <paramref name="fileName"/> in <paramref name="folder"/>.</summary>
    public static void WriteBars(string folder, int count, string fileName = MnistFolder.TrainImages)
    {
        var pixels = new byte[count * 784];
        for (int i = 0; i < count; i++)
            for (int y = 0; y < 28; y++)
                pixels[i * 784 + y * 28 + 3 * i + 2] = 255;
        File.WriteAllBytes(Path.Combine(folder, fileName), IdxFile(0x08, [(uint)count, 28, 28], pixels));
    }
}

namespace PosteriorGpu.Models.IO;

/// <summary>Whole-file reads with a size check, and writes that go through a temporary file so a
/// crash mid-write never leaves a half-written checkpoint under the final name.</summary>
internal static class FileBytes
{
    /// <summary>Reads the whole file; files over the largest .NET array are rejected up front.</summary>
    public static byte[] ReadAll(string path)
    {
        long length = new FileInfo(path).Length;
        if (length > Array.MaxLength)
            throw new CheckpointFormatException(path, $"file is {length} bytes; files over {Array.MaxLength} bytes are not supported");
        return File.ReadAllBytes(path);
    }

    /// <summary>Writes <paramref name="head"/> then <paramref name="body"/> atomically.</summary>
    public static void WriteAtomically(string path, ReadOnlySpan<byte> head, ReadOnlySpan<byte> body)
    {
        string temp = TempName(path);
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                stream.Write(head);
                stream.Write(body);
            }
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    /// <summary>Lets <paramref name="write"/> fill a temporary file, then moves it to <paramref name="path"/>.</summary>
    public static void WriteAtomically(string path, Action<Stream> write)
    {
        string temp = TempName(path);
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
                write(stream);
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    private static string TempName(string path) =>
        Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
}

namespace PosteriorGpu.Models.IO;

/// <summary>A checkpoint, array or config file is malformed or uses something this library does not
/// support. The message always starts with the file name and names the tensor or field at fault.</summary>
public sealed class CheckpointFormatException : Exception
{
    /// <summary>The file (as the caller named it) that could not be read.</summary>
    public string FileName { get; }

    /// <summary>Creates the exception; the message becomes "<paramref name="fileName"/>: <paramref name="problem"/>".</summary>
    public CheckpointFormatException(string fileName, string problem, Exception? inner = null)
        : base($"{fileName}: {problem}", inner)
    {
        FileName = fileName;
    }
}

namespace PosteriorGpu.Cli;

/// <summary>The files a command reads and writes, with errors that say which role a path plays ("output folder",
/// "model folder", "input images") instead of .NET's bare "Could not find file".</summary>
internal static class CliFiles
{
    /// <summary>The model folder: <paramref name="given"/> (--model), or the shipped model when null.</summary>
    /// <exception cref="DirectoryNotFoundException">The folder is not there (names the role and the option).</exception>
    public static string ModelFolder(string? given)
    {
        if (given is null)
            return DefaultPaths.Find(DefaultPaths.Model) ?? throw new DirectoryNotFoundException(
                $"model folder: the default {DefaultPaths.Model} was not found (looked in {Path.GetFullPath(DefaultPaths.Model)} and above " +
                "the executable); give --model DIR (a diffusers UNet2DModel folder)");
        if (!Directory.Exists(given))
            throw new DirectoryNotFoundException($"model folder {given} not found; give --model DIR (a diffusers UNet2DModel folder with config.json " +
                                                 "and diffusion_pytorch_model.safetensors)");
        return given;
    }

    /// <summary>Creates the output folder (and its parents).</summary>
    /// <exception cref="IOException">It cannot be created (names the role and the reason).</exception>
    public static void CreateOutputFolder(string folder) => Writing("output folder", folder, () => Directory.CreateDirectory(folder));

    /// <summary>Creates the folder that will hold <paramref name="file"/> (an output file given by path).</summary>
    public static void CreateFolderOf(string file)
    {
        string? folder = Path.GetDirectoryName(Path.GetFullPath(file));
        if (folder is not null) CreateOutputFolder(folder);
    }

    /// <summary>Runs <paramref name="write"/>; an I/O or permission error becomes one that names <paramref name="role"/>
    /// and <paramref name="path"/>.</summary>
    public static T Writing<T>(string role, string path, Func<T> write)
    {
        try
        {
            return write();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"{role} {path}: cannot write there ({e.Message})", e);
        }
    }

    /// <summary>Runs <paramref name="write"/> as <see cref="Writing{T}"/> does.</summary>
    public static void Writing(string role, string path, Action write) => Writing(role, path, () =>
    {
        write();
        return 0;
    });
}

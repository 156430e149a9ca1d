namespace PosteriorGpu.Models.Data;

/// <summary>Where tools/fetch-mnist puts MNIST: the folder given, else $POSTERIORGPU_MNIST, else
/// ~/.cache/posteriorgpu/mnist (the same rule as the script), and the four file names in it.</summary>
public static class MnistFolder
{
    /// <summary>The environment variable that overrides the default folder.</summary>
    public const string EnvironmentVariable = "POSTERIORGPU_MNIST";

    /// <summary>Training images (60000 x 28 x 28).</summary>
    public const string TrainImages = "train-images-idx3-ubyte";

    /// <summary>Training labels.</summary>
    public const string TrainLabels = "train-labels-idx1-ubyte";

    /// <summary>Test images (10000 x 28 x 28).</summary>
    public const string TestImages = "t10k-images-idx3-ubyte";

    /// <summary>Test labels.</summary>
    public const string TestLabels = "t10k-labels-idx1-ubyte";

    /// <summary>The folder: <paramref name="folder"/> when given, else the environment variable, else the cache default.</summary>
    public static string Resolve(string? folder = null)
    {
        if (!string.IsNullOrEmpty(folder)) return folder;
        string? env = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrEmpty(env)) return env;
        return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "posteriorgpu", "mnist");
    }

    /// <summary>The path of <paramref name="fileName"/> in the resolved folder.</summary>
    /// <exception cref="FileNotFoundException">The file is missing; the message says to run tools/fetch-mnist.</exception>
    public static string File(string fileName, string? folder = null)
    {
        string dir = Resolve(folder);
        string path = Path.Combine(dir, fileName);
        if (!System.IO.File.Exists(path))
            throw new FileNotFoundException($"{path} not found; fetch MNIST with `tools/fetch-mnist {dir}`", path);
        return path;
    }
}

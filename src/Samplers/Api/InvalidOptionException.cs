namespace PosteriorGpu;

/// <summary>An option of <see cref="PosteriorOptions"/> is out of range for the model, the operator or the method;
/// <see cref="Option"/> names it (so a front end can name its own flag) and the message says what it must be.</summary>
public sealed class InvalidOptionException(string option, string message) : ArgumentException(message)
{
    /// <summary>The property of <see cref="PosteriorOptions"/> at fault, e.g. "Steps".</summary>
    public string Option { get; } = option;
}

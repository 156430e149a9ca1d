namespace PosteriorGpu;

/// <summary>An option of a posterior method's options record is out of range for the model, the operator or the method;
/// <see cref="Option"/> names the property (so a front end can name its own flag), <see cref="Rule"/> says what it must be.</summary>
public sealed class InvalidOptionException(string record, string option, object? value, string rule)
    : ArgumentException($"{record}.{option} = {value ?? "null"}: {rule}")
{
    /// <summary>The options record, e.g. "AnnealedLangevinOptions".</summary>
    public string Record { get; } = record;

    /// <summary>The property at fault, e.g. "StepScale".</summary>
    public string Option { get; } = option;

    /// <summary>The value given.</summary>
    public object? Value { get; } = value;

    /// <summary>What the value must be, e.g. "must be positive".</summary>
    public string Rule { get; } = rule;
}

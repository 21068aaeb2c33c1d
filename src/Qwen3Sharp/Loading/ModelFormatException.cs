namespace Qwen3Sharp.Loading;

/// <summary>
/// A model directory, config file or safetensors file that cannot be used: names the file, the tensor or config
/// field when there is one, and what is wrong with it.
/// </summary>
public sealed class ModelFormatException : Exception
{
    public ModelFormatException(string file, string? tensor, string reason, Exception? innerException = null)
        : base(Format(file, tensor, reason), innerException)
    {
        File = file;
        Tensor = tensor;
        Reason = reason;
    }

    /// <summary>The file at fault (as given to the loader).</summary>
    public string File { get; }

    /// <summary>The tensor name or config field at fault, when the fault is in one.</summary>
    public string? Tensor { get; }

    public string Reason { get; }

    private static string Format(string file, string? tensor, string reason)
        => tensor is null ? $"{file}: {reason}" : $"{file}: '{tensor}': {reason}";
}

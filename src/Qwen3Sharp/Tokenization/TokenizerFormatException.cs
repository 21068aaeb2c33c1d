namespace Qwen3Sharp.Tokenization;

/// <summary>A tokenizer file is missing, malformed or uses a feature this tokenizer does not implement.</summary>
public sealed class TokenizerFormatException : Exception
{
    public TokenizerFormatException(string file, string reason, Exception? inner = null)
        : base($"{file}: {reason}", inner)
    {
        File = file;
        Reason = reason;
    }

    /// <summary>The file at fault (tokenizer.json or tokenizer_config.json).</summary>
    public string File { get; }

    public string Reason { get; }
}

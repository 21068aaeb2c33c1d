using System.Text;

namespace Qwen3Sharp.Tokenization;

/// <summary>
/// Streams the text of token ids as they are generated. A UTF-8 character split across tokens is held back until
/// it completes; invalid bytes become U+FFFD exactly as <see cref="Qwen3Tokenizer.Decode"/> does, so the
/// concatenation of every <see cref="Append(int)"/> and the final <see cref="Flush()"/> equals Decode of all ids.
/// Not thread-safe: one per stream.
/// </summary>
public sealed class IncrementalDecoder
{
    private readonly Qwen3Tokenizer _tokenizer;
    private readonly bool _skipSpecialTokens;
    private readonly Decoder _utf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false).GetDecoder();
    private readonly char[] _scratch; // [MaxCharsPerAppend]

    internal IncrementalDecoder(Qwen3Tokenizer tokenizer, bool skipSpecialTokens)
    {
        _tokenizer = tokenizer;
        _skipSpecialTokens = skipSpecialTokens;
        MaxCharsPerAppend = tokenizer.MaxDecodedCharsPerToken + 4;
        _scratch = new char[MaxCharsPerAppend];
    }

    /// <summary>The most chars one Append or Flush writes.</summary>
    public int MaxCharsPerAppend { get; }

    /// <summary>Adds one token; returns the text it completes (often empty, never half a character).</summary>
    public string Append(int tokenId)
    {
        int written = Append(tokenId, _scratch);
        return written == 0 ? string.Empty : new string(_scratch, 0, written);
    }

    /// <summary>
    /// Adds one token and writes the text it completes to <paramref name="destination"/>; returns the number of
    /// chars written. A destination of <see cref="MaxCharsPerAppend"/> chars is always enough.
    /// </summary>
    public int Append(int tokenId, Span<char> destination)
    {
        switch (_tokenizer.KindOf(tokenId))
        {
            case Qwen3Tokenizer.TokenKind.Bytes:
                ReadOnlySpan<byte> bytes = _tokenizer.BytesOf(tokenId);
                EnsureRoom(destination, bytes.Length + 3); // held-back bytes (<= 3) may turn into U+FFFD each
                return _utf8.GetChars(bytes, destination, flush: false);
            case Qwen3Tokenizer.TokenKind.Special when _skipSpecialTokens:
                return 0;
            case Qwen3Tokenizer.TokenKind.Added or Qwen3Tokenizer.TokenKind.Special:
                string content = _tokenizer.AddedContentOf(tokenId);
                EnsureRoom(destination, content.Length + 3);
                int written = _utf8.GetChars([], destination, flush: true);
                content.CopyTo(destination[written..]);
                return written + content.Length;
            default:
                return 0; // ids without a token are skipped, as Decode does
        }
    }

    private void EnsureRoom(Span<char> destination, int needed)
    {
        if (destination.Length < needed)
            throw new ArgumentException($"destination has {destination.Length} chars; this token needs up to {needed} (MaxCharsPerAppend = {MaxCharsPerAppend} always suffices).", nameof(destination));
    }

    /// <summary>Ends the stream: bytes of an unfinished character become U+FFFD. The decoder is then empty.</summary>
    public string Flush()
    {
        int written = Flush(_scratch);
        return written == 0 ? string.Empty : new string(_scratch, 0, written);
    }

    /// <summary>Span variant of <see cref="Flush()"/>; writes at most 3 chars.</summary>
    public int Flush(Span<char> destination)
    {
        EnsureRoom(destination, 3);
        return _utf8.GetChars([], destination, flush: true);
    }

    /// <summary>Forgets any held-back bytes.</summary>
    public void Reset() => _utf8.Reset();
}

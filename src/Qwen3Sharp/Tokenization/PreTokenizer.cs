namespace Qwen3Sharp.Tokenization;

/// <summary>
/// Hand-written equivalent of the Qwen2/Qwen3 Split pre-tokenizer regex (behavior Isolated), applied by code
/// point as Hugging Face (Oniguruma) and transformers.js (/u regexes) do:
/// <code>
/// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
/// </code>
/// with <c>\s</c> = <c>\p{White_Space}</c> and ASCII-only case folding (what transformers.js compiles it to).
/// .NET's Regex would see a supplementary letter or emoji as two surrogates and split differently, hence this.
/// Every position starts a match, so the pieces tile the text: <see cref="NextPieceEnd"/> is all there is.
/// </summary>
internal static class PreTokenizer
{
    /// <summary>The regex this class implements, exactly as it appears in tokenizer.json.</summary>
    public const string Pattern =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    private const byte L = UnicodeClasses.Letter, N = UnicodeClasses.Number, Ws = UnicodeClasses.WhiteSpace;

    /// <summary>End (exclusive) of the piece that starts at <paramref name="start"/> (&lt; text.Length).</summary>
    public static int NextPieceEnd(ReadOnlySpan<char> text, int start)
    {
        char c0 = text[start];
        int cls0 = UnicodeClasses.ClassAt(text, start, out int len0);
        int next = start + len0;

        // 1. contractions: 's 't 're 've 'm 'll 'd, ASCII case-insensitive
        if (c0 == '\'' && next < text.Length)
        {
            int contraction = ContractionLength(text, next);
            if (contraction > 0) return next + contraction;
        }

        // 2. [^\r\n\p{L}\p{N}]?\p{L}+
        if ((cls0 & L) != 0) return LettersEnd(text, next);
        if ((cls0 & N) == 0 && c0 != '\r' && c0 != '\n' && next < text.Length
            && (UnicodeClasses.ClassAt(text, next, out int len1) & L) != 0)
            return LettersEnd(text, next + len1);

        // 3. \p{N}: one number at a time
        if ((cls0 & N) != 0) return next;

        // 4. ' ?[^\s\p{L}\p{N}]+[\r\n]*'
        if ((cls0 & Ws) == 0) return NewlinesEnd(text, OthersEnd(text, next));
        if (c0 == ' ' && next < text.Length && (UnicodeClasses.ClassAt(text, next, out int len2) & (L | N | Ws)) == 0)
            return NewlinesEnd(text, OthersEnd(text, next + len2));

        // white space run [start, wsEnd); White_Space is BMP-only, one char per code point
        int wsEnd = next;
        while (wsEnd < text.Length && (UnicodeClasses.OfBmp(text[wsEnd]) & Ws) != 0) wsEnd++;

        // 5. \s*[\r\n]+ : up to and including the last newline of the run
        int lastNewline = text[start..wsEnd].LastIndexOfAny('\r', '\n');
        if (lastNewline >= 0) return start + lastNewline + 1;

        // 6. \s+(?!\S) : the run, minus its last char when a non-space follows (if that leaves something)
        if (wsEnd == text.Length) return wsEnd;
        if (wsEnd - start >= 2) return wsEnd - 1;

        // 7. \s+
        return wsEnd;
    }

    private static int ContractionLength(ReadOnlySpan<char> text, int i)
    {
        char a = (char)(text[i] | 0x20); // ASCII lower case (only compared with ASCII letters)
        switch (a)
        {
            case 's' or 't' or 'm' or 'd':
                return 1;
            case 'r' or 'v':
                return i + 1 < text.Length && (text[i + 1] | 0x20) == 'e' ? 2 : 0;
            case 'l':
                return i + 1 < text.Length && (text[i + 1] | 0x20) == 'l' ? 2 : 0;
            default:
                return 0;
        }
    }

    private static int LettersEnd(ReadOnlySpan<char> text, int i)
    {
        while (i < text.Length)
        {
            char c = text[i];
            if (c < 0x80)
            {
                if ((uint)((c | 0x20) - 'a') > 'z' - 'a') return i; // ASCII letters are the only ASCII \p{L}
                i++;
                continue;
            }
            if ((UnicodeClasses.ClassAt(text, i, out int length) & L) == 0) return i;
            i += length;
        }
        return i;
    }

    private static int OthersEnd(ReadOnlySpan<char> text, int i)
    {
        while (i < text.Length && (UnicodeClasses.ClassAt(text, i, out int length) & (L | N | Ws)) == 0) i += length;
        return i;
    }

    private static int NewlinesEnd(ReadOnlySpan<char> text, int i)
    {
        while (i < text.Length && text[i] is '\r' or '\n') i++;
        return i;
    }
}

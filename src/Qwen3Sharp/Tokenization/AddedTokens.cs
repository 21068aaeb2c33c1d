using System.Buffers;

namespace Qwen3Sharp.Tokenization;

/// <summary>An entry of tokenizer.json's added_tokens.</summary>
/// <param name="Normalized">Matched in normalized text (true) or in the raw input (false).</param>
/// <param name="Special">Removed by decoding with skipSpecialTokens.</param>
public sealed record AddedToken(int Id, string Content, bool Special, bool LeftStrip, bool RightStrip, bool Normalized);

/// <summary>
/// Finds added tokens in text the way Hugging Face does: scanning left to right, at the first position where an
/// added token starts the longest one is taken (transformers.js' DictionarySplitter; aho-corasick leftmost-longest
/// in the Rust tokenizers).
/// </summary>
internal sealed class AddedTokenMatcher
{
    private readonly SearchValues<char> _firstChars;
    private readonly Dictionary<char, AddedToken[]> _byFirstChar; // candidates per first char, longest first

    public AddedTokenMatcher(IEnumerable<AddedToken> tokens, Func<AddedToken, string> content)
    {
        _byFirstChar = tokens
            .Select(t => (Token: t, Text: content(t)))
            .Where(t => t.Text.Length > 0)
            .GroupBy(t => t.Text[0])
            .ToDictionary(g => g.Key, g => g.OrderByDescending(t => t.Text.Length).Select(t => t.Token with { Content = t.Text }).ToArray());
        _firstChars = SearchValues.Create([.. _byFirstChar.Keys]);
        Count = _byFirstChar.Sum(p => p.Value.Length);
    }

    public int Count { get; }

    /// <summary>
    /// Finds the first added token at or after <paramref name="start"/>. Returns its index in text (or -1) and
    /// the token, whose Content is the matched text.
    /// </summary>
    public int Find(ReadOnlySpan<char> text, int start, out AddedToken? token)
    {
        token = null;
        if (Count == 0) return -1;
        int i = start;
        while (i < text.Length)
        {
            int offset = text[i..].IndexOfAny(_firstChars);
            if (offset < 0) return -1;
            i += offset;
            ReadOnlySpan<char> rest = text[i..];
            foreach (AddedToken candidate in _byFirstChar[text[i]])
            {
                if (rest.StartsWith(candidate.Content, StringComparison.Ordinal))
                {
                    token = candidate;
                    return i;
                }
            }
            i++;
        }
        return -1;
    }

    /// <summary>JavaScript's String.prototype.trim white space (what transformers.js strips for lstrip/rstrip).</summary>
    public static bool IsTrimSpace(char c) =>
        c is '\t' or '\n' or '\v' or '\f' or '\r' or ' ' or '\u00A0' or '\u1680' or '\u2028' or '\u2029'
            or '\u202F' or '\u205F' or '\u3000' or '\uFEFF' || (c >= '\u2000' && c <= '\u200A');

    public static ReadOnlySpan<char> TrimStart(ReadOnlySpan<char> s)
    {
        int i = 0;
        while (i < s.Length && IsTrimSpace(s[i])) i++;
        return s[i..];
    }

    public static ReadOnlySpan<char> TrimEnd(ReadOnlySpan<char> s)
    {
        int i = s.Length;
        while (i > 0 && IsTrimSpace(s[i - 1])) i--;
        return s[..i];
    }
}

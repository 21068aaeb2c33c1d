namespace Qwen3Sharp.Tokenization;

/// <summary>
/// Code point classes used by the pre-tokenizer and the NFC quick check, from <see cref="UnicodeTables"/>
/// (the Unicode version of the reference, not the runtime's: the runtime's data would drift from it).
/// </summary>
internal static class UnicodeClasses
{
    public const byte Letter = 1;        // \p{L}
    public const byte Number = 2;        // \p{N}
    public const byte WhiteSpace = 4;    // \p{White_Space}
    public const byte NfcCandidate = 8;  // may change under NFC or change a neighbour

    // [65536]: class bits of every BMP code point (surrogates are 0: resolved by the callers).
    private static readonly byte[] s_bmp = BuildBmp();

    private static byte[] BuildBmp()
    {
        var table = new byte[65536];
        Fill(table, UnicodeTables.LetterRanges, Letter);
        Fill(table, UnicodeTables.NumberRanges, Number);
        Fill(table, UnicodeTables.WhiteSpaceRanges, WhiteSpace);
        Fill(table, UnicodeTables.NfcCandidateRanges, NfcCandidate);
        return table;
    }

    private static void Fill(byte[] table, ReadOnlySpan<int> ranges, byte bit)
    {
        for (int i = 0; i < ranges.Length; i += 2)
        {
            int start = ranges[i], end = Math.Min(ranges[i + 1], 0xFFFF);
            for (int cp = start; cp <= end; cp++) table[cp] |= bit;
        }
    }

    /// <summary>Class bits of a BMP code unit (0 for surrogates).</summary>
    public static byte OfBmp(char c) => s_bmp[c];

    /// <summary>Class bits of any code point (lone surrogates included: 0).</summary>
    public static byte Of(int codePoint)
    {
        if (codePoint <= 0xFFFF) return s_bmp[codePoint];
        byte bits = 0;
        if (InRanges(UnicodeTables.LetterRanges, codePoint)) bits |= Letter;
        if (InRanges(UnicodeTables.NumberRanges, codePoint)) bits |= Number;
        if (InRanges(UnicodeTables.NfcCandidateRanges, codePoint)) bits |= NfcCandidate;
        return bits; // no supplementary code point is White_Space
    }

    /// <summary>Binary search over sorted inclusive [start, end] pairs.</summary>
    private static bool InRanges(ReadOnlySpan<int> ranges, int codePoint)
    {
        int lo = 0, hi = ranges.Length / 2 - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >> 1;
            if (codePoint < ranges[2 * mid]) hi = mid - 1;
            else if (codePoint > ranges[2 * mid + 1]) lo = mid + 1;
            else return true;
        }
        return false;
    }

    /// <summary>
    /// Reads the code point at <paramref name="index"/>: a surrogate pair gives the supplementary code point
    /// (length 2); a lone surrogate is its own code point (length 1), as JavaScript's /u regexes see it.
    /// </summary>
    public static int CodePointAt(ReadOnlySpan<char> text, int index, out int length)
    {
        char c = text[index];
        if (char.IsHighSurrogate(c) && index + 1 < text.Length && char.IsLowSurrogate(text[index + 1]))
        {
            length = 2;
            return char.ConvertToUtf32(c, text[index + 1]);
        }
        length = 1;
        return c;
    }

    /// <summary>Class bits of the code point at <paramref name="index"/>.</summary>
    public static byte ClassAt(ReadOnlySpan<char> text, int index, out int length)
    {
        char c = text[index];
        if (!char.IsSurrogate(c))
        {
            length = 1;
            return s_bmp[c];
        }
        return Of(CodePointAt(text, index, out length));
    }
}

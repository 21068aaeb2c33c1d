using System.Buffers;

namespace Qwen3Sharp.Tokenization;

/// <summary>
/// Unicode Normalization Form C, self-contained. The runtime's <c>string.Normalize</c> is unusable here: under
/// InvariantGlobalization it returns the input unchanged, and its Unicode version would drift from the reference.
/// Algorithm: full canonical decomposition, canonical ordering, canonical composition (UAX #15), with Hangul done
/// arithmetically. Lone surrogates pass through unchanged, as in JavaScript's normalize.
/// </summary>
internal static class Nfc
{
    private const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
    private const int LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

    private static readonly Dictionary<long, int> s_compositions = BuildCompositions();

    private static Dictionary<long, int> BuildCompositions()
    {
        ReadOnlySpan<int> triples = UnicodeTables.Compositions;
        var map = new Dictionary<long, int>(triples.Length / 3);
        for (int i = 0; i < triples.Length; i += 3) map.Add(PairKey(triples[i], triples[i + 1]), triples[i + 2]);
        return map;
    }

    private static long PairKey(int first, int second) => ((long)first << 21) | (uint)second;

    /// <summary>True when <paramref name="text"/> certainly is NFC (no character that NFC could touch).</summary>
    public static bool IsQuickNormalized(ReadOnlySpan<char> text)
    {
        // Everything below U+0300 is NFC-stable with combining class 0.
        int i = text.IndexOfAnyExceptInRange('\0', '\u02FF');
        if (i < 0) return true;
        for (; i < text.Length; i++)
        {
            char c = text[i];
            if (c < 0x300) continue;
            if (!char.IsSurrogate(c))
            {
                if ((UnicodeClasses.OfBmp(c) & UnicodeClasses.NfcCandidate) != 0) return false;
                continue;
            }
            int cp = UnicodeClasses.CodePointAt(text, i, out int length);
            if ((UnicodeClasses.Of(cp) & UnicodeClasses.NfcCandidate) != 0) return false;
            i += length - 1;
        }
        return true;
    }

    /// <summary>NFC of <paramref name="text"/> as a new string.</summary>
    public static string Normalize(ReadOnlySpan<char> text)
    {
        char[]? rented = null;
        try
        {
            int length = Normalize(text, ref rented);
            return new string(rented!, 0, length);
        }
        finally
        {
            if (rented is not null) ArrayPool<char>.Shared.Return(rented);
        }
    }

    /// <summary>
    /// Writes NFC of <paramref name="text"/> into <paramref name="destination"/>, renting (or growing) it from
    /// ArrayPool&lt;char&gt;.Shared; the caller returns it. Returns the number of chars written.
    /// Works in chunks of about <see cref="ChunkChars"/> chars cut at normalization boundaries, so scratch memory
    /// stays small whatever the text length.
    /// </summary>
    public static int Normalize(ReadOnlySpan<char> text, ref char[]? destination)
    {
        int written = 0;
        int[] cps = ArrayPool<int>.Shared.Rent(ChunkChars * 4 + 64); // [chunk code points]: decomposition expands <= 4x per char
        try
        {
            for (int start = 0; start < text.Length;)
            {
                int end = NextChunkEnd(text, start);
                ReadOnlySpan<char> chunk = text[start..end];
                start = end;
                if (IsQuickNormalized(chunk))
                {
                    Grow(ref destination, written, written + chunk.Length);
                    chunk.CopyTo(destination.AsSpan(written));
                    written += chunk.Length;
                    continue;
                }
                if (cps.Length < chunk.Length * 4 + 4)
                {
                    ArrayPool<int>.Shared.Return(cps);
                    cps = ArrayPool<int>.Shared.Rent(chunk.Length * 4 + 4);
                }
                int count = Decompose(chunk, cps);
                ReorderCanonically(cps.AsSpan(0, count));
                count = Compose(cps.AsSpan(0, count));
                Grow(ref destination, written, written + count * 2);
                written += WriteUtf16(cps.AsSpan(0, count), destination.AsSpan(written));
            }
            Grow(ref destination, written, Math.Max(written, 16));
            return written;
        }
        finally
        {
            ArrayPool<int>.Shared.Return(cps);
        }
    }

    /// <summary>Chars per normalization chunk (before extending to the next boundary).</summary>
    internal const int ChunkChars = 2048;

    /// <summary>
    /// End of the chunk starting at <paramref name="start"/>: the first normalization boundary at or after
    /// start + ChunkChars. A boundary precedes a code point with combining class 0 that NFC never changes or
    /// composes with what comes before (not an NFC candidate), so NFC(a + b) = NFC(a) + NFC(b) there.
    /// </summary>
    private static int NextChunkEnd(ReadOnlySpan<char> text, int start)
    {
        int i = start + ChunkChars;
        if (i >= text.Length) return text.Length;
        while (i < text.Length)
        {
            char c = text[i];
            if (!char.IsLowSurrogate(c) && (UnicodeClasses.Of(UnicodeClasses.CodePointAt(text, i, out _)) & UnicodeClasses.NfcCandidate) == 0)
                return i;
            i++;
        }
        return text.Length;
    }

    private static void Grow(ref char[]? buffer, int used, int needed)
    {
        if (buffer is not null && buffer.Length >= needed) return;
        char[] bigger = ArrayPool<char>.Shared.Rent(Math.Max(needed, buffer is null ? 0 : buffer.Length * 2));
        if (buffer is not null)
        {
            buffer.AsSpan(0, used).CopyTo(bigger);
            ArrayPool<char>.Shared.Return(buffer);
        }
        buffer = bigger;
    }

    private static int WriteUtf16(ReadOnlySpan<int> cps, Span<char> destination)
    {
        int written = 0;
        foreach (int cp in cps)
        {
            if (cp <= 0xFFFF)
            {
                destination[written++] = (char)cp;
                continue;
            }
            int v = cp - 0x10000;
            destination[written++] = (char)(0xD800 + (v >> 10));
            destination[written++] = (char)(0xDC00 + (v & 0x3FF));
        }
        return written;
    }

    private static int Decompose(ReadOnlySpan<char> text, int[] cps)
    {
        ReadOnlySpan<int> keys = UnicodeTables.DecompositionKeys;
        ReadOnlySpan<int> offsets = UnicodeTables.DecompositionOffsets;
        ReadOnlySpan<int> data = UnicodeTables.DecompositionData;
        int count = 0;
        for (int i = 0; i < text.Length;)
        {
            int cp = UnicodeClasses.CodePointAt(text, i, out int length);
            i += length;
            int s = cp - SBase;
            if ((uint)s < SCount)
            {
                cps[count++] = LBase + s / NCount;
                cps[count++] = VBase + s % NCount / TCount;
                if (s % TCount != 0) cps[count++] = TBase + s % TCount;
                continue;
            }
            int k = cp < 0xC0 ? -1 : keys.BinarySearch(cp);
            if (k < 0)
            {
                cps[count++] = cp;
                continue;
            }
            ReadOnlySpan<int> mapping = data[offsets[k]..offsets[k + 1]];
            mapping.CopyTo(cps.AsSpan(count));
            count += mapping.Length;
        }
        return count;
    }

    /// <summary>Order-preserving rank of the canonical combining class (0 for starters).</summary>
    public static int CombiningRank(int cp)
    {
        if (cp < 0x300) return 0;
        int k = UnicodeTables.CombiningCodePoints.BinarySearch(cp);
        return k < 0 ? 0 : UnicodeTables.CombiningRanks[k];
    }

    /// <summary>Stable sort by combining class of every run of non-starters (insertion sort: runs are short).</summary>
    private static void ReorderCanonically(Span<int> cps)
    {
        for (int i = 1; i < cps.Length; i++)
        {
            int rank = CombiningRank(cps[i]);
            if (rank == 0) continue;
            int cp = cps[i];
            int j = i;
            while (j > 0)
            {
                int previous = CombiningRank(cps[j - 1]);
                if (previous <= rank) break; // starters (0) and lower-or-equal classes stop the move
                cps[j] = cps[j - 1];
                j--;
            }
            cps[j] = cp;
        }
    }

    private static int Compose(Span<int> cps)
    {
        if (cps.Length == 0) return 0;
        int starterPos = 0;
        int starter = cps[0];
        int lastRank = CombiningRank(starter);
        if (lastRank != 0) lastRank = 256; // a leading non-starter composes with nothing
        int written = 1;
        for (int i = 1; i < cps.Length; i++)
        {
            int cp = cps[i];
            int rank = CombiningRank(cp);
            int composite = ComposePair(starter, cp);
            if (composite >= 0 && (lastRank < rank || lastRank == 0))
            {
                cps[starterPos] = composite;
                starter = composite;
                continue;
            }
            if (rank == 0)
            {
                starterPos = written;
                starter = cp;
            }
            lastRank = rank;
            cps[written++] = cp;
        }
        return written;
    }

    private static int ComposePair(int first, int second)
    {
        int l = first - LBase;
        if ((uint)l < LCount)
        {
            int v = second - VBase;
            return (uint)v < VCount ? SBase + (l * VCount + v) * TCount : -1;
        }
        int s = first - SBase;
        if ((uint)s < SCount && s % TCount == 0)
        {
            int t = second - TBase;
            return t > 0 && t < TCount ? first + t : -1;
        }
        return s_compositions.TryGetValue(PairKey(first, second), out int composite) ? composite : -1;
    }
}

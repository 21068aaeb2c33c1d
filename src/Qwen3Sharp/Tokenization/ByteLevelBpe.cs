using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text;

namespace Qwen3Sharp.Tokenization;

/// <summary>
/// Byte-level BPE model (GPT-2 byte alphabet): a pre-token's UTF-8 bytes start as one symbol per byte and the
/// lowest-ranked adjacent pair is merged, leftmost first, until no pair has a merge. Results are cached per
/// pre-token.
/// </summary>
internal sealed class ByteLevelBpe
{
    private const int CacheCapacity = 1 << 16;   // entries before the cache is cleared
    private const int MaxCachedPieceLength = 128; // chars
    private const int ShortWordSymbols = 64;      // above this, merge with a heap instead of scanning

    private readonly int[] _byteToId = new int[256];   // [256]: id of the token of each single byte
    private readonly MergeTable _merges;
    private readonly ConcurrentDictionary<string, int[]> _cache = new();
    private readonly ConcurrentDictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> _cacheLookup;
    private int _cacheCount;

    public ByteLevelBpe(Dictionary<string, int> vocab, IReadOnlyList<(string Left, string Right)> merges, string file)
    {
        Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> vocabBySpan = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        Span<char> pair = stackalloc char[256];
        for (int b = 0; b < 256; b++)
        {
            string symbol = ByteAlphabet.CharOf((byte)b).ToString();
            if (!vocab.TryGetValue(symbol, out _byteToId[b]))
                throw new TokenizerFormatException(file, $"model.vocab lacks the byte-level token '{symbol}' of byte 0x{b:X2}");
        }
        _merges = new MergeTable(merges.Count);
        for (int rank = 0; rank < merges.Count; rank++)
        {
            (string left, string right) = merges[rank];
            int length = left.Length + right.Length;
            Span<char> merged = length <= pair.Length ? pair[..length] : new char[length];
            left.CopyTo(merged);
            right.CopyTo(merged[left.Length..]);
            if (!vocab.TryGetValue(left, out int leftId) || !vocab.TryGetValue(right, out int rightId)
                || !vocabBySpan.TryGetValue(merged, out int mergedId))
                throw new TokenizerFormatException(file, $"model.merges[{rank}] ('{left}' '{right}') uses a token missing from model.vocab");
            _merges.Set(leftId, rightId, rank, mergedId); // a repeated pair takes its last rank, as HF's map does
        }
        _cacheLookup = _cache.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    public int ByteToId(byte b) => _byteToId[b];

    /// <summary>Empties the pre-token cache (benchmarks measure the cold path with it).</summary>
    internal void ClearCache()
    {
        _cache.Clear();
        Interlocked.Exchange(ref _cacheCount, 0);
    }

    /// <summary>Appends the ids of one pre-token.</summary>
    public void EncodePiece(ReadOnlySpan<char> piece, List<int> destination)
    {
        if (piece.Length == 1 && piece[0] < 0x80)
        {
            destination.Add(_byteToId[piece[0]]);
            return;
        }
        if (_cacheLookup.TryGetValue(piece, out int[]? cached))
        {
            destination.AddRange(cached);
            return;
        }

        int maxBytes = Encoding.UTF8.GetMaxByteCount(piece.Length);
        byte[]? rentedBytes = null;
        Span<byte> bytes = maxBytes <= 512 ? stackalloc byte[512] : (rentedBytes = ArrayPool<byte>.Shared.Rent(maxBytes));
        int[]? rentedIds = null;
        try
        {
            int byteCount = Encoding.UTF8.GetBytes(piece, bytes); // lone surrogates become U+FFFD, as TextEncoder does
            Span<int> ids = byteCount <= 256 ? stackalloc int[256] : (rentedIds = ArrayPool<int>.Shared.Rent(byteCount));
            for (int i = 0; i < byteCount; i++) ids[i] = _byteToId[bytes[i]];
            int count = Merge(ids[..byteCount]);
            destination.AddRange(ids[..count]);
            if (piece.Length <= MaxCachedPieceLength && _cacheLookup.TryAdd(piece, ids[..count].ToArray())
                && Interlocked.Increment(ref _cacheCount) >= CacheCapacity)
            {
                // ConcurrentDictionary.Count takes every lock, so the size is tracked here; a rare race only
                // makes the cache clear a little early or late.
                _cache.Clear();
                Interlocked.Exchange(ref _cacheCount, 0);
            }
        }
        finally
        {
            if (rentedBytes is not null) ArrayPool<byte>.Shared.Return(rentedBytes);
            if (rentedIds is not null) ArrayPool<int>.Shared.Return(rentedIds);
        }
    }

    /// <summary>Runs all merges on <paramref name="symbols"/> in place; returns the new symbol count.</summary>
    public int Merge(Span<int> symbols) =>
        symbols.Length <= ShortWordSymbols ? MergeByScan(symbols) : MergeWithHeap(symbols);

    /// <summary>O(n^2) merge for short words: pair ranks are kept per position and refreshed around each merge.</summary>
    internal int MergeByScan(Span<int> symbols)
    {
        int count = symbols.Length;
        if (count < 2) return count;
        int[]? rented = null;
        Span<int> ranks = count <= ShortWordSymbols ? stackalloc int[ShortWordSymbols] : (rented = ArrayPool<int>.Shared.Rent(count)); // [count - 1]: rank of pair (i, i + 1)
        try
        {
            for (int i = 0; i < count - 1; i++) ranks[i] = _merges.RankOf(symbols[i], symbols[i + 1], out _);
            while (count > 1)
            {
                int best = 0;
                int bestRank = ranks[0];
                for (int i = 1; i < count - 1; i++)
                {
                    if (ranks[i] < bestRank)
                    {
                        bestRank = ranks[i];
                        best = i;
                    }
                }
                if (bestRank == int.MaxValue) break;
                _merges.RankOf(symbols[best], symbols[best + 1], out int merged);
                symbols[best] = merged;
                symbols[(best + 2)..count].CopyTo(symbols[(best + 1)..]);
                if (best + 2 < count - 1) ranks[(best + 2)..(count - 1)].CopyTo(ranks[(best + 1)..]);
                count--;
                if (best > 0) ranks[best - 1] = _merges.RankOf(symbols[best - 1], merged, out _);
                if (best < count - 1) ranks[best] = _merges.RankOf(merged, symbols[best + 1], out _);
            }
            return count;
        }
        finally
        {
            if (rented is not null) ArrayPool<int>.Shared.Return(rented);
        }
    }

    /// <summary>
    /// O(n log n) merge for long words (Hugging Face's algorithm): a min-heap of (rank, left position) over a
    /// linked list of symbols; stale entries are skipped when popped.
    /// </summary>
    internal int MergeWithHeap(Span<int> symbols)
    {
        int n = symbols.Length;
        if (n < 2) return n;
        int[] next = ArrayPool<int>.Shared.Rent(n);      // [n]: index of the next live symbol, -1 at the end
        int[] previous = ArrayPool<int>.Shared.Rent(n);  // [n]: index of the previous live symbol, -1 at the start
        long[] heap = ArrayPool<long>.Shared.Rent(3 * n); // [heapCount <= n - 1 + 2 * merges]: (rank << 32) | left position
        int heapCount = 0;
        try
        {
            for (int i = 0; i < n; i++)
            {
                next[i] = i + 1 < n ? i + 1 : -1;
                previous[i] = i - 1;
            }
            for (int i = 0; i < n - 1; i++)
            {
                int rank = _merges.RankOf(symbols[i], symbols[i + 1], out _);
                if (rank != int.MaxValue) Push(heap, ref heapCount, ((long)rank << 32) | (uint)i);
            }
            while (heapCount > 0)
            {
                long top = Pop(heap, ref heapCount);
                int position = (int)top, rank = (int)(top >> 32);
                if (symbols[position] < 0) continue; // merged into its left neighbour
                int right = next[position];
                if (right < 0) continue;
                if (_merges.RankOf(symbols[position], symbols[right], out int merged) != rank) continue; // stale
                symbols[position] = merged;
                symbols[right] = -1;
                int afterRight = next[right];
                next[position] = afterRight;
                if (afterRight >= 0) previous[afterRight] = position;
                int left = previous[position];
                if (left >= 0)
                {
                    int leftRank = _merges.RankOf(symbols[left], merged, out _);
                    if (leftRank != int.MaxValue) Push(heap, ref heapCount, ((long)leftRank << 32) | (uint)left);
                }
                if (afterRight >= 0)
                {
                    int rightRank = _merges.RankOf(merged, symbols[afterRight], out _);
                    if (rightRank != int.MaxValue) Push(heap, ref heapCount, ((long)rightRank << 32) | (uint)position);
                }
            }
            int count = 0;
            for (int i = 0; i >= 0; i = next[i]) symbols[count++] = symbols[i];
            return count;
        }
        finally
        {
            ArrayPool<int>.Shared.Return(next);
            ArrayPool<int>.Shared.Return(previous);
            ArrayPool<long>.Shared.Return(heap);
        }
    }

    private static void Push(long[] heap, ref int count, long value)
    {
        int i = count++;
        while (i > 0)
        {
            int parent = (i - 1) >> 1;
            if (heap[parent] <= value) break;
            heap[i] = heap[parent];
            i = parent;
        }
        heap[i] = value;
    }

    private static long Pop(long[] heap, ref int count)
    {
        long top = heap[0];
        long last = heap[--count];
        int i = 0;
        while (true)
        {
            int child = 2 * i + 1;
            if (child >= count) break;
            if (child + 1 < count && heap[child + 1] < heap[child]) child++;
            if (heap[child] >= last) break;
            heap[i] = heap[child];
            i = child;
        }
        if (count > 0) heap[i] = last;
        return top;
    }

    /// <summary>Open-addressing hash table (pair of ids) -> (rank, merged id); linear probing.</summary>
    private sealed class MergeTable
    {
        private readonly long[] _keys;   // [capacity]: (left << 32) | right, -1 when empty
        private readonly int[] _ranks;   // [capacity]
        private readonly int[] _merged;  // [capacity]
        private readonly int _shift;

        public MergeTable(int count)
        {
            int bits = Math.Max(4, 64 - System.Numerics.BitOperations.LeadingZeroCount((ulong)Math.Max(count, 1) * 2) + 1);
            int capacity = 1 << bits;
            _shift = 64 - bits;
            _keys = new long[capacity];
            _keys.AsSpan().Fill(-1);
            _ranks = new int[capacity];
            _merged = new int[capacity];
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private int Slot(long key) => (int)((ulong)key * 0x9E3779B97F4A7C15UL >> _shift);

        public void Set(int left, int right, int rank, int merged)
        {
            long key = ((long)left << 32) | (uint)right;
            int mask = _keys.Length - 1;
            for (int i = Slot(key); ; i = (i + 1) & mask)
            {
                if (_keys[i] == key || _keys[i] == -1)
                {
                    _keys[i] = key;
                    _ranks[i] = rank;
                    _merged[i] = merged;
                    return;
                }
            }
        }

        /// <summary>Rank of the pair, or int.MaxValue when it has no merge.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public int RankOf(int left, int right, out int merged)
        {
            long key = ((long)left << 32) | (uint)right;
            int mask = _keys.Length - 1;
            for (int i = Slot(key); ; i = (i + 1) & mask)
            {
                long k = _keys[i];
                if (k == key)
                {
                    merged = _merged[i];
                    return _ranks[i];
                }
                if (k == -1)
                {
                    merged = -1;
                    return int.MaxValue;
                }
            }
        }
    }
}

/// <summary>GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to U+0100 and up.</summary>
internal static class ByteAlphabet
{
    private static readonly char[] s_byteToChar = BuildByteToChar(); // [256]
    private static readonly short[] s_charToByte = BuildCharToByte(); // [0x180]: byte of each alphabet char, -1 otherwise

    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        int extra = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            map[b] = printable ? (char)b : (char)(256 + extra++);
        }
        return map;
    }

    private static short[] BuildCharToByte()
    {
        var map = new short[0x180];
        map.AsSpan().Fill(-1);
        for (int b = 0; b < 256; b++) map[s_byteToChar[b]] = (short)b;
        return map;
    }

    public static char CharOf(byte b) => s_byteToChar[b];

    /// <summary>The byte a byte-level char stands for, or -1 when the char is not in the alphabet.</summary>
    public static int ByteOf(char c) => c < s_charToByte.Length ? s_charToByte[c] : -1;
}

using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Qwen3Sharp.Cache;

namespace Qwen3Sharp.Kernels;

public static unsafe class Attention
{
    /// <summary>
    /// Causal grouped-query attention of a batch of new tokens against the cache.
    /// q [tokenCount, headCount * headDim]; keys and values [kvHeadCount, startPosition + tokenCount, headDim] (one
    /// head-major block of exactly the context, <see cref="IKvStore"/>) already hold the new tokens' k and v; token t
    /// sits at position startPosition + t and sees positions 0..startPosition + t. Query head h reads kv head
    /// h / (headCount / kvHeadCount).
    /// destination [tokenCount, headCount * headDim].
    /// </summary>
    /// <remarks>
    /// One pool item per (tile of tokens, kv head): the tile's query heads of that kv head (about 16 rows) score the
    /// positions each sees into the worker's scratch [rows, context], a block of keys at a time for all rows, then
    /// softmax and sum the values a block at a time. Every row's result is the row's alone, bit for bit.
    /// </remarks>
    public static void Causal(WorkerPool pool, ReadOnlySpan<float> q, int tokenCount, int startPosition,
        ReadOnlySpan<float> keys, ReadOnlySpan<float> values, int headCount, int kvHeadCount, int headDim,
        float scale, Span<float> destination)
        => Causal(pool, q, tokenCount, startPosition, keys, values, SingleBlock, Math.Max(1, startPosition + tokenCount),
            headCount, kvHeadCount, headDim, scale, destination);

    private static readonly int[] SingleBlock = [0];

    /// <summary>
    /// As <see cref="Causal(WorkerPool, ReadOnlySpan{float}, int, int, ReadOnlySpan{float}, ReadOnlySpan{float}, int, int, int, float, Span{float})"/>
    /// over a paged cache: keys and values [blocks, kvHeadCount, blockSize, headDim] (head-major blocks, <see cref="IKvStore"/>),
    /// position p in slot p % blockSize of block blockTable[p / blockSize]. One block of the context's size is the dense cache.
    /// </summary>
    public static void Causal(WorkerPool pool, ReadOnlySpan<float> q, int tokenCount, int startPosition,
        ReadOnlySpan<float> keys, ReadOnlySpan<float> values, ReadOnlySpan<int> blockTable, int blockSize,
        int headCount, int kvHeadCount, int headDim, float scale, Span<float> destination)
        => Causal(pool, q, tokenCount, startPosition, MemoryMarshal.AsBytes(keys), MemoryMarshal.AsBytes(values), KvCacheDType.F32,
            blockTable, blockSize, headCount, kvHeadCount, headDim, scale, destination);

    /// <summary>
    /// As the paged overload over keys and values stored as <paramref name="dtype"/>: raw bytes of
    /// [blocks, kvHeadCount, blockSize, headDim] elements. bf16 and f16 rows are widened to float32 in registers;
    /// scores, softmax and sums are float32 as for a float32 cache.
    /// </summary>
    public static void Causal(WorkerPool pool, ReadOnlySpan<float> q, int tokenCount, int startPosition,
        ReadOnlySpan<byte> keys, ReadOnlySpan<byte> values, KvCacheDType dtype, ReadOnlySpan<int> blockTable, int blockSize,
        int headCount, int kvHeadCount, int headDim, float scale, Span<float> destination, bool batchInvariant = false)
    {
        var one = new AttentionSequence(0, tokenCount, startPosition, 0, blockTable.Length);
        Causal(pool, q, new ReadOnlySpan<AttentionSequence>(in one), keys, values, dtype, blockTable, blockSize, headCount, kvHeadCount, headDim,
            scale, destination, batchInvariant);
    }

    /// <summary>
    /// Causal grouped-query attention of one engine step: every sequence's new tokens against its own paged cache, in
    /// one pool dispatch. q and destination [T, headCount * headDim] hold the step's tokens in batch order; sequence s
    /// owns rows [TokenOffset, TokenOffset + TokenCount) at positions StartPosition.. and its block table is
    /// blockTables[TableOffset..TableOffset + TableLength). Keys and values are one store shared by the sequences, as
    /// in the paged overload. Each token's result is the single-sequence overload's, bit for bit: a row's scores and sums
    /// do not depend on the rows that share its tile, and a decode deeper than <see cref="MinPartPositions"/> is split by
    /// positions (<see cref="Parts"/>) the same way alone and in any step. A prefill token's result is also the decode's of
    /// that token, except where that decode is split; <paramref name="batchInvariant"/> splits nothing, so it holds everywhere.
    /// </summary>
    /// <remarks>
    /// One pool item per (tile of tokens, kv head), the most expensive first (the sequences by context, deepest first; a
    /// sequence's tiles last first), so the items left when a thread runs out of work are the cheapest; a decode deeper
    /// than <see cref="MinPartPositions"/> is instead up to 16 items of consecutive positions over all its kv heads, which
    /// the threads share.
    /// </remarks>
    public static void Causal(WorkerPool pool, ReadOnlySpan<float> q, ReadOnlySpan<AttentionSequence> sequences,
        ReadOnlySpan<byte> keys, ReadOnlySpan<byte> values, KvCacheDType dtype, ReadOnlySpan<int> blockTables, int blockSize,
        int headCount, int kvHeadCount, int headDim, float scale, Span<float> destination, bool batchInvariant = false)
    {
        switch (dtype)
        {
            case KvCacheDType.F32:
                Dispatch<KvF32>(pool, q, sequences, keys, values, blockTables, blockSize, headCount, kvHeadCount, headDim, scale, destination, batchInvariant);
                break;
            case KvCacheDType.BF16:
                Dispatch<KvBf16>(pool, q, sequences, keys, values, blockTables, blockSize, headCount, kvHeadCount, headDim, scale, destination, batchInvariant);
                break;
            case KvCacheDType.F16:
                Dispatch<KvF16>(pool, q, sequences, keys, values, blockTables, blockSize, headCount, kvHeadCount, headDim, scale, destination, batchInvariant);
                break;
            case KvCacheDType.Q8_0:
                if (dtype.Unsupported(headDim) is { } why)
                {
                    throw new NotSupportedException(why);
                }

                Dispatch<KvQ8>(pool, q, sequences, keys, values, blockTables, blockSize, headCount, kvHeadCount, headDim, scale, destination, batchInvariant);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown KV-cache dtype");
        }
    }

    private static void Dispatch<TK>(WorkerPool pool, ReadOnlySpan<float> q, ReadOnlySpan<AttentionSequence> sequences,
        ReadOnlySpan<byte> keys, ReadOnlySpan<byte> values, ReadOnlySpan<int> blockTables, int blockSize,
        int headCount, int kvHeadCount, int headDim, float scale, Span<float> destination, bool batchInvariant)
        where TK : IKvElement
    {
        if (Vector512.IsHardwareAccelerated && headDim >= Vector512<float>.Count)
        {
            Run<Vector512<float>, Simd512, TK>(pool, q, sequences, keys, values, blockTables, blockSize, headCount, kvHeadCount, headDim, scale, destination, batchInvariant);
        }
        else if (Vector256.IsHardwareAccelerated && headDim >= Vector256<float>.Count)
        {
            Run<Vector256<float>, Simd256, TK>(pool, q, sequences, keys, values, blockTables, blockSize, headCount, kvHeadCount, headDim, scale, destination, batchInvariant);
        }
        else if (Vector128.IsHardwareAccelerated && headDim >= Vector128<float>.Count)
        {
            Run<Vector128<float>, Simd128, TK>(pool, q, sequences, keys, values, blockTables, blockSize, headCount, kvHeadCount, headDim, scale, destination, batchInvariant);
        }
        else
        {
            Run<float, SimdScalar, TK>(pool, q, sequences, keys, values, blockTables, blockSize, headCount, kvHeadCount, headDim, scale, destination, batchInvariant);
        }
    }

    internal static void Run<TV, TS>(WorkerPool pool, ReadOnlySpan<float> q, int tokenCount, int startPosition,
        ReadOnlySpan<float> keys, ReadOnlySpan<float> values, ReadOnlySpan<int> blockTable, int blockSize,
        int headCount, int kvHeadCount, int headDim, float scale, Span<float> destination)
        where TV : unmanaged where TS : ISimd<TV>
        => Run<TV, TS, KvF32>(pool, q, tokenCount, startPosition, MemoryMarshal.AsBytes(keys), MemoryMarshal.AsBytes(values),
            blockTable, blockSize, headCount, kvHeadCount, headDim, scale, destination);

    internal static void Run<TV, TS, TK>(WorkerPool pool, ReadOnlySpan<float> q, int tokenCount, int startPosition,
        ReadOnlySpan<byte> keys, ReadOnlySpan<byte> values, ReadOnlySpan<int> blockTable, int blockSize,
        int headCount, int kvHeadCount, int headDim, float scale, Span<float> destination, bool batchInvariant = false)
        where TV : unmanaged where TS : ISimd<TV> where TK : IKvElement
    {
        var one = new AttentionSequence(0, tokenCount, startPosition, 0, blockTable.Length);
        Run<TV, TS, TK>(pool, q, new ReadOnlySpan<AttentionSequence>(in one), keys, values, blockTable, blockSize, headCount, kvHeadCount, headDim,
            scale, destination, batchInvariant);
    }

    internal static void Run<TV, TS, TK>(WorkerPool pool, ReadOnlySpan<float> q, ReadOnlySpan<AttentionSequence> sequences,
        ReadOnlySpan<byte> keys, ReadOnlySpan<byte> values, ReadOnlySpan<int> blockTables, int blockSize,
        int headCount, int kvHeadCount, int headDim, float scale, Span<float> destination, bool batchInvariant = false)
        where TV : unmanaged where TS : ISimd<TV> where TK : IKvElement
    {
        ArgumentNullException.ThrowIfNull(pool);
        if (kvHeadCount <= 0 || headCount % kvHeadCount != 0)
        {
            throw new ArgumentException($"headCount {headCount} is not a multiple of kvHeadCount {kvHeadCount}.");
        }

        if (blockSize < 1)
        {
            throw new ArgumentException($"blockSize must be at least 1, got {blockSize}.");
        }

        long rowBytes = TK.Bytes(kvHeadCount * headDim);
        long keyRows = keys.Length / Math.Max(1, rowBytes), valueRows = values.Length / Math.Max(1, rowBytes);
        long qWidth = (long)headCount * headDim;
        int group = headCount / kvHeadCount, tileTokens = TileTokens(group);
        int maxContext = 0, maxTokens = 0, segmentCount = 0;
        double cost = 0;
        foreach (AttentionSequence s in sequences)
        {
            Validate(s, q.Length, destination.Length, qWidth, blockTables, blockSize, keyRows, valueRows);
            maxContext = Math.Max(maxContext, s.StartPosition + s.TokenCount);
            maxTokens = Math.Max(maxTokens, s.TokenCount);
            segmentCount += s.TokenCount > 0 ? 1 : 0;
            cost += Cost(s);
        }

        // A one-token sequence's item covers all its kv heads when that item is a small enough share of the step for the
        // threads to stay balanced (see WholeBlockShare): it then reads each block of its cache whole (every head's run,
        // adjacent in the head-major block) instead of one head's run per item, a longer sequential read.
        double wholeBlockCost = cost / (WholeBlockShare * pool.ThreadCount);
        int HeadsPerItem(in AttentionSequence s) => s.TokenCount == 1 && Cost(s) <= wholeBlockCost ? kvHeadCount : 1;
        // A deep one-token sequence is split by positions instead (see Parts), unless the caller needs batch invariance.
        int PartsOf(in AttentionSequence s, out int partPositions)
        {
            partPositions = 0;
            return s.TokenCount == 1 && !batchInvariant ? Parts(s.StartPosition + 1, blockSize, out partPositions) : 1;
        }

        int items = 0, decodeHeads = 1;
        long partialFloats = 0;
        int partFloats = PartFloats(headCount, headDim);
        foreach (AttentionSequence s in sequences)
        {
            int parts = PartsOf(s, out _);
            int heads = parts > 1 ? kvHeadCount : HeadsPerItem(s);
            decodeHeads = Math.Max(decodeHeads, heads);
            items += parts > 1 ? parts : Tiles(s.TokenCount, tileTokens) * (kvHeadCount / heads);
            partialFloats += parts > 1 ? (long)parts * partFloats : 0;
        }

        if (items == 0 || headDim == 0)
        {
            return;
        }

        // The segments in cost order (deepest context first; insertion sort, the steps hold few sequences), each with
        // the index of its first item; then a count of unfinished parts per segment, then the split segments' partial results.
        long segmentBytes = ((long)segmentCount * sizeof(Segment) + 63) & ~63L, pendingBytes = ((long)segmentCount * sizeof(int) + 63) & ~63L;
        byte* shared = (byte*)pool.SharedScratch(segmentBytes + pendingBytes + partialFloats * sizeof(float));
        var segments = (Segment*)shared;
        int* pending = (int*)(shared + segmentBytes);
        float* partials = (float*)(shared + segmentBytes + pendingBytes);
        int n = 0;
        foreach (AttentionSequence s in sequences)
        {
            if (s.TokenCount == 0)
            {
                continue;
            }

            int end = s.StartPosition + s.TokenCount, at = n++;
            for (; at > 0 && segments[at - 1].StartPosition + segments[at - 1].TokenCount < end; at--)
            {
                segments[at] = segments[at - 1];
            }

            int parts = PartsOf(s, out int partPositions);
            segments[at] = new Segment
            {
                TokenOffset = s.TokenOffset, TokenCount = s.TokenCount, StartPosition = s.StartPosition, TableOffset = s.TableOffset,
                Heads = parts > 1 ? kvHeadCount : HeadsPerItem(s), Parts = parts, PartPositions = partPositions,
            };
        }

        long partial = 0;
        for (int i = 0, first = 0; i < n; i++)
        {
            ref Segment g = ref segments[i];
            g.FirstItem = first;
            first += g.Parts > 1 ? g.Parts : Tiles(g.TokenCount, tileTokens) * (kvHeadCount / g.Heads);
            g.PartialOffset = partial;
            partial += g.Parts > 1 ? (long)g.Parts * partFloats : 0;
            pending[i] = g.Parts;
        }

        long itemRows = Math.Max((long)Math.Min(tileTokens, maxTokens) * group, (long)decodeHeads * group);
        pool.EnsureWorkerScratch((itemRows * ScoreStride(maxContext) + (long)Math.Min(blockSize, MaxWidenedBlock) * headDim) * sizeof(float));
        fixed (float* pq = q, pd = destination)
        fixed (byte* pk = keys, pv = values)
        fixed (int* pt = blockTables)
        {
            var job = new CausalJob<TV, TS, TK>
            {
                Q = pq,
                Keys = pk,
                Values = pv,
                Destination = pd,
                Segments = segments,
                SegmentCount = n,
                Tables = pt,
                BlockSize = blockSize,
                TileTokens = tileTokens,
                HeadCount = headCount,
                KvHeadCount = kvHeadCount,
                HeadDim = headDim,
                Scale = scale,
                Scratch = pool.WorkerScratchTable,
                Pending = pending,
                Partials = partials,
                PartFloats = partFloats,
            };
            pool.Run(ref job, items);
        }
    }

    /// <summary>
    /// Query rows (tokens × the query heads of one kv head) that share a pool item: each block of keys and values is read
    /// once for all of them, so a prefill of T tokens reads the cache T / tile times instead of T times. 64 (32 tokens of
    /// Qwen3-1.7B) rather than 16: Zen 5, Q8_0, 2 threads, prefill attention 1.80–1.89 → 1.59–1.60 s at 2,048 tokens,
    /// 7.5–7.6 → 6.3–6.6 s at 4,096, 123–125 → 102–105 ms at 512; the AVX2 path 3.14–3.24 → 2.84–2.96 s at 2,048. The
    /// scores scratch grows to [64, context] floats per worker (1 MiB at 4,096 positions).
    /// </summary>
    private const int TileRows = 64;

    /// <summary>Tokens of a pool item: as many as give <see cref="TileRows"/> query rows (one with 64 or more query heads per kv head).</summary>
    internal static int TileTokens(int group) => Math.Max(1, TileRows / group);

    private static int Tiles(int tokenCount, int tileTokens) => (tokenCount + tileTokens - 1) / tileTokens;

    /// <summary>Floats between two rows' scores for an item over <paramref name="positions"/>: rounded up to 64 bytes.</summary>
    private static int ScoreStride(int positions) => (positions + 15) & ~15;

    /// <summary>
    /// A one-token sequence is one pool item over all its kv heads, rather than one item per kv head, when its cost is at
    /// most 1 / (WholeBlockShare × threads) of the step's: the item then reads each block of keys (then values) whole,
    /// 32 KiB for Qwen3-1.7B's 16-position f16 blocks, where a head's item reads its 4 KiB run. Zen 5, 2 threads, from
    /// DRAM: a plain read of 16 sequences' blocks at 500 positions 28 GB/s by head runs, 33–35 whole; the kernel 1.1–1.2×
    /// at 16 decodes of 500–2,000 positions and 4 of 2,000 (<c>Qwen3Sharp.Bench quick 2 kvstep</c>). A lone decode, two,
    /// or one deep sequence among short ones keeps the per-head items, which the threads share, when it is no deeper than
    /// <see cref="MinPartPositions"/>; deeper, a decode is split by positions (<see cref="Parts"/>).
    /// </summary>
    private const int WholeBlockShare = 2;

    /// <summary>
    /// A decode (a one-token sequence) deeper than <see cref="MinPartPositions"/> is split by positions, into at most
    /// <see cref="MaxParts"/> parts of whole blocks: each part is one pool item over all kv heads (each block of keys, then
    /// of values, read whole as one sequential run), keeps its rows' unnormalised sums with their maxima and sums of
    /// weights, and the last part to finish merges them in part order (flash-decoding's split-K). Before, a lone decode
    /// was one item per kv head, each reading its head's 4 KiB run of every block (Qwen3-1.7B, f16, 16-position blocks):
    /// Zen 5, 2 threads, from DRAM (<c>Qwen3Sharp.Bench quick 2 kvstep</c>, interleaved), a lone decode at 4,000 positions
    /// 703–745 → 380–389 µs per layer, two at 1,000 276–292 → 168–197; steps of 16 decodes at 500–2,000 positions, whose
    /// whole-block items already read sequentially, 0.94–1.00× (parts of 128 positions: 0.92–0.94× at 500). The parts
    /// depend on the context and block size alone, not on the step's other sequences nor on the thread count, so a
    /// decode's result is the same bits alone, in any batch and on any pool; it is not a prefill tile's bits for that
    /// token (the sums are merged in another order), which batch-invariant callers keep by not splitting.
    /// </summary>
    internal static int Parts(int context, int blockSize, out int partPositions)
    {
        long positions = Math.Max(MinPartPositions, (context + MaxParts - 1) / MaxParts);
        positions = (positions + blockSize - 1) / blockSize * blockSize;
        partPositions = (int)Math.Min(positions, int.MaxValue);
        return (int)((context + positions - 1) / positions);
    }

    /// <summary>The fewest positions in a part: a context up to this deep is one part (not split).</summary>
    internal const int MinPartPositions = 256;

    /// <summary>The most parts a decode splits into.</summary>
    internal const int MaxParts = 16;

    /// <summary>Floats of one part's partial results (sums, maxima, weight sums of every query head), rounded to 64 bytes.</summary>
    private static int PartFloats(int headCount, int headDim) => (headCount * (headDim + 2) + 15) & ~15;

    /// <summary>A sequence's attention work, in (query token, position) pairs: what the threads' items should share evenly.</summary>
    private static double Cost(in AttentionSequence s) => s.TokenCount * (s.StartPosition + (s.TokenCount + 1) / 2.0);

    private static void Validate(in AttentionSequence s, int qLength, int destinationLength, long qWidth, ReadOnlySpan<int> blockTables,
        int blockSize, long keyRows, long valueRows)
    {
        int context = s.StartPosition + s.TokenCount;
        if (s.TokenOffset < 0 || s.TokenCount < 0 || s.StartPosition < 0 || s.TableOffset < 0 || s.TableLength < 0
            || (long)s.TableOffset + s.TableLength > blockTables.Length)
        {
            throw new ArgumentException($"Sequence at token {s.TokenOffset} ({s.TokenCount} tokens at {s.StartPosition}, table " +
                $"{s.TableOffset}+{s.TableLength} of {blockTables.Length}) is malformed.");
        }

        if ((long)s.TableLength * blockSize < context)
        {
            throw new ArgumentException($"A block table of {s.TableLength} blocks of {blockSize} does not cover {context} positions.");
        }

        ReadOnlySpan<int> table = blockTables.Slice(s.TableOffset, s.TableLength);
        int lastBlock = (context - 1) / blockSize;
        for (int b = 0; context > 0 && b <= lastBlock; b++)
        {
            long end = ((long)table[b] + 1) * blockSize;                 // head-major: the last head's run ends with the block
            if (table[b] < 0 || end > keyRows || end > valueRows)
            {
                throw new ArgumentException($"Block {table[b]} of the table lies outside keys/values of {keyRows} positions.");
            }
        }

        long qEnd = (s.TokenOffset + (long)s.TokenCount) * qWidth;
        if (qLength < qEnd || destinationLength < qEnd)
        {
            throw new ArgumentException(
                $"Attention over {s.TokenCount} tokens at row {s.TokenOffset} needs q and destination of {qEnd} elements; " +
                $"got q {qLength}, destination {destinationLength}.");
        }
    }

    /// <summary>
    /// A sequence of a dispatch, in cost order: its items are FirstItem.., tile-major (tiles of <see cref="TileTokens"/>
    /// tokens counted from its last token, the deepest first; the first tokens' tile may be short), kv heads within,
    /// <see cref="Heads"/> adjacent kv heads per item; or, a split decode, one item per part (see <see cref="Parts"/>).
    /// </summary>
    private struct Segment
    {
        public int FirstItem, TokenOffset, TokenCount, StartPosition, TableOffset, Heads;
        public int Parts, PartPositions;   // a split decode: Parts items of PartPositions positions (the last shorter), all kv heads each
        public long PartialOffset;         // its parts' partial results in CausalJob.Partials, PartFloats each
    }

    private struct CausalJob<TV, TS, TK> : IPoolJob where TV : unmanaged where TS : ISimd<TV> where TK : IKvElement
    {
        public float* Q;            // [T, headCount * headDim]
        public byte* Keys;          // [blocks, kvHeadCount, BlockSize, headDim] elements of TK (head-major blocks)
        public byte* Values;        // [blocks, kvHeadCount, BlockSize, headDim] elements of TK
        public float* Destination;  // [T, headCount * headDim]
        public Segment* Segments;   // [SegmentCount], deepest first
        public int* Tables;         // every sequence's blocks: position p is row table[p / BlockSize] * BlockSize + p % BlockSize
        public int SegmentCount, HeadCount, KvHeadCount, HeadDim, BlockSize, TileTokens;
        public float Scale;
        public void** Scratch;      // per worker: an item's rows' scores [rows, ScoreStride(its positions)], then a block of keys or values widened to float32 [BlockSize, HeadDim]
        public int* Pending;        // [SegmentCount]: a split segment's parts not yet done; the part that brings it to 0 merges them
        public float* Partials;     // per part of a split segment: its rows' unnormalised sums [HeadCount, HeadDim], maxima [HeadCount], sums of weights [HeadCount]
        public int PartFloats;

        public readonly void Execute(int index, int worker)
        {
            int lo = 0, hi = SegmentCount - 1;
            while (lo < hi)
            {
                int mid = (lo + hi + 1) >> 1;
                if (Segments[mid].FirstItem <= index)
                {
                    lo = mid;
                }
                else
                {
                    hi = mid - 1;
                }
            }

            ref readonly Segment s = ref Segments[lo];
            int local = index - s.FirstItem;
            if (s.Parts > 1)
            {
                int from = local * s.PartPositions, to = Math.Min(from + s.PartPositions, s.StartPosition + 1);
                Tile(s.TokenOffset, 1, s.StartPosition, 0, KvHeadCount, Tables + s.TableOffset, (float*)Scratch[worker], from, to,
                    Partials + s.PartialOffset + (long)local * PartFloats);
                if (Interlocked.Decrement(ref Pending[lo]) == 0)   // a full fence: every other part's results are visible
                {
                    Merge(s);
                }

                return;
            }

            int perTile = KvHeadCount / s.Heads;
            int end = s.TokenCount - local / perTile * TileTokens, first = Math.Max(0, end - TileTokens);
            Tile(s.TokenOffset + first, end - first, s.StartPosition + first, local % perTile * s.Heads, s.Heads, Tables + s.TableOffset,
                (float*)Scratch[worker], 0, s.StartPosition + end, null);
        }

        /// <summary>
        /// A split decode's output from its parts' partial results, in part order whichever thread runs it: per row, with M
        /// the largest part maximum m_c, out = Σ_c e^(m_c − M) · o_c / Σ_c e^(m_c − M) · l_c (o_c the part's sum of
        /// e^(s − m_c) · v, l_c its sum of e^(s − m_c)).
        /// </summary>
        private readonly void Merge(in Segment s)
        {
            int rows = HeadCount, lanes = TS.Count, main = HeadDim - HeadDim % lanes;
            float* parts = Partials + s.PartialOffset;
            float* factors = stackalloc float[MaxParts];
            for (int r = 0; r < rows; r++)
            {
                float top = float.NegativeInfinity;
                for (int c = 0; c < s.Parts; c++)
                {
                    top = MathF.Max(top, parts[(long)c * PartFloats + rows * HeadDim + r]);
                }

                float total = 0;
                for (int c = 0; c < s.Parts; c++)
                {
                    float* part = parts + (long)c * PartFloats;
                    factors[c] = MathF.Exp(part[rows * HeadDim + r] - top);
                    total += factors[c] * part[rows * HeadDim + rows + r];
                }

                float inv = 1f / total;
                for (int c = 0; c < s.Parts; c++)
                {
                    factors[c] *= inv;
                }

                float* d = Destination + ((long)s.TokenOffset * HeadCount + r) * HeadDim;
                float* o = parts + (long)r * HeadDim;
                int i = 0;
                for (; i < main; i += lanes)
                {
                    TV a = TS.Zero;
                    for (int c = 0; c < s.Parts; c++)
                    {
                        a = TS.MultiplyAdd(TS.Broadcast(factors[c]), TS.Load(o + (long)c * PartFloats + i), a);
                    }

                    TS.Store(a, d + i);
                }

                for (; i < HeadDim; i++)
                {
                    float a = 0;
                    for (int c = 0; c < s.Parts; c++)
                    {
                        a += factors[c] * o[(long)c * PartFloats + i];
                    }

                    d[i] = a;
                }
            }
        }

        /// <summary>
        /// Tokens t0..t0+tokens-1 (at positions position0..) against kv heads <paramref name="kvh0"/>.. (<paramref name="heads"/>
        /// of them, adjacent): their rows, head hh's row r being token r / group's query head (kvh0 + hh) * group + r % group,
        /// over the positions each sees. Each block of keys (then of values) is read from memory once for all the rows
        /// and stays in L1 while they pass over it, four rows at a time where the register file holds a 4 × 4 tile (two
        /// elsewhere); with several heads the block's runs are read one after the other, a sequential read of the block.
        /// Every score and every sum is computed as for the row alone, in the same order, whatever rows share its tile: a
        /// token's result does not depend on its neighbours (batch invariance, and the same bits as an unsplit decode of that
        /// token). Positions [<paramref name="from"/>, <paramref name="to"/>) only (from a block's first position): all the
        /// rows see with <paramref name="partial"/> null, one part of a split decode otherwise, whose unnormalised sums,
        /// maxima and sums of weights go to <paramref name="partial"/> instead of the softmax and the destination.
        /// </summary>
        private readonly void Tile(int t0, int tokens, int position0, int kvh0, int heads, int* table, float* scores, int from, int to,
            float* partial)
        {
            int group = HeadCount / KvHeadCount, perHead = tokens * group, rows = perHead * heads;
            int width = TS.WideTile ? 4 : 2;
            long headBytes = TK.Bytes(HeadDim), rowBytes = KvHeadCount * headBytes;   // a position's bytes: a block is BlockSize * rowBytes
            long runBytes = BlockSize * headBytes;                         // a head's run in a block; its positions headBytes apart
            byte* kBase = Keys + kvh0 * runBytes;                          // head kvh0's run in block 0
            byte* vBase = Values + kvh0 * runBytes;

            // Per row: its query, its output, its scores (stride apart: this item's positions, not the step's deepest, so the
            // rows of a short item lie together) and the positions it sees.
            int stride = ScoreStride(to - from);
            float** q = stackalloc float*[rows];
            float** d = stackalloc float*[rows];
            float** w = stackalloc float*[rows];
            int* visible = stackalloc int[rows];
            for (int r = 0; r < rows; r++)
            {
                int hh = r / perHead, rr = r % perHead;
                long head = ((long)t0 + rr / group) * HeadCount + (kvh0 + hh) * group + rr % group;
                q[r] = Q + head * HeadDim;
                d[r] = partial == null ? Destination + head * HeadDim : partial + (long)r * HeadDim;
                w[r] = scores + (long)r * stride - from;                  // w[r][p] for p in [from, to)
                visible[r] = position0 + rr / group + 1;
            }

            // With more rows than one register tile, each block's keys (then values) are widened to float32 once, into
            // the scratch after the scores, for all the tile's passes over them (the same values: same bits).
            bool widen = typeof(TK) != typeof(KvF32) && perHead > width && BlockSize <= MaxWidenedBlock;
            byte* widened = (byte*)(scores + (long)rows * stride);
            long widenedBytes = HeadDim * sizeof(float);
            for (int p0 = from, b = from / BlockSize; p0 < to; p0 += BlockSize, b++)
            {
                byte* k = kBase + (long)table[b] * BlockSize * rowBytes;
                byte* nextBlock = p0 + BlockSize < to ? kBase + (long)table[b + 1] * BlockSize * rowBytes : null;
                int nextCount = Math.Min(BlockSize, to - p0 - BlockSize);
                if (nextBlock != null && heads == 1)
                {
                    PrefetchRuns(nextBlock, runBytes, 1, headBytes, nextCount);
                }

                int first = Math.Max(0, p0 - position0) * group;               // the first row of a head that sees this block
                int count = Math.Min(BlockSize, to - p0);
                for (int hh = 0, r0 = 0; hh < heads; hh++, r0 += perHead, k += runBytes)
                {
                    if (heads > 1)
                    {
                        PrefetchAhead(k, hh, heads, runBytes, headBytes, count, nextBlock, nextCount);
                    }

                    if (widen)
                    {
                        Widen<TV, TS, TK>(k, headBytes, count, HeadDim, (float*)widened);
                        ScoreBlock<KvF32>(widened, widenedBytes, p0, first, perHead, width, q + r0, w + r0, stride, visible + r0);
                    }
                    else
                    {
                        ScoreBlock<TK>(k, headBytes, p0, first, perHead, width, q + r0, w + r0, stride, visible + r0);
                    }
                }
            }

            for (int r = 0; r < rows; r++)
            {
                if (partial == null)
                {
                    Softmax.InPlace<TV, TS>(w[r], visible[r]);
                }
                else                                                        // a part of a split decode: its maximum and sum, for the merge
                {
                    partial[rows * HeadDim + rows + r] = Softmax.Exponentiate<TV, TS>(w[r] + from, Math.Min(visible[r], to) - from, out float max);
                    partial[rows * HeadDim + r] = max;
                }
            }

            int lanes = TS.Count;
            int tiled = HeadDim - HeadDim % lanes;
            tiled -= tiled % (4 * lanes);
            for (int r = 0; r < rows; r++)
            {
                new Span<float>(d[r], tiled).Clear();
            }

            for (int p0 = from, b = from / BlockSize; p0 < to; p0 += BlockSize, b++)
            {
                byte* v = vBase + (long)table[b] * BlockSize * rowBytes;
                byte* nextBlock = p0 + BlockSize < to ? vBase + (long)table[b + 1] * BlockSize * rowBytes : null;
                int nextCount = Math.Min(BlockSize, to - p0 - BlockSize);
                if (nextBlock != null && heads == 1)
                {
                    PrefetchRuns(nextBlock, runBytes, 1, headBytes, nextCount);
                }

                int first = Math.Max(0, p0 - position0) * group;
                int count = Math.Min(BlockSize, to - p0);
                for (int hh = 0, r0 = 0; hh < heads; hh++, r0 += perHead, v += runBytes)
                {
                    if (heads > 1)
                    {
                        PrefetchAhead(v, hh, heads, runBytes, headBytes, count, nextBlock, nextCount);
                    }

                    if (widen)
                    {
                        Widen<TV, TS, TK>(v, headBytes, count, HeadDim, (float*)widened);
                        SumBlock<KvF32>(widened, widenedBytes, p0, first, perHead, width, tiled, w + r0, stride, d + r0, visible + r0);
                    }
                    else
                    {
                        SumBlock<TK>(v, headBytes, p0, first, perHead, width, tiled, w + r0, stride, d + r0, visible + r0);
                    }
                }
            }

            if (tiled < HeadDim)
            {
                for (int r = 0; r < rows; r++)
                {
                    WeightedSumFrom<TV, TS, TK>(w[r] + from, Math.Min(visible[r], to) - from, vBase + r / perHead * runBytes, BlockSize * rowBytes,
                        headBytes, table + from / BlockSize, BlockSize, HeadDim, d[r], tiled);
                }
            }
        }

        /// <summary>Rows first.. of the tile: their scores against the block of keys at position p0 (rows kRowBytes apart, elements TE).</summary>
        private readonly void ScoreBlock<TE>(byte* k, long kRowBytes, int p0, int first, int rows, int width, float** q, float** w, int stride, int* visible)
            where TE : IKvElement
        {
            for (int r = first; r < rows;)
            {
                int n = Math.Min(width, rows - r) >= 4 ? 4 : Math.Min(2, rows - r);
                int shared = Math.Min(BlockSize, visible[r] - p0) & ~3;    // the 4-key groups every row of the register tile sees
                if (n == 4)
                {
                    ScoresTile4<TV, TS, TE>(q[r], q[r + 1], q[r + 2], q[r + 3], k, kRowBytes, shared, HeadDim, Scale, w[r] + p0, stride);
                }
                else if (n == 2)
                {
                    Scores2<TV, TS, TE>(q[r], q[r + 1], k, kRowBytes, shared, HeadDim, Scale, w[r] + p0, w[r + 1] + p0);
                }
                else
                {
                    shared = 0;
                }

                for (int j = r; j < r + n; j++)
                {
                    int count = Math.Min(BlockSize, visible[j] - p0);
                    if (count > shared)
                    {
                        ScoresFrom<TV, TS, TE>(q[j], k, kRowBytes, shared, count, HeadDim, Scale, w[j] + p0);
                    }
                }

                r += n;
            }
        }

        /// <summary>Rows first.. of the tile: the block of values at position p0, weighted by their scores, added to their outputs [0, tiled).</summary>
        private readonly void SumBlock<TE>(byte* v, long vRowBytes, int p0, int first, int rows, int width, int tiled, float** w, int stride, float** d, int* visible)
            where TE : IKvElement
        {
            for (int r = first; r < rows;)
            {
                int n = Math.Min(width, rows - r) >= 4 ? 4 : Math.Min(2, rows - r);
                int shared = Math.Min(BlockSize, visible[r] - p0);        // the positions every row of the register tile sees
                if (n == 4)
                {
                    WeightedSumTile4<TV, TS, TE>(w[r] + p0, stride, shared, v, vRowBytes, tiled, d[r], d[r + 1], d[r + 2], d[r + 3]);
                }
                else if (n == 2)
                {
                    WeightedSumTile2<TV, TS, TE>(w[r] + p0, w[r + 1] + p0, shared, v, vRowBytes, tiled, d[r], d[r + 1]);
                }
                else
                {
                    shared = 0;
                }

                for (int j = r; j < r + n; j++)
                {
                    int count = Math.Min(BlockSize, visible[j] - p0);
                    if (count > shared)
                    {
                        WeightedSumRow<TV, TS, TE>(w[j] + p0, shared, count, v, vRowBytes, tiled, d[j]);
                    }
                }

                r += n;
            }
        }
    }

    /// <summary>Blocks of at most this many positions are widened to float32 once per tile (a dense cache, one block, is not).</summary>
    private const int MaxWidenedBlock = 64;

    /// <summary>count rows of a head's <paramref name="n"/> elements (rows <paramref name="rowBytes"/> apart) to float32 rows of n.</summary>
    private static void Widen<TV, TS, TK>(byte* rows, long rowBytes, int count, int n, float* destination)
        where TV : unmanaged where TS : ISimd<TV> where TK : IKvElement
    {
        int lanes = TS.Count;
        int main = n - n % lanes;
        for (int p = 0; p < count; p++, rows += rowBytes, destination += n)
        {
            int i = 0;
            for (; i < main; i += lanes)
            {
                TS.Store(TK.Load<TV, TS>(rows, i), destination + i);
            }

            for (; i < n; i++)
            {
                destination[i] = TK.LoadScalar(rows, i);
            }
        }
    }

    /// <summary>
    /// An item over several heads reads each block whole, its heads' runs one after the other (one sequential stream per
    /// block, the next block anywhere): before head <paramref name="hh"/>'s run (at <paramref name="run"/>) it prefetches
    /// the run two ahead in that order, in this block or the next (<paramref name="nextBlock"/>, null at the item's end), so
    /// the jump to the next block is covered while the lines stay within ~8 KiB of use. Zen 5, 2 threads, f16, from DRAM
    /// (<c>Qwen3Sharp.Bench quick 2 kvstep</c>, interleaved): a lone decode at 4,000 positions 523–583 → 363–379 µs per
    /// layer against the whole next block prefetched at once (32 KiB into a 48 KiB L1 while the current block is read),
    /// 16 decodes at 1,000 2,773–2,869 → 1,997–2,291 µs; one run ahead, four, or the next block's same run are within
    /// noise of it on the lone decode and slower on the 16; no software prefetch, or prefetches into L2, slower.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchAhead(byte* run, int hh, int heads, long runBytes, long headBytes, int count, byte* nextBlock, int nextCount)
    {
        const int Ahead = 2;
        if (hh + Ahead < heads)
        {
            PrefetchRuns(run + Ahead * runBytes, runBytes, 1, headBytes, count);
        }
        else if (nextBlock != null)
        {
            PrefetchRuns(nextBlock + (hh + Ahead - heads) * runBytes, runBytes, 1, headBytes, nextCount);
        }
    }

    /// <summary>
    /// Prefetches the first <paramref name="count"/> positions (<paramref name="headBytes"/> each, contiguous) of each of
    /// <paramref name="heads"/> adjacent head runs, <paramref name="runBytes"/> apart, of the next block: the next block of
    /// a paged cache lies anywhere, where the hardware prefetchers do not follow (a Zen 3 under load, interleaved: 5-10%
    /// less CPU time for decode attention at 2,000 and 8,000 positions).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchRuns(byte* run, long runBytes, int heads, long headBytes, int count)
    {
        long bytes = count * headBytes;
        for (int h = 0; h < heads; h++, run += runBytes)
        {
            for (long offset = 0; offset < bytes; offset += 64)
            {
                SimdMath.Prefetch(run + offset);
            }
        }
    }

    /// <summary>
    /// Four query rows' scores against key rows [0, <paramref name="count"/>) from <paramref name="k"/> (a multiple of 4;
    /// rows <paramref name="rowBytes"/> apart): s[r * stride + p] = (q_r · row(p)) · scale, each (row, key) summed in one
    /// accumulator and reduced as <see cref="ScoresFrom"/> reduces it, so every score has the bits of the row alone.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ScoresTile4<TV, TS, TK>(float* q0, float* q1, float* q2, float* q3, byte* k, long rowBytes, int count, int n, float scale,
        float* s, int stride)
        where TV : unmanaged where TS : ISimd<TV> where TK : IKvElement
    {
        int lanes = TS.Count;
        int main = n - n % lanes;
        for (int p = 0; p < count; p += 4)
        {
            byte* k0 = k + p * rowBytes;
            byte* k1 = k0 + rowBytes;
            byte* k2 = k1 + rowBytes;
            byte* k3 = k2 + rowBytes;
            TV a0 = TS.Zero, a1 = TS.Zero, a2 = TS.Zero, a3 = TS.Zero;
            TV b0 = TS.Zero, b1 = TS.Zero, b2 = TS.Zero, b3 = TS.Zero;
            TV c0 = TS.Zero, c1 = TS.Zero, c2 = TS.Zero, c3 = TS.Zero;
            TV d0 = TS.Zero, d1 = TS.Zero, d2 = TS.Zero, d3 = TS.Zero;
            for (int i = 0; i < main; i += lanes)
            {
                TV x0 = TK.Load<TV, TS>(k0, i), x1 = TK.Load<TV, TS>(k1, i), x2 = TK.Load<TV, TS>(k2, i), x3 = TK.Load<TV, TS>(k3, i);
                TV y = TS.Load(q0 + i);
                a0 = TS.MultiplyAdd(y, x0, a0);
                a1 = TS.MultiplyAdd(y, x1, a1);
                a2 = TS.MultiplyAdd(y, x2, a2);
                a3 = TS.MultiplyAdd(y, x3, a3);
                y = TS.Load(q1 + i);
                b0 = TS.MultiplyAdd(y, x0, b0);
                b1 = TS.MultiplyAdd(y, x1, b1);
                b2 = TS.MultiplyAdd(y, x2, b2);
                b3 = TS.MultiplyAdd(y, x3, b3);
                y = TS.Load(q2 + i);
                c0 = TS.MultiplyAdd(y, x0, c0);
                c1 = TS.MultiplyAdd(y, x1, c1);
                c2 = TS.MultiplyAdd(y, x2, c2);
                c3 = TS.MultiplyAdd(y, x3, c3);
                y = TS.Load(q3 + i);
                d0 = TS.MultiplyAdd(y, x0, d0);
                d1 = TS.MultiplyAdd(y, x1, d1);
                d2 = TS.MultiplyAdd(y, x2, d2);
                d3 = TS.MultiplyAdd(y, x3, d3);
            }

            if (typeof(TV) == typeof(Vector512<float>) && Avx512F.IsSupported && main == n)
            {
                Sum16Scaled((Vector512<float>)(object)a0, (Vector512<float>)(object)a1, (Vector512<float>)(object)a2, (Vector512<float>)(object)a3,
                    (Vector512<float>)(object)b0, (Vector512<float>)(object)b1, (Vector512<float>)(object)b2, (Vector512<float>)(object)b3,
                    (Vector512<float>)(object)c0, (Vector512<float>)(object)c1, (Vector512<float>)(object)c2, (Vector512<float>)(object)c3,
                    (Vector512<float>)(object)d0, (Vector512<float>)(object)d1, (Vector512<float>)(object)d2, (Vector512<float>)(object)d3,
                    scale, s + p, stride);
                continue;
            }

            TS.Sum4(a0, a1, a2, a3, s + p);
            TS.Sum4(b0, b1, b2, b3, s + stride + p);
            TS.Sum4(c0, c1, c2, c3, s + 2L * stride + p);
            TS.Sum4(d0, d1, d2, d3, s + 3L * stride + p);
            ScaleWithTail<TK>(q0, k + p * rowBytes, rowBytes, main, n, scale, s + p);
            ScaleWithTail<TK>(q1, k + p * rowBytes, rowBytes, main, n, scale, s + stride + p);
            ScaleWithTail<TK>(q2, k + p * rowBytes, rowBytes, main, n, scale, s + 2L * stride + p);
            ScaleWithTail<TK>(q3, k + p * rowBytes, rowBytes, main, n, scale, s + 3L * stride + p);
        }
    }

    /// <summary>
    /// Two query rows' scores against key rows [0, <paramref name="count"/>) (a multiple of 4), as <see cref="ScoresTile4"/>
    /// for two rows: sa/sb[p] = (qa/qb · row(p)) · scale.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Scores2<TV, TS, TK>(float* qa, float* qb, byte* k, long rowBytes, int count, int n, float scale, float* sa, float* sb)
        where TV : unmanaged where TS : ISimd<TV> where TK : IKvElement
    {
        int lanes = TS.Count;
        int main = n - n % lanes;
        for (int p = 0; p < count; p += 4)
        {
            byte* k0 = k + p * rowBytes;
            byte* k1 = k0 + rowBytes;
            byte* k2 = k1 + rowBytes;
            byte* k3 = k2 + rowBytes;
            TV a0 = TS.Zero, a1 = TS.Zero, a2 = TS.Zero, a3 = TS.Zero;
            TV b0 = TS.Zero, b1 = TS.Zero, b2 = TS.Zero, b3 = TS.Zero;
            for (int i = 0; i < main; i += lanes)
            {
                TV x = TS.Load(qa + i), y = TS.Load(qb + i);
                TV v = TK.Load<TV, TS>(k0, i);
                a0 = TS.MultiplyAdd(x, v, a0);
                b0 = TS.MultiplyAdd(y, v, b0);
                v = TK.Load<TV, TS>(k1, i);
                a1 = TS.MultiplyAdd(x, v, a1);
                b1 = TS.MultiplyAdd(y, v, b1);
                v = TK.Load<TV, TS>(k2, i);
                a2 = TS.MultiplyAdd(x, v, a2);
                b2 = TS.MultiplyAdd(y, v, b2);
                v = TK.Load<TV, TS>(k3, i);
                a3 = TS.MultiplyAdd(x, v, a3);
                b3 = TS.MultiplyAdd(y, v, b3);
            }

            TS.Sum4(a0, a1, a2, a3, sa + p);
            TS.Sum4(b0, b1, b2, b3, sb + p);
            ScaleWithTail<TK>(qa, k0, rowBytes, main, n, scale, sa + p);
            ScaleWithTail<TK>(qb, k0, rowBytes, main, n, scale, sb + p);
        }
    }

    /// <summary>
    /// One query row's scores against key rows [<paramref name="from"/>, <paramref name="count"/>) (from a multiple of 4):
    /// the whole 4-key groups as <see cref="Scores2"/> computes them, then one dot per key.
    /// </summary>
    private static void ScoresFrom<TV, TS, TK>(float* q, byte* k, long rowBytes, int from, int count, int n, float scale, float* s)
        where TV : unmanaged where TS : ISimd<TV> where TK : IKvElement
    {
        int lanes = TS.Count;
        int main = n - n % lanes;
        int p = from;
        for (; p + 4 <= count; p += 4)
        {
            byte* k0 = k + p * rowBytes;
            byte* k1 = k0 + rowBytes;
            byte* k2 = k1 + rowBytes;
            byte* k3 = k2 + rowBytes;
            TV a0 = TS.Zero, a1 = TS.Zero, a2 = TS.Zero, a3 = TS.Zero;
            for (int i = 0; i < main; i += lanes)
            {
                TV x = TS.Load(q + i);
                a0 = TS.MultiplyAdd(x, TK.Load<TV, TS>(k0, i), a0);
                a1 = TS.MultiplyAdd(x, TK.Load<TV, TS>(k1, i), a1);
                a2 = TS.MultiplyAdd(x, TK.Load<TV, TS>(k2, i), a2);
                a3 = TS.MultiplyAdd(x, TK.Load<TV, TS>(k3, i), a3);
            }

            TS.Sum4(a0, a1, a2, a3, s + p);
            ScaleWithTail<TK>(q, k0, rowBytes, main, n, scale, s + p);
        }

        for (; p < count; p++)
        {
            s[p] = Dot<TV, TS, TK>(q, k + p * rowBytes, n) * scale;
        }
    }

    /// <summary>
    /// Sixteen accumulators' sums, four query rows (a, b, c, d) × four keys, each reduced exactly as
    /// <see cref="Simd512.Sum4"/> reduces it (lanes l and l + 8, then adjacent pairs, then pairs of pairs, then the
    /// two halves) but four or eight at a time across the full register: 45 instructions for the sixteen sums instead of
    /// about 80. Row r's four scores, times <paramref name="scale"/>, go to s + r * stride.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Sum16Scaled(Vector512<float> a0, Vector512<float> a1, Vector512<float> a2, Vector512<float> a3,
        Vector512<float> b0, Vector512<float> b1, Vector512<float> b2, Vector512<float> b3,
        Vector512<float> c0, Vector512<float> c1, Vector512<float> c2, Vector512<float> c3,
        Vector512<float> d0, Vector512<float> d1, Vector512<float> d2, Vector512<float> d3, float scale, float* s, int stride)
    {
        // [x_l + x_(l+8) for x | for y], l < 8
        static Vector512<float> Fold(Vector512<float> x, Vector512<float> y) => Avx512F.Shuffle4x128(x, y, 0x44) + Avx512F.Shuffle4x128(x, y, 0xEE);

        // adjacent pairs summed within each 128-bit lane: [x0+x1, x2+x3, y0+y1, y2+y3] (vhaddps)
        static Vector512<float> Pairs(Vector512<float> x, Vector512<float> y) => Avx512F.Shuffle(x, y, 0x88) + Avx512F.Shuffle(x, y, 0xDD);

        // per 128-bit lane, row x's four keys: [x's pairs of pairs (lanes 0-3 of each half) | the same of lanes 4-7] for a, then for b
        Vector512<float> ab = Pairs(Pairs(Fold(a0, b0), Fold(a1, b1)), Pairs(Fold(a2, b2), Fold(a3, b3)));
        Vector512<float> cd = Pairs(Pairs(Fold(c0, d0), Fold(c1, d1)), Pairs(Fold(c2, d2), Fold(c3, d3)));
        Vector512<float> sums = (Avx512F.Shuffle4x128(ab, cd, 0x88) + Avx512F.Shuffle4x128(ab, cd, 0xDD)) * Vector512.Create(scale);
        sums.GetLower().GetLower().Store(s);
        sums.GetLower().GetUpper().Store(s + stride);
        sums.GetUpper().GetLower().Store(s + 2L * stride);
        sums.GetUpper().GetUpper().Store(s + 3L * stride);
    }

    /// <summary>Four keys' vector sums s[0..4) completed: the elements past the last whole vector added (where there are any), then the scale applied.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ScaleWithTail<TK>(float* q, byte* k, long rowBytes, int main, int n, float scale, float* s) where TK : IKvElement
    {
        if (main == n)
        {
            (Vector128.Load(s) * Vector128.Create(scale)).Store(s);    // no tail, and no +0 (a -0 stays -0, as in the 16-sum tile)
            return;
        }

        for (int j = 0; j < 4; j++)
        {
            byte* row = k + j * rowBytes;
            float t = 0;
            for (int i = main; i < n; i++)
            {
                t += q[i] * TK.LoadScalar(row, i);
            }

            s[j] = (s[j] + t) * scale;
        }
    }

    /// <summary>
    /// Four rows' weighted sums over value rows [0, <paramref name="count"/>) of one block, added to d0..d3 [0, tiled):
    /// d_r[i] += Σ_p w_r[p] · row(p)[i] (weights of row r at w + r * stride), one fused multiply-add per position in
    /// position order, as for the row alone; four vectors of the head at a time.
    /// </summary>
    private static void WeightedSumTile4<TV, TS, TK>(float* w, int stride, int count, byte* values, long rowBytes, int tiled,
        float* d0, float* d1, float* d2, float* d3)
        where TV : unmanaged where TS : ISimd<TV> where TK : IKvElement
    {
        int lanes = TS.Count;
        float* w1 = w + stride, w2 = w1 + stride, w3 = w2 + stride;
        for (int i = 0; i < tiled; i += 4 * lanes)
        {
            TV a0 = TS.Load(d0 + i), a1 = TS.Load(d0 + i + lanes), a2 = TS.Load(d0 + i + 2 * lanes), a3 = TS.Load(d0 + i + 3 * lanes);
            TV b0 = TS.Load(d1 + i), b1 = TS.Load(d1 + i + lanes), b2 = TS.Load(d1 + i + 2 * lanes), b3 = TS.Load(d1 + i + 3 * lanes);
            TV c0 = TS.Load(d2 + i), c1 = TS.Load(d2 + i + lanes), c2 = TS.Load(d2 + i + 2 * lanes), c3 = TS.Load(d2 + i + 3 * lanes);
            TV e0 = TS.Load(d3 + i), e1 = TS.Load(d3 + i + lanes), e2 = TS.Load(d3 + i + 2 * lanes), e3 = TS.Load(d3 + i + 3 * lanes);
            byte* v = values;
            for (int p = 0; p < count; p++, v += rowBytes)
            {
                TV v0 = TK.Load<TV, TS>(v, i), v1 = TK.Load<TV, TS>(v, i + lanes);
                TV v2 = TK.Load<TV, TS>(v, i + 2 * lanes), v3 = TK.Load<TV, TS>(v, i + 3 * lanes);
                TV s = TS.Broadcast(w[p]);
                a0 = TS.MultiplyAdd(s, v0, a0);
                a1 = TS.MultiplyAdd(s, v1, a1);
                a2 = TS.MultiplyAdd(s, v2, a2);
                a3 = TS.MultiplyAdd(s, v3, a3);
                s = TS.Broadcast(w1[p]);
                b0 = TS.MultiplyAdd(s, v0, b0);
                b1 = TS.MultiplyAdd(s, v1, b1);
                b2 = TS.MultiplyAdd(s, v2, b2);
                b3 = TS.MultiplyAdd(s, v3, b3);
                s = TS.Broadcast(w2[p]);
                c0 = TS.MultiplyAdd(s, v0, c0);
                c1 = TS.MultiplyAdd(s, v1, c1);
                c2 = TS.MultiplyAdd(s, v2, c2);
                c3 = TS.MultiplyAdd(s, v3, c3);
                s = TS.Broadcast(w3[p]);
                e0 = TS.MultiplyAdd(s, v0, e0);
                e1 = TS.MultiplyAdd(s, v1, e1);
                e2 = TS.MultiplyAdd(s, v2, e2);
                e3 = TS.MultiplyAdd(s, v3, e3);
            }

            TS.Store(a0, d0 + i);
            TS.Store(a1, d0 + i + lanes);
            TS.Store(a2, d0 + i + 2 * lanes);
            TS.Store(a3, d0 + i + 3 * lanes);
            TS.Store(b0, d1 + i);
            TS.Store(b1, d1 + i + lanes);
            TS.Store(b2, d1 + i + 2 * lanes);
            TS.Store(b3, d1 + i + 3 * lanes);
            TS.Store(c0, d2 + i);
            TS.Store(c1, d2 + i + lanes);
            TS.Store(c2, d2 + i + 2 * lanes);
            TS.Store(c3, d2 + i + 3 * lanes);
            TS.Store(e0, d3 + i);
            TS.Store(e1, d3 + i + lanes);
            TS.Store(e2, d3 + i + 2 * lanes);
            TS.Store(e3, d3 + i + 3 * lanes);
        }
    }

    /// <summary>
    /// Two rows' weighted sums over value rows [0, <paramref name="count"/>) of one block, added to
    /// d0/d1 [0, tiled) as <see cref="WeightedSumTile4"/> adds them; four vectors of the head at a time.
    /// </summary>
    private static void WeightedSumTile2<TV, TS, TK>(float* w0, float* w1, int count, byte* values, long rowBytes, int tiled,
        float* d0, float* d1)
        where TV : unmanaged where TS : ISimd<TV> where TK : IKvElement
    {
        int lanes = TS.Count;
        for (int i = 0; i < tiled; i += 4 * lanes)
        {
            TV a0 = TS.Load(d0 + i), a1 = TS.Load(d0 + i + lanes), a2 = TS.Load(d0 + i + 2 * lanes), a3 = TS.Load(d0 + i + 3 * lanes);
            TV b0 = TS.Load(d1 + i), b1 = TS.Load(d1 + i + lanes), b2 = TS.Load(d1 + i + 2 * lanes), b3 = TS.Load(d1 + i + 3 * lanes);
            byte* v = values;
            for (int p = 0; p < count; p++, v += rowBytes)
            {
                TV v0 = TK.Load<TV, TS>(v, i), v1 = TK.Load<TV, TS>(v, i + lanes);
                TV v2 = TK.Load<TV, TS>(v, i + 2 * lanes), v3 = TK.Load<TV, TS>(v, i + 3 * lanes);
                TV s = TS.Broadcast(w0[p]);
                a0 = TS.MultiplyAdd(s, v0, a0);
                a1 = TS.MultiplyAdd(s, v1, a1);
                a2 = TS.MultiplyAdd(s, v2, a2);
                a3 = TS.MultiplyAdd(s, v3, a3);
                s = TS.Broadcast(w1[p]);
                b0 = TS.MultiplyAdd(s, v0, b0);
                b1 = TS.MultiplyAdd(s, v1, b1);
                b2 = TS.MultiplyAdd(s, v2, b2);
                b3 = TS.MultiplyAdd(s, v3, b3);
            }

            TS.Store(a0, d0 + i);
            TS.Store(a1, d0 + i + lanes);
            TS.Store(a2, d0 + i + 2 * lanes);
            TS.Store(a3, d0 + i + 3 * lanes);
            TS.Store(b0, d1 + i);
            TS.Store(b1, d1 + i + lanes);
            TS.Store(b2, d1 + i + 2 * lanes);
            TS.Store(b3, d1 + i + 3 * lanes);
        }
    }

    /// <summary>One row's weighted sum over value rows [<paramref name="from"/>, <paramref name="count"/>) of one block, added to d [0, tiled).</summary>
    private static void WeightedSumRow<TV, TS, TK>(float* w, int from, int count, byte* values, long rowBytes, int tiled, float* d)
        where TV : unmanaged where TS : ISimd<TV> where TK : IKvElement
    {
        int lanes = TS.Count;
        for (int i = 0; i < tiled; i += 4 * lanes)
        {
            TV a0 = TS.Load(d + i), a1 = TS.Load(d + i + lanes), a2 = TS.Load(d + i + 2 * lanes), a3 = TS.Load(d + i + 3 * lanes);
            byte* v = values + from * rowBytes;
            for (int p = from; p < count; p++, v += rowBytes)
            {
                TV s = TS.Broadcast(w[p]);
                a0 = TS.MultiplyAdd(s, TK.Load<TV, TS>(v, i), a0);
                a1 = TS.MultiplyAdd(s, TK.Load<TV, TS>(v, i + lanes), a1);
                a2 = TS.MultiplyAdd(s, TK.Load<TV, TS>(v, i + 2 * lanes), a2);
                a3 = TS.MultiplyAdd(s, TK.Load<TV, TS>(v, i + 3 * lanes), a3);
            }

            TS.Store(a0, d + i);
            TS.Store(a1, d + i + lanes);
            TS.Store(a2, d + i + 2 * lanes);
            TS.Store(a3, d + i + 3 * lanes);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Dot<TV, TS, TK>(float* a, byte* b, int n) where TV : unmanaged where TS : ISimd<TV> where TK : IKvElement
    {
        int lanes = TS.Count;
        int main = n - n % lanes;
        TV acc0 = TS.Zero, acc1 = TS.Zero;
        int i = 0;
        for (; i + 2 * lanes <= main; i += 2 * lanes)
        {
            acc0 = TS.MultiplyAdd(TS.Load(a + i), TK.Load<TV, TS>(b, i), acc0);
            acc1 = TS.MultiplyAdd(TS.Load(a + i + lanes), TK.Load<TV, TS>(b, i + lanes), acc1);
        }

        for (; i < main; i += lanes)
        {
            acc0 = TS.MultiplyAdd(TS.Load(a + i), TK.Load<TV, TS>(b, i), acc0);
        }

        float sum = TS.Sum(TS.Add(acc0, acc1));
        for (i = main; i < n; i++)
        {
            sum += a[i] * TK.LoadScalar(b, i);
        }

        return sum;
    }

    /// <summary>
    /// destination [start, n) = Σ_p weights[p] · row(p)[start..n), four vectors of the head at a time; rows through the
    /// block table (block b at values + table[b] * blockBytes, its rows <paramref name="rowBytes"/> apart).
    /// </summary>
    private static void WeightedSumFrom<TV, TS, TK>(float* weights, int count, byte* values, long blockBytes, long rowBytes, int* table, int blockSize,
        int n, float* destination, int start)
        where TV : unmanaged where TS : ISimd<TV> where TK : IKvElement
    {
        int lanes = TS.Count;
        int main = n - n % lanes;
        int i = start;
        for (; i + 4 * lanes <= main; i += 4 * lanes)
        {
            TV a0 = TS.Zero, a1 = TS.Zero, a2 = TS.Zero, a3 = TS.Zero;
            for (int p0 = 0, b = 0; p0 < count; p0 += blockSize, b++)
            {
                byte* v = values + table[b] * blockBytes;
                int end = Math.Min(count, p0 + blockSize);
                for (int p = p0; p < end; p++, v += rowBytes)
                {
                    TV w = TS.Broadcast(weights[p]);
                    a0 = TS.MultiplyAdd(w, TK.Load<TV, TS>(v, i), a0);
                    a1 = TS.MultiplyAdd(w, TK.Load<TV, TS>(v, i + lanes), a1);
                    a2 = TS.MultiplyAdd(w, TK.Load<TV, TS>(v, i + 2 * lanes), a2);
                    a3 = TS.MultiplyAdd(w, TK.Load<TV, TS>(v, i + 3 * lanes), a3);
                }
            }

            TS.Store(a0, destination + i);
            TS.Store(a1, destination + i + lanes);
            TS.Store(a2, destination + i + 2 * lanes);
            TS.Store(a3, destination + i + 3 * lanes);
        }

        for (; i < main; i += lanes)
        {
            TV a = TS.Zero;
            for (int p0 = 0, b = 0; p0 < count; p0 += blockSize, b++)
            {
                byte* v = values + table[b] * blockBytes;
                int end = Math.Min(count, p0 + blockSize);
                for (int p = p0; p < end; p++, v += rowBytes)
                {
                    a = TS.MultiplyAdd(TS.Broadcast(weights[p]), TK.Load<TV, TS>(v, i), a);
                }
            }

            TS.Store(a, destination + i);
        }

        for (; i < n; i++)
        {
            float a = 0;
            for (int p0 = 0, b = 0; p0 < count; p0 += blockSize, b++)
            {
                byte* v = values + table[b] * blockBytes;
                int end = Math.Min(count, p0 + blockSize);
                for (int p = p0; p < end; p++, v += rowBytes)
                {
                    a += weights[p] * TK.LoadScalar(v, i);
                }
            }

            destination[i] = a;
        }
    }
}

/// <summary>
/// One sequence of a step's attention (<see cref="Attention.Causal(WorkerPool, ReadOnlySpan{float}, ReadOnlySpan{AttentionSequence}, ReadOnlySpan{byte}, ReadOnlySpan{byte}, KvCacheDType, ReadOnlySpan{int}, int, int, int, int, float, Span{float})"/>):
/// its query rows [TokenOffset, TokenOffset + TokenCount) of the step at positions StartPosition.., and its block table,
/// blockTables[TableOffset..TableOffset + TableLength).
/// </summary>
public readonly record struct AttentionSequence(int TokenOffset, int TokenCount, int StartPosition, int TableOffset, int TableLength);

using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Qwen3Sharp.Cache;

namespace Qwen3Sharp.Kernels;

public static unsafe class Attention
{
    /// <summary>
    /// Causal grouped-query attention of a batch of new tokens against the cache.
    /// q [tokenCount, headCount * headDim]; keys and values [≥ startPosition + tokenCount, kvHeadCount * headDim]
    /// already hold the new tokens' k and v; token t sits at position startPosition + t and sees positions
    /// 0..startPosition + t. Query head h reads kv head h / (headCount / kvHeadCount).
    /// destination [tokenCount, headCount * headDim].
    /// </summary>
    /// <remarks>
    /// One pool item per (token, kv head): the group of query heads sharing that kv head score all visible
    /// positions into the worker's scratch [group, context], softmax, and sum the values.
    /// </remarks>
    public static void Causal(WorkerPool pool, ReadOnlySpan<float> q, int tokenCount, int startPosition,
        ReadOnlySpan<float> keys, ReadOnlySpan<float> values, int headCount, int kvHeadCount, int headDim,
        float scale, Span<float> destination)
        => Causal(pool, q, tokenCount, startPosition, keys, values, SingleBlock, Math.Max(1, startPosition + tokenCount),
            headCount, kvHeadCount, headDim, scale, destination);

    private static readonly int[] SingleBlock = [0];

    /// <summary>
    /// As <see cref="Causal(WorkerPool, ReadOnlySpan{float}, int, int, ReadOnlySpan{float}, ReadOnlySpan{float}, int, int, int, float, Span{float})"/>
    /// over a paged cache: position p lives in row (blockTable[p / blockSize] * blockSize + p % blockSize) of
    /// keys and values [blocks * blockSize, kvHeadCount * headDim]. One block of the context's size is the dense cache.
    /// </summary>
    public static void Causal(WorkerPool pool, ReadOnlySpan<float> q, int tokenCount, int startPosition,
        ReadOnlySpan<float> keys, ReadOnlySpan<float> values, ReadOnlySpan<int> blockTable, int blockSize,
        int headCount, int kvHeadCount, int headDim, float scale, Span<float> destination)
        => Causal(pool, q, tokenCount, startPosition, MemoryMarshal.AsBytes(keys), MemoryMarshal.AsBytes(values), KvCacheDType.F32,
            blockTable, blockSize, headCount, kvHeadCount, headDim, scale, destination);

    /// <summary>
    /// As the paged overload over keys and values stored as <paramref name="dtype"/>: raw bytes of
    /// [blocks * blockSize, kvHeadCount * headDim] elements. bf16 and f16 rows are widened to float32 in registers;
    /// scores, softmax and sums are float32 as for a float32 cache.
    /// </summary>
    public static void Causal(WorkerPool pool, ReadOnlySpan<float> q, int tokenCount, int startPosition,
        ReadOnlySpan<byte> keys, ReadOnlySpan<byte> values, KvCacheDType dtype, ReadOnlySpan<int> blockTable, int blockSize,
        int headCount, int kvHeadCount, int headDim, float scale, Span<float> destination)
    {
        var one = new AttentionSequence(0, tokenCount, startPosition, 0, blockTable.Length);
        Causal(pool, q, new ReadOnlySpan<AttentionSequence>(in one), keys, values, dtype, blockTable, blockSize, headCount, kvHeadCount, headDim,
            scale, destination);
    }

    /// <summary>
    /// Causal grouped-query attention of one engine step: every sequence's new tokens against its own paged cache, in
    /// one pool dispatch. q and destination [T, headCount * headDim] hold the step's tokens in batch order; sequence s
    /// owns rows [TokenOffset, TokenOffset + TokenCount) at positions StartPosition.. and its block table is
    /// blockTables[TableOffset..TableOffset + TableLength). Keys and values are one store shared by the sequences, as
    /// in the paged overload. Each token's result is the single-sequence overload's, bit for bit: the items are the
    /// same (token, kv head) items, only dispatched together.
    /// </summary>
    /// <remarks>
    /// One pool item per (token, kv head), the most expensive first (the sequences by context, deepest first; a
    /// sequence's tokens last first), so the items left when a thread runs out of work are the cheapest: a decode at
    /// 8,000 positions is 8 items the threads share, and the tail of the dispatch is one short item.
    /// </remarks>
    public static void Causal(WorkerPool pool, ReadOnlySpan<float> q, ReadOnlySpan<AttentionSequence> sequences,
        ReadOnlySpan<byte> keys, ReadOnlySpan<byte> values, KvCacheDType dtype, ReadOnlySpan<int> blockTables, int blockSize,
        int headCount, int kvHeadCount, int headDim, float scale, Span<float> destination)
    {
        switch (dtype)
        {
            case KvCacheDType.F32:
                Dispatch<KvF32>(pool, q, sequences, keys, values, blockTables, blockSize, headCount, kvHeadCount, headDim, scale, destination);
                break;
            case KvCacheDType.BF16:
                Dispatch<KvBf16>(pool, q, sequences, keys, values, blockTables, blockSize, headCount, kvHeadCount, headDim, scale, destination);
                break;
            case KvCacheDType.F16:
                Dispatch<KvF16>(pool, q, sequences, keys, values, blockTables, blockSize, headCount, kvHeadCount, headDim, scale, destination);
                break;
            case KvCacheDType.Q8_0:
                if (dtype.Unsupported(headDim) is { } why)
                {
                    throw new NotSupportedException(why);
                }

                Dispatch<KvQ8>(pool, q, sequences, keys, values, blockTables, blockSize, headCount, kvHeadCount, headDim, scale, destination);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown KV-cache dtype");
        }
    }

    private static void Dispatch<TK>(WorkerPool pool, ReadOnlySpan<float> q, ReadOnlySpan<AttentionSequence> sequences,
        ReadOnlySpan<byte> keys, ReadOnlySpan<byte> values, ReadOnlySpan<int> blockTables, int blockSize,
        int headCount, int kvHeadCount, int headDim, float scale, Span<float> destination)
        where TK : IKvElement
    {
        if (Vector512.IsHardwareAccelerated && headDim >= Vector512<float>.Count)
        {
            Run<Vector512<float>, Simd512, TK>(pool, q, sequences, keys, values, blockTables, blockSize, headCount, kvHeadCount, headDim, scale, destination);
        }
        else if (Vector256.IsHardwareAccelerated && headDim >= Vector256<float>.Count)
        {
            Run<Vector256<float>, Simd256, TK>(pool, q, sequences, keys, values, blockTables, blockSize, headCount, kvHeadCount, headDim, scale, destination);
        }
        else if (Vector128.IsHardwareAccelerated && headDim >= Vector128<float>.Count)
        {
            Run<Vector128<float>, Simd128, TK>(pool, q, sequences, keys, values, blockTables, blockSize, headCount, kvHeadCount, headDim, scale, destination);
        }
        else
        {
            Run<float, SimdScalar, TK>(pool, q, sequences, keys, values, blockTables, blockSize, headCount, kvHeadCount, headDim, scale, destination);
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
        int headCount, int kvHeadCount, int headDim, float scale, Span<float> destination)
        where TV : unmanaged where TS : ISimd<TV> where TK : IKvElement
    {
        var one = new AttentionSequence(0, tokenCount, startPosition, 0, blockTable.Length);
        Run<TV, TS, TK>(pool, q, new ReadOnlySpan<AttentionSequence>(in one), keys, values, blockTable, blockSize, headCount, kvHeadCount, headDim,
            scale, destination);
    }

    internal static void Run<TV, TS, TK>(WorkerPool pool, ReadOnlySpan<float> q, ReadOnlySpan<AttentionSequence> sequences,
        ReadOnlySpan<byte> keys, ReadOnlySpan<byte> values, ReadOnlySpan<int> blockTables, int blockSize,
        int headCount, int kvHeadCount, int headDim, float scale, Span<float> destination)
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
        int maxContext = 0, items = 0, segmentCount = 0;
        foreach (AttentionSequence s in sequences)
        {
            Validate(s, q.Length, destination.Length, qWidth, blockTables, blockSize, keyRows, valueRows);
            maxContext = Math.Max(maxContext, s.StartPosition + s.TokenCount);
            items += s.TokenCount * kvHeadCount;
            segmentCount += s.TokenCount > 0 ? 1 : 0;
        }

        if (items == 0 || headDim == 0)
        {
            return;
        }

        // The segments in cost order (deepest context first; insertion sort, the steps hold few sequences), each with
        // the index of its first item.
        var segments = (Segment*)pool.SharedScratch((long)segmentCount * sizeof(Segment));
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

            segments[at] = new Segment { TokenOffset = s.TokenOffset, TokenCount = s.TokenCount, StartPosition = s.StartPosition, TableOffset = s.TableOffset };
        }

        for (int i = 0, first = 0; i < n; first += segments[i].TokenCount * kvHeadCount, i++)
        {
            segments[i].FirstItem = first;
        }

        int group = headCount / kvHeadCount;
        pool.EnsureWorkerScratch((long)group * maxContext * sizeof(float));
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
                Context = maxContext,
                Tables = pt,
                BlockSize = blockSize,
                HeadCount = headCount,
                KvHeadCount = kvHeadCount,
                HeadDim = headDim,
                Scale = scale,
                Scratch = pool.WorkerScratchTable,
            };
            pool.Run(ref job, items);
        }
    }

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
            long end = (long)table[b] * blockSize + Math.Min(blockSize, context - (long)b * blockSize);
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

    /// <summary>A sequence of a dispatch, in cost order: its items are FirstItem.. (token-major, last token first).</summary>
    private struct Segment
    {
        public int FirstItem, TokenOffset, TokenCount, StartPosition, TableOffset;
    }

    private struct CausalJob<TV, TS, TK> : IPoolJob where TV : unmanaged where TS : ISimd<TV> where TK : IKvElement
    {
        public float* Q;            // [T, headCount * headDim]
        public byte* Keys;          // [rows, kvHeadCount * headDim] elements of TK
        public byte* Values;        // [rows, kvHeadCount * headDim] elements of TK
        public float* Destination;  // [T, headCount * headDim]
        public Segment* Segments;   // [SegmentCount], deepest first
        public int* Tables;         // every sequence's blocks: position p is row table[p / BlockSize] * BlockSize + p % BlockSize
        public int SegmentCount, Context, HeadCount, KvHeadCount, HeadDim, BlockSize;
        public float Scale;
        public void** Scratch;      // per worker: [group, Context]

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
            int row = s.TokenCount - 1 - local / KvHeadCount, kvh = local % KvHeadCount;
            Head(s.TokenOffset + row, kvh, s.StartPosition + row + 1, Tables + s.TableOffset, (float*)Scratch[worker]);
        }

        /// <summary>Token <paramref name="t"/>'s query heads of kv head <paramref name="kvh"/> over positions 0..visible-1.</summary>
        private readonly void Head(int t, int kvh, int visible, int* table, float* scores)
        {
            int group = HeadCount / KvHeadCount;
            long headBytes = TK.Bytes(HeadDim), rowBytes = KvHeadCount * headBytes;
            byte* kBase = Keys + kvh * headBytes;
            byte* vBase = Values + kvh * headBytes;
            float* q0 = Q + ((long)t * HeadCount + kvh * group) * HeadDim;     // the group's heads are adjacent
            float* out0 = Destination + ((long)t * HeadCount + kvh * group) * HeadDim;

            // Scores, a block at a time: heads in pairs against four key rows at once (each row widened once per pair,
            // eight independent accumulators, one add tree for four sums); the block's rows stay in L1 for the next pair.
            for (int p0 = 0, b = 0; p0 < visible; p0 += BlockSize, b++)
            {
                byte* k = kBase + (long)table[b] * BlockSize * rowBytes;
                int count = Math.Min(visible, p0 + BlockSize) - p0;
                if (p0 + BlockSize < visible)
                {
                    PrefetchRows(kBase + (long)table[b + 1] * BlockSize * rowBytes, rowBytes, Math.Min(BlockSize, visible - p0 - BlockSize), headBytes);
                }

                int g = 0;
                for (; g + 2 <= group; g += 2)
                {
                    Scores2<TV, TS, TK>(q0 + g * HeadDim, q0 + (g + 1) * HeadDim, k, rowBytes, count, HeadDim, Scale,
                        scores + (long)g * Context + p0, scores + (long)(g + 1) * Context + p0);
                }

                if (g < group)
                {
                    byte* row = k;
                    for (int p = 0; p < count; p++, row += rowBytes)
                    {
                        scores[(long)g * Context + p0 + p] = Dot<TV, TS, TK>(q0 + g * HeadDim, row, HeadDim) * Scale;
                    }
                }
            }

            for (int g = 0; g < group; g++)
            {
                Softmax.InPlace<TV, TS>(scores + (long)g * Context, visible);
            }

            // Values: heads in pairs, so each value row is read once per pair.
            int h = 0;
            for (; h + 2 <= group; h += 2)
            {
                WeightedSum2<TV, TS, TK>(scores + (long)h * Context, scores + (long)(h + 1) * Context, visible, vBase, rowBytes,
                    table, BlockSize, HeadDim, out0 + h * HeadDim, out0 + (h + 1) * HeadDim);
            }

            if (h < group)
            {
                WeightedSumFrom<TV, TS, TK>(scores + (long)h * Context, visible, vBase, rowBytes, table, BlockSize, HeadDim, out0 + h * HeadDim, 0);
            }
        }
    }

    /// <summary>
    /// Prefetches this head's part (<paramref name="headBytes"/>) of <paramref name="count"/> rows: the next block of a
    /// paged cache lies anywhere, and its rows are <paramref name="rowBytes"/> apart (every KV head's), where the
    /// hardware prefetchers do not follow (a Zen 3 under load, interleaved: 5-10% less CPU time for decode attention at 2,000 and 8,000 positions).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchRows(byte* rows, long rowBytes, int count, long headBytes)
    {
        for (int p = 0; p < count; p++, rows += rowBytes)
        {
            for (int offset = 0; offset < headBytes; offset += 64)
            {
                SimdMath.Prefetch(rows + offset);
            }
        }
    }

    /// <summary>
    /// Two heads' scores against <paramref name="count"/> key rows from <paramref name="k"/> (rows <paramref name="rowBytes"/>
    /// apart): sa/sb[p] = (qa/qb · row(p)) · scale.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Scores2<TV, TS, TK>(float* qa, float* qb, byte* k, long rowBytes, int count, int n, float scale, float* sa, float* sb)
        where TV : unmanaged where TS : ISimd<TV> where TK : IKvElement
    {
        int lanes = TS.Count;
        int main = n - n % lanes;
        int p = 0;
        for (; p + 4 <= count; p += 4)
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
            for (int j = 0; j < 4; j++)
            {
                byte* row = k + (p + j) * rowBytes;
                float ta = 0, tb = 0;
                for (int i = main; i < n; i++)
                {
                    float e = TK.LoadScalar(row, i);
                    ta += qa[i] * e;
                    tb += qb[i] * e;
                }

                sa[p + j] = (sa[p + j] + ta) * scale;
                sb[p + j] = (sb[p + j] + tb) * scale;
            }
        }

        for (; p < count; p++)
        {
            byte* row = k + p * rowBytes;
            sa[p] = Dot<TV, TS, TK>(qa, row, n) * scale;
            sb[p] = Dot<TV, TS, TK>(qb, row, n) * scale;
        }
    }

    /// <summary>
    /// Two heads' weighted sums over the same value rows: d0/d1 [n] = Σ_p w0/w1[p] · row(p)[..n]; rows of <paramref name="rowBytes"/>
    /// through the block table. A block at a time (its rows, 16 × a head's 128 elements, stay in L1 while every 4-vector
    /// slice of the head passes over them), the sums kept in the destination between blocks.
    /// </summary>
    private static void WeightedSum2<TV, TS, TK>(float* w0, float* w1, int count, byte* values, long rowBytes, int* table, int blockSize,
        int n, float* d0, float* d1)
        where TV : unmanaged where TS : ISimd<TV> where TK : IKvElement
    {
        int lanes = TS.Count;
        int main = n - n % lanes;
        int tiled = main - main % (4 * lanes);
        new Span<float>(d0, tiled).Clear();
        new Span<float>(d1, tiled).Clear();
        for (int p0 = 0, b = 0; p0 < count; p0 += blockSize, b++)
        {
            byte* block = values + (long)table[b] * blockSize * rowBytes;
            int end = Math.Min(count, p0 + blockSize);
            if (end < count)
            {
                PrefetchRows(values + (long)table[b + 1] * blockSize * rowBytes, rowBytes, Math.Min(blockSize, count - end), TK.Bytes(n));
            }

            for (int i = 0; i < tiled; i += 4 * lanes)
            {
                TV a0 = TS.Load(d0 + i), a1 = TS.Load(d0 + i + lanes), a2 = TS.Load(d0 + i + 2 * lanes), a3 = TS.Load(d0 + i + 3 * lanes);
                TV b0 = TS.Load(d1 + i), b1 = TS.Load(d1 + i + lanes), b2 = TS.Load(d1 + i + 2 * lanes), b3 = TS.Load(d1 + i + 3 * lanes);
                byte* v = block;
                for (int p = p0; p < end; p++, v += rowBytes)
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

        if (tiled < n)
        {
            WeightedSumFrom<TV, TS, TK>(w0, count, values, rowBytes, table, blockSize, n, d0, tiled);
            WeightedSumFrom<TV, TS, TK>(w1, count, values, rowBytes, table, blockSize, n, d1, tiled);
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

    /// <summary>destination [start, n) = Σ_p weights[p] · row(p)[start..n), four vectors of the head at a time; rows through the block table.</summary>
    private static void WeightedSumFrom<TV, TS, TK>(float* weights, int count, byte* values, long rowBytes, int* table, int blockSize,
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
                byte* v = values + (long)table[b] * blockSize * rowBytes;
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
                byte* v = values + (long)table[b] * blockSize * rowBytes;
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
                byte* v = values + (long)table[b] * blockSize * rowBytes;
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

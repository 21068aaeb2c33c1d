using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

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
    {
        if (Vector512.IsHardwareAccelerated && headDim >= Vector512<float>.Count)
        {
            Run<Vector512<float>, Simd512>(pool, q, tokenCount, startPosition, keys, values, blockTable, blockSize, headCount, kvHeadCount, headDim, scale, destination);
        }
        else if (Vector256.IsHardwareAccelerated && headDim >= Vector256<float>.Count)
        {
            Run<Vector256<float>, Simd256>(pool, q, tokenCount, startPosition, keys, values, blockTable, blockSize, headCount, kvHeadCount, headDim, scale, destination);
        }
        else if (Vector128.IsHardwareAccelerated && headDim >= Vector128<float>.Count)
        {
            Run<Vector128<float>, Simd128>(pool, q, tokenCount, startPosition, keys, values, blockTable, blockSize, headCount, kvHeadCount, headDim, scale, destination);
        }
        else
        {
            Run<float, SimdScalar>(pool, q, tokenCount, startPosition, keys, values, blockTable, blockSize, headCount, kvHeadCount, headDim, scale, destination);
        }
    }

    internal static void Run<TV, TS>(WorkerPool pool, ReadOnlySpan<float> q, int tokenCount, int startPosition,
        ReadOnlySpan<float> keys, ReadOnlySpan<float> values, ReadOnlySpan<int> blockTable, int blockSize,
        int headCount, int kvHeadCount, int headDim, float scale, Span<float> destination)
        where TV : unmanaged where TS : ISimd<TV>
    {
        ArgumentNullException.ThrowIfNull(pool);
        if (kvHeadCount <= 0 || headCount % kvHeadCount != 0)
        {
            throw new ArgumentException($"headCount {headCount} is not a multiple of kvHeadCount {kvHeadCount}.");
        }

        int context = startPosition + tokenCount;
        long qCount = (long)tokenCount * headCount * headDim;
        if (blockSize < 1 || (long)blockTable.Length * blockSize < context)
        {
            throw new ArgumentException($"A block table of {blockTable.Length} blocks of {blockSize} does not cover {context} positions.");
        }

        long kvCount = (long)context * kvHeadCount * headDim;
        int lastBlock = (context - 1) / blockSize;
        for (int b = 0; context > 0 && b <= lastBlock; b++)
        {
            long end = ((long)blockTable[b] * blockSize + Math.Min(blockSize, context - (long)b * blockSize)) * kvHeadCount * headDim;
            if (blockTable[b] < 0 || end > keys.Length || end > values.Length)
            {
                throw new ArgumentException($"Block {blockTable[b]} of the table lies outside keys/values of {keys.Length} elements.");
            }
        }

        if (q.Length < qCount || destination.Length < qCount || (blockSize >= context && (keys.Length < kvCount || values.Length < kvCount)))
        {
            throw new ArgumentException(
                $"Attention over {tokenCount} tokens at {startPosition} needs q and destination of {qCount} and keys and values " +
                $"of {kvCount} elements; got q {q.Length}, destination {destination.Length}, keys {keys.Length}, values {values.Length}.");
        }

        if (tokenCount == 0 || headDim == 0)
        {
            return;
        }

        int group = headCount / kvHeadCount;
        pool.EnsureWorkerScratch((long)group * context * sizeof(float));
        fixed (float* pq = q, pk = keys, pv = values, pd = destination)
        fixed (int* pt = blockTable)
        {
            var job = new CausalJob<TV, TS>
            {
                Q = pq,
                Keys = pk,
                Values = pv,
                Destination = pd,
                StartPosition = startPosition,
                Context = context,
                Table = pt,
                BlockSize = blockSize,
                HeadCount = headCount,
                KvHeadCount = kvHeadCount,
                HeadDim = headDim,
                Scale = scale,
                Scratch = pool.WorkerScratchTable,
            };
            pool.Run(ref job, tokenCount * kvHeadCount);
        }
    }

    private struct CausalJob<TV, TS> : IPoolJob where TV : unmanaged where TS : ISimd<TV>
    {
        public float* Q;            // [tokenCount, headCount * headDim]
        public float* Keys;         // [context, kvHeadCount * headDim]
        public float* Values;       // [context, kvHeadCount * headDim]
        public float* Destination;  // [tokenCount, headCount * headDim]
        public int* Table;          // [blocks]: position p is row Table[p / BlockSize] * BlockSize + p % BlockSize
        public int StartPosition, Context, HeadCount, KvHeadCount, HeadDim, BlockSize;
        public float Scale;
        public void** Scratch;      // per worker: [group, Context]

        public readonly void Execute(int index, int worker)
        {
            int t = index / KvHeadCount, kvh = index % KvHeadCount;
            int group = HeadCount / KvHeadCount;
            int visible = StartPosition + t + 1;
            int kvStride = KvHeadCount * HeadDim;
            float* kBase = Keys + kvh * HeadDim;
            float* vBase = Values + kvh * HeadDim;
            float* scores = (float*)Scratch[worker];
            float* q0 = Q + ((long)t * HeadCount + kvh * group) * HeadDim;     // the group's heads are adjacent
            float* out0 = Destination + ((long)t * HeadCount + kvh * group) * HeadDim;

            // Scores: each key row is loaded once (L1) for all heads of the group.
            for (int p0 = 0, b = 0; p0 < visible; p0 += BlockSize, b++)
            {
                float* k = kBase + (long)Table[b] * BlockSize * kvStride;
                int end = Math.Min(visible, p0 + BlockSize);
                for (int p = p0; p < end; p++, k += kvStride)
                {
                    for (int g = 0; g < group; g++)
                    {
                        scores[(long)g * Context + p] = Dot<TV, TS>(q0 + g * HeadDim, k, HeadDim) * Scale;
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
                WeightedSum2<TV, TS>(scores + (long)h * Context, scores + (long)(h + 1) * Context, visible, vBase, kvStride,
                    Table, BlockSize, HeadDim, out0 + h * HeadDim, out0 + (h + 1) * HeadDim);
            }

            if (h < group)
            {
                WeightedSumFrom<TV, TS>(scores + (long)h * Context, visible, vBase, kvStride, Table, BlockSize, HeadDim, out0 + h * HeadDim, 0);
            }
        }
    }

    /// <summary>Two heads' weighted sums over the same value rows: d0/d1 [n] = Σ_p w0/w1[p] · values[p * stride ..].</summary>
    private static void WeightedSum2<TV, TS>(float* w0, float* w1, int count, float* values, int stride, int* table, int blockSize,
        int n, float* d0, float* d1)
        where TV : unmanaged where TS : ISimd<TV>
    {
        int lanes = TS.Count;
        int main = n - n % lanes;
        int i = 0;
        for (; i + 4 * lanes <= main; i += 4 * lanes)
        {
            TV a0 = TS.Zero, a1 = TS.Zero, a2 = TS.Zero, a3 = TS.Zero;
            TV b0 = TS.Zero, b1 = TS.Zero, b2 = TS.Zero, b3 = TS.Zero;
            for (int p0 = 0, b = 0; p0 < count; p0 += blockSize, b++)
            {
            float* v = values + (long)table[b] * blockSize * stride + i;
            int end = Math.Min(count, p0 + blockSize);
            for (int p = p0; p < end; p++, v += stride)
            {
                TV v0 = TS.Load(v), v1 = TS.Load(v + lanes), v2 = TS.Load(v + 2 * lanes), v3 = TS.Load(v + 3 * lanes);
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

        if (i < n)
        {
            WeightedSumFrom<TV, TS>(w0, count, values, stride, table, blockSize, n, d0, i);
            WeightedSumFrom<TV, TS>(w1, count, values, stride, table, blockSize, n, d1, i);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Dot<TV, TS>(float* a, float* b, int n) where TV : unmanaged where TS : ISimd<TV>
    {
        int lanes = TS.Count;
        int main = n - n % lanes;
        TV acc0 = TS.Zero, acc1 = TS.Zero;
        int i = 0;
        for (; i + 2 * lanes <= main; i += 2 * lanes)
        {
            acc0 = TS.MultiplyAdd(TS.Load(a + i), TS.Load(b + i), acc0);
            acc1 = TS.MultiplyAdd(TS.Load(a + i + lanes), TS.Load(b + i + lanes), acc1);
        }

        for (; i < main; i += lanes)
        {
            acc0 = TS.MultiplyAdd(TS.Load(a + i), TS.Load(b + i), acc0);
        }

        float sum = TS.Sum(TS.Add(acc0, acc1));
        for (i = main; i < n; i++)
        {
            sum += a[i] * b[i];
        }

        return sum;
    }

    /// <summary>destination [start, n) = Σ_p weights[p] · row(p)[start..n), four vectors of the head at a time; rows through the block table.</summary>
    private static void WeightedSumFrom<TV, TS>(float* weights, int count, float* values, int stride, int* table, int blockSize,
        int n, float* destination, int start)
        where TV : unmanaged where TS : ISimd<TV>
    {
        int lanes = TS.Count;
        int main = n - n % lanes;
        int i = start;
        for (; i + 4 * lanes <= main; i += 4 * lanes)
        {
            TV a0 = TS.Zero, a1 = TS.Zero, a2 = TS.Zero, a3 = TS.Zero;
            for (int p0 = 0, b = 0; p0 < count; p0 += blockSize, b++)
            {
            float* v = values + (long)table[b] * blockSize * stride + i;
            int end = Math.Min(count, p0 + blockSize);
            for (int p = p0; p < end; p++, v += stride)
            {
                TV w = TS.Broadcast(weights[p]);
                a0 = TS.MultiplyAdd(w, TS.Load(v), a0);
                a1 = TS.MultiplyAdd(w, TS.Load(v + lanes), a1);
                a2 = TS.MultiplyAdd(w, TS.Load(v + 2 * lanes), a2);
                a3 = TS.MultiplyAdd(w, TS.Load(v + 3 * lanes), a3);
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
                float* v = values + (long)table[b] * blockSize * stride + i;
                int end = Math.Min(count, p0 + blockSize);
                for (int p = p0; p < end; p++, v += stride)
                {
                    a = TS.MultiplyAdd(TS.Broadcast(weights[p]), TS.Load(v), a);
                }
            }

            TS.Store(a, destination + i);
        }

        for (; i < n; i++)
        {
            float a = 0;
            for (int p0 = 0, b = 0; p0 < count; p0 += blockSize, b++)
            {
                float* v = values + (long)table[b] * blockSize * stride + i;
                int end = Math.Min(count, p0 + blockSize);
                for (int p = p0; p < end; p++, v += stride)
                {
                    a += weights[p] * *v;
                }
            }

            destination[i] = a;
        }
    }
}

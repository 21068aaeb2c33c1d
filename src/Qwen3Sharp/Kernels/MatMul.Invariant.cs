using System.Runtime.CompilerServices;

namespace Qwen3Sharp.Kernels;

public static unsafe partial class MatMul
{
    /// <summary>
    /// BF16 products of 2+ tokens under <see cref="SmallBatchBf16.Invariant"/>: every (row, token) sum is formed in the
    /// decode kernel's order (<see cref="DecodeRowsBf16{TV, TS}"/>: lane l of an "even" accumulator takes the even
    /// elements of each 2·Count block in column order, an "odd" one the odd elements, then
    /// <c>Sum(even + odd) + tail</c>), so a token's output has the same bits whatever else is in the batch.
    /// </summary>
    private struct InvariantBf16Job<TV, TS> : IPoolJob where TV : unmanaged where TS : ISimd<TV>
    {
        public ushort* Weights;   // [RowCount, ColCount]
        public float* X;          // [TokenCount, ColCount], each row permuted
        public float* Y;          // [TokenCount, RowCount]
        public int TokenCount, RowCount, ColCount, ChunkRows;
        public bool Accumulate;
        public void** Scratch;    // per worker: [ChunkRows, TokenCount, 2] vectors of partial sums

        public readonly void Execute(int index, int worker)
        {
            int r0 = index * ChunkRows;
            int r1 = Math.Min(r0 + ChunkRows, RowCount);
            InvariantRowsBf16<TV, TS>(Weights, ColCount, X, TokenCount, r0, r1, Y, RowCount, Accumulate, (TV*)Scratch[worker]);
        }
    }

    /// <summary>
    /// Rows r0..r1 for every token in the decode kernel's summation order: tokens in pairs against rows in pairs over
    /// whole rows (2 × 2 × even/odd = 8 accumulators, each bf16 vector converted once per token pair; a row pair stays
    /// in L1 for the next token pair, the item's rows in L2), the vector sums left in <paramref name="acc"/>
    /// [rows, tokenCount, 2] for one fixed horizontal sum and the scalar tail each. Whole rows measured 5–10% less CPU
    /// than 1024-column chunks at 12–64 tokens (one 1.7B layer, shared Zen 3, two interleaved runs).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void InvariantRowsBf16<TV, TS>(ushort* w, int cols, float* xp, int tokenCount, int r0, int r1, float* y,
        int rowCount, bool accumulate, TV* acc)
        where TV : unmanaged where TS : ISimd<TV>
    {
        int block = 2 * TS.Count;
        int main = cols - cols % block;
        int rows = r1 - r0;
        for (int i = 0; i < 2 * rows * tokenCount; i++)
        {
            acc[i] = TS.Zero;
        }

        ushort* w0 = w + (long)r0 * cols;
        int rowStride = 2 * tokenCount;     // acc vectors from one row to the next
        for (int t = 0; t < tokenCount; t += 2)
        {
            float* xt = xp + (long)t * cols;
            TV* at = acc + 2 * t;
            bool prefetch = t == 0;
            int r = 0;
            for (; r + 2 <= rows; r += 2)
            {
                ushort* next = prefetch && r + 4 <= rows ? w0 + (long)(r + 2) * cols : null;
                if (t + 2 <= tokenCount)
                {
                    TileBf16Split<TV, TS, Tile2, Tile2>(w0 + (long)r * cols, cols, xt, cols, 0, main, at + r * rowStride, rowStride, next);
                }
                else
                {
                    TileBf16Split<TV, TS, Tile2, Tile1>(w0 + (long)r * cols, cols, xt, cols, 0, main, at + r * rowStride, rowStride, next);
                }
            }

            if (r < rows)
            {
                if (t + 2 <= tokenCount)
                {
                    TileBf16Split<TV, TS, Tile1, Tile2>(w0 + (long)r * cols, cols, xt, cols, 0, main, at + r * rowStride, rowStride, null);
                }
                else
                {
                    TileBf16Split<TV, TS, Tile1, Tile1>(w0 + (long)r * cols, cols, xt, cols, 0, main, at + r * rowStride, rowStride, null);
                }
            }
        }

        for (int r = 0; r < rows; r++)
        {
            ushort* p = w0 + (long)r * cols;
            for (int t = 0; t < tokenCount; t++)
            {
                TV* a = acc + r * rowStride + 2 * t;
                Store(y + (long)t * rowCount + r0 + r, TS.Sum(TS.Add(a[0], a[1])) + Bf16Tail(p, xp + (long)t * cols, main, cols), accumulate);
            }
        }
    }

    /// <summary>
    /// acc[r · rowStride + 2t] (even) and acc[r · rowStride + 2t + 1] (odd) += the products of TR ≤ 2 rows and TN ≤ 2
    /// tokens over columns k0..k1: 2·TR·TN accumulators, 2·TR converted weight vectors and one activation vector (at
    /// most 13 registers). Unless <paramref name="next"/> is null, the TR rows there are prefetched over the same columns.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    internal static void TileBf16Split<TV, TS, TR, TN>(ushort* w, long ws, float* x, long xs, int k0, int k1, TV* acc, int rowStride,
        ushort* next)
        where TV : unmanaged where TS : ISimd<TV> where TR : ITileCount where TN : ITileCount
    {
        int lanes = TS.Count, block = 2 * lanes;
        ushort* w1 = w + ws;
        float* x1 = x + xs;
        TV* a1 = acc + rowStride;
        TV e00 = acc[0], o00 = acc[1], e01 = TS.Zero, o01 = TS.Zero;
        TV e10 = TS.Zero, o10 = TS.Zero, e11 = TS.Zero, o11 = TS.Zero;
        if (TN.Count > 1) { e01 = acc[2]; o01 = acc[3]; }
        if (TR.Count > 1)
        {
            e10 = a1[0]; o10 = a1[1];
            if (TN.Count > 1) { e11 = a1[2]; o11 = a1[3]; }
        }

        for (int c = k0; c < k1; c += block)
        {
            if (next != null && (c & 31) == 0)
            {
                SimdMath.Prefetch(next + c);
                if (TR.Count > 1) { SimdMath.Prefetch(next + ws + c); }
            }

            TV e1 = TS.Zero, o1 = TS.Zero;
            TS.LoadBf16Pair(w + c, out TV e0, out TV o0);
            if (TR.Count > 1) { TS.LoadBf16Pair(w1 + c, out e1, out o1); }

            TV v = TS.Load(x + c);
            e00 = TS.MultiplyAdd(e0, v, e00);
            if (TR.Count > 1) { e10 = TS.MultiplyAdd(e1, v, e10); }
            v = TS.Load(x + c + lanes);
            o00 = TS.MultiplyAdd(o0, v, o00);
            if (TR.Count > 1) { o10 = TS.MultiplyAdd(o1, v, o10); }
            if (TN.Count > 1)
            {
                v = TS.Load(x1 + c);
                e01 = TS.MultiplyAdd(e0, v, e01);
                if (TR.Count > 1) { e11 = TS.MultiplyAdd(e1, v, e11); }
                v = TS.Load(x1 + c + lanes);
                o01 = TS.MultiplyAdd(o0, v, o01);
                if (TR.Count > 1) { o11 = TS.MultiplyAdd(o1, v, o11); }
            }
        }

        acc[0] = e00; acc[1] = o00;
        if (TN.Count > 1) { acc[2] = e01; acc[3] = o01; }
        if (TR.Count > 1)
        {
            a1[0] = e10; a1[1] = o10;
            if (TN.Count > 1) { a1[2] = e11; a1[3] = o11; }
        }
    }
}

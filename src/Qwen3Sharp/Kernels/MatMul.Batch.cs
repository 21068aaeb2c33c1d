using System.Runtime.CompilerServices;

namespace Qwen3Sharp.Kernels;

/// <summary>A compile-time count (rows or tokens of a register tile): the JIT specializes each struct and drops dead code.</summary>
internal interface ITileCount
{
    static abstract int Count { get; }
}

internal readonly struct Tile1 : ITileCount { public static int Count => 1; }
internal readonly struct Tile2 : ITileCount { public static int Count => 2; }
internal readonly struct Tile3 : ITileCount { public static int Count => 3; }
internal readonly struct Tile4 : ITileCount { public static int Count => 4; }
internal readonly struct Tile5 : ITileCount { public static int Count => 5; }

public static unsafe partial class MatMul
{
    /// <summary>Columns per chunk of the tiled small-batch kernel: every token's slice (T · 1 KB) stays in L1 while the rows pass.</summary>
    internal const int TiledColumns = 1024;

    /// <summary>Fewest tokens <see cref="BatchKernel.Tiled"/> sends to the tiles: two keep the pair kernel (4 rows × 2 tokens, 8 accumulators).</summary>
    internal const int TiledMinTokens = 3;

    /// <summary>From this many tokens on, <see cref="BatchKernel.Tiled"/> leaves the product to the prefill panels.</summary>
    internal const int TiledMaxTokens = 32;

    /// <summary>Rows per work item of the tiled small-batch kernel (a multiple of both tile heights, 2 and 3).</summary>
    internal const int TiledRowBlock = 24;

    private struct TiledBf16Job<TV, TS> : IPoolJob where TV : unmanaged where TS : ISimd<TV>
    {
        public ushort* Weights;   // [RowCount, ColCount]
        public float* X;          // [TokenCount, ColCount], each row permuted
        public float* Y;          // [TokenCount, RowCount]
        public int TokenCount, RowCount, ColCount, ChunkRows;
        public bool Accumulate;
        public void** Scratch;    // per worker: [ChunkRows, TokenCount] vectors of partial sums

        public readonly void Execute(int index, int worker)
        {
            int r0 = index * ChunkRows;
            int r1 = Math.Min(r0 + ChunkRows, RowCount);
            TiledRowsBf16<TV, TS>(Weights, ColCount, X, TokenCount, r0, r1, Y, RowCount, Accumulate, (TV*)Scratch[worker]);
        }
    }

    /// <summary>
    /// A small batch (batched decode) straight from bf16, each weight vector converted once per token group: rows
    /// r0..r1 in column chunks of <see cref="TiledColumns"/>; per chunk and group of 3..5 tokens (their activation
    /// slices stay in L1) a register tile of rows × tokens (dot-product form, weights along the vector, so no lane idles
    /// whatever the token count; 2×4, 2×5 or 3×3, at least 8 accumulators to cover the FMA latency) passes over the
    /// chunk's rows, which stay in L2 between token groups. Vector partial sums are parked in <paramref name="acc"/>
    /// between chunks and summed horizontally once at the end.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void TiledRowsBf16<TV, TS>(ushort* w, int cols, float* xp, int tokenCount, int r0, int r1, float* y,
        int rowCount, bool accumulate, TV* acc)
        where TV : unmanaged where TS : ISimd<TV>
    {
        int block = 2 * TS.Count;
        int main = cols - cols % block;
        int rows = r1 - r0;
        for (int i = 0; i < rows * tokenCount; i++)
        {
            acc[i] = TS.Zero;
        }

        ushort* w0 = w + (long)r0 * cols;
        for (int k0 = 0; k0 < main; k0 += TiledColumns)
        {
            int k1 = Math.Min(k0 + TiledColumns, main);
            int nextChunk = k1 < main ? k1 - k0 : 0;

            for (int t = 0; t < tokenCount;)
            {
                int left = tokenCount - t;
                int tn = left switch { <= 5 => left, 6 => 3, 7 or 8 => 4, _ => 5 };   // groups of 3..5 tokens where possible
                float* xt = xp + (long)t * cols;
                TV* at = acc + t;
                switch (tn)
                {
                    case 5: TileRows<TV, TS, Tile2, Tile5>(w0, cols, xt, rows, k0, k1, at, tokenCount, t == 0, nextChunk); break;
                    case 4: TileRows<TV, TS, Tile2, Tile4>(w0, cols, xt, rows, k0, k1, at, tokenCount, t == 0, nextChunk); break;
                    case 3: TileRows<TV, TS, Tile3, Tile3>(w0, cols, xt, rows, k0, k1, at, tokenCount, t == 0, nextChunk); break;
                    case 2: TileRows<TV, TS, Tile3, Tile2>(w0, cols, xt, rows, k0, k1, at, tokenCount, t == 0, nextChunk); break;
                    default: TileRows<TV, TS, Tile3, Tile1>(w0, cols, xt, rows, k0, k1, at, tokenCount, t == 0, nextChunk); break;
                }

                t += tn;
            }
        }

        for (int r = 0; r < rows; r++)
        {
            ushort* p = w0 + (long)r * cols;
            for (int t = 0; t < tokenCount; t++)
            {
                float* xt = xp + (long)t * cols;
                Store(y + (long)t * rowCount + r0 + r, TS.Sum(acc[r * tokenCount + t]) + Bf16Tail(p, xt, main, cols), accumulate);
            }
        }
    }

    /// <summary>
    /// TN tokens against every row of the item, TR rows at a time, the last rows one by one. With
    /// <paramref name="prefetch"/> (the first token group), each tile prefetches the rows the next tile reads: the next
    /// row group of the chunk, or the first rows of the next chunk (<paramref name="nextChunk"/> columns on).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void TileRows<TV, TS, TR, TN>(ushort* w, int cols, float* x, int rows, int k0, int k1, TV* acc, int accStride,
        bool prefetch, int nextChunk)
        where TV : unmanaged where TS : ISimd<TV> where TR : ITileCount where TN : ITileCount
    {
        int r = 0;
        if (TS.WideTile && TN.Count >= 3 && WideTiles)
        {
            // 32 vector registers: 4 rows × 3..5 tokens (up to 20 accumulators, 8 converted weight vectors, one activation)
            for (; r + 4 <= rows; r += 4)
            {
                ushort* next = !prefetch ? null : r + 8 <= rows ? w + (long)(r + 4) * cols : nextChunk > 0 ? w + nextChunk : null;
                TileBf16x4<TV, TS, TN>(w + (long)r * cols, cols, x, cols, k0, k1, acc + r * accStride, accStride, next);
            }
        }

        for (; r + TR.Count <= rows; r += TR.Count)
        {
            ushort* next = !prefetch ? null : r + 2 * TR.Count <= rows ? w + (long)(r + TR.Count) * cols : nextChunk > 0 ? w + nextChunk : null;
            TileBf16<TV, TS, TR, TN>(w + (long)r * cols, cols, x, cols, k0, k1, acc + r * accStride, accStride, next);
        }

        for (; r < rows; r++)
        {
            TileBf16<TV, TS, Tile1, TN>(w + (long)r * cols, cols, x, cols, k0, k1, acc + r * accStride, accStride, null);
        }
    }

    /// <summary>
    /// acc[r · accStride + t] += w[r, k0..k1) · x[t, k0..k1) for TR ≤ 3 rows and TN ≤ 4 tokens, or 2 × 5 (TR·TN
    /// accumulators, 2·TR converted weight vectors and one activation vector: at most 16 registers). Unless
    /// <paramref name="next"/> is null, the TR rows there are prefetched over the same columns, a line per row every other block.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    internal static void TileBf16<TV, TS, TR, TN>(ushort* w, long ws, float* x, long xs, int k0, int k1, TV* acc, int accStride,
        ushort* next)
        where TV : unmanaged where TS : ISimd<TV> where TR : ITileCount where TN : ITileCount
    {
        int lanes = TS.Count, block = 2 * lanes;
        ushort* w1 = w + ws, w2 = w + 2 * ws;
        float* x1 = x + xs, x2 = x + 2 * xs, x3 = x + 3 * xs, x4 = x + 4 * xs;
        TV* a1 = acc + accStride, a2 = acc + 2 * accStride;
        TV c00 = acc[0], c01 = TS.Zero, c02 = TS.Zero, c03 = TS.Zero;
        TV c10 = TS.Zero, c11 = TS.Zero, c12 = TS.Zero, c13 = TS.Zero;
        TV c20 = TS.Zero, c21 = TS.Zero, c22 = TS.Zero, c23 = TS.Zero;
        TV c04 = TS.Zero, c14 = TS.Zero;
        if (TN.Count > 1) { c01 = acc[1]; }
        if (TN.Count > 2) { c02 = acc[2]; }
        if (TN.Count > 3) { c03 = acc[3]; }
        if (TN.Count > 4) { c04 = acc[4]; }
        if (TR.Count > 1)
        {
            c10 = a1[0];
            if (TN.Count > 1) { c11 = a1[1]; }
            if (TN.Count > 2) { c12 = a1[2]; }
            if (TN.Count > 3) { c13 = a1[3]; }
            if (TN.Count > 4) { c14 = a1[4]; }
        }

        if (TR.Count > 2)
        {
            c20 = a2[0];
            if (TN.Count > 1) { c21 = a2[1]; }
            if (TN.Count > 2) { c22 = a2[2]; }
            if (TN.Count > 3) { c23 = a2[3]; }
        }

        for (int c = k0; c < k1; c += block)
        {
            if (next != null && (c & 31) == 0)
            {
                SimdMath.Prefetch(next + c);
                if (TR.Count > 1) { SimdMath.Prefetch(next + ws + c); }
                if (TR.Count > 2) { SimdMath.Prefetch(next + 2 * ws + c); }
            }

            TV e1 = TS.Zero, o1 = TS.Zero, e2 = TS.Zero, o2 = TS.Zero;
            TS.LoadBf16Pair(w + c, out TV e0, out TV o0);
            if (TR.Count > 1) { TS.LoadBf16Pair(w1 + c, out e1, out o1); }
            if (TR.Count > 2) { TS.LoadBf16Pair(w2 + c, out e2, out o2); }

            TV v = TS.Load(x + c);
            c00 = TS.MultiplyAdd(e0, v, c00);
            if (TR.Count > 1) { c10 = TS.MultiplyAdd(e1, v, c10); }
            if (TR.Count > 2) { c20 = TS.MultiplyAdd(e2, v, c20); }
            v = TS.Load(x + c + lanes);
            c00 = TS.MultiplyAdd(o0, v, c00);
            if (TR.Count > 1) { c10 = TS.MultiplyAdd(o1, v, c10); }
            if (TR.Count > 2) { c20 = TS.MultiplyAdd(o2, v, c20); }
            if (TN.Count > 1)
            {
                v = TS.Load(x1 + c);
                c01 = TS.MultiplyAdd(e0, v, c01);
                if (TR.Count > 1) { c11 = TS.MultiplyAdd(e1, v, c11); }
                if (TR.Count > 2) { c21 = TS.MultiplyAdd(e2, v, c21); }
                v = TS.Load(x1 + c + lanes);
                c01 = TS.MultiplyAdd(o0, v, c01);
                if (TR.Count > 1) { c11 = TS.MultiplyAdd(o1, v, c11); }
                if (TR.Count > 2) { c21 = TS.MultiplyAdd(o2, v, c21); }
            }

            if (TN.Count > 2)
            {
                v = TS.Load(x2 + c);
                c02 = TS.MultiplyAdd(e0, v, c02);
                if (TR.Count > 1) { c12 = TS.MultiplyAdd(e1, v, c12); }
                if (TR.Count > 2) { c22 = TS.MultiplyAdd(e2, v, c22); }
                v = TS.Load(x2 + c + lanes);
                c02 = TS.MultiplyAdd(o0, v, c02);
                if (TR.Count > 1) { c12 = TS.MultiplyAdd(o1, v, c12); }
                if (TR.Count > 2) { c22 = TS.MultiplyAdd(o2, v, c22); }
            }

            if (TN.Count > 3)
            {
                v = TS.Load(x3 + c);
                c03 = TS.MultiplyAdd(e0, v, c03);
                if (TR.Count > 1) { c13 = TS.MultiplyAdd(e1, v, c13); }
                if (TR.Count > 2) { c23 = TS.MultiplyAdd(e2, v, c23); }
                v = TS.Load(x3 + c + lanes);
                c03 = TS.MultiplyAdd(o0, v, c03);
                if (TR.Count > 1) { c13 = TS.MultiplyAdd(o1, v, c13); }
                if (TR.Count > 2) { c23 = TS.MultiplyAdd(o2, v, c23); }
            }

            if (TN.Count > 4)
            {
                v = TS.Load(x4 + c);
                c04 = TS.MultiplyAdd(e0, v, c04);
                if (TR.Count > 1) { c14 = TS.MultiplyAdd(e1, v, c14); }
                v = TS.Load(x4 + c + lanes);
                c04 = TS.MultiplyAdd(o0, v, c04);
                if (TR.Count > 1) { c14 = TS.MultiplyAdd(o1, v, c14); }
            }
        }

        acc[0] = c00;
        if (TN.Count > 1) { acc[1] = c01; }
        if (TN.Count > 2) { acc[2] = c02; }
        if (TN.Count > 3) { acc[3] = c03; }
        if (TN.Count > 4) { acc[4] = c04; }
        if (TR.Count > 1)
        {
            a1[0] = c10;
            if (TN.Count > 1) { a1[1] = c11; }
            if (TN.Count > 2) { a1[2] = c12; }
            if (TN.Count > 3) { a1[3] = c13; }
            if (TN.Count > 4) { a1[4] = c14; }
        }

        if (TR.Count > 2)
        {
            a2[0] = c20;
            if (TN.Count > 1) { a2[1] = c21; }
            if (TN.Count > 2) { a2[2] = c22; }
            if (TN.Count > 3) { a2[3] = c23; }
        }
    }

    /// <summary>Bench A/B switch for the 4-row tiles on 32-register machines (<see cref="TileBf16x4"/>).</summary>
    internal static bool WideTiles = true;

    /// <summary>
    /// <see cref="TileBf16"/> with 4 rows and TN = 3..5 tokens, for 32-register machines (AVX-512): each weight vector
    /// converted once serves TN tokens, each activation vector 4 rows. Every (row, token) sum takes the same steps in the
    /// same order as in the narrower tiles, so the bits are theirs.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    internal static void TileBf16x4<TV, TS, TN>(ushort* w, long ws, float* x, long xs, int k0, int k1, TV* acc, int accStride, ushort* next)
        where TV : unmanaged where TS : ISimd<TV> where TN : ITileCount
    {
        int lanes = TS.Count, block = 2 * lanes;
        ushort* w1 = w + ws, w2 = w + 2 * ws, w3 = w + 3 * ws;
        float* x1 = x + xs, x2 = x + 2 * xs, x3 = x + 3 * xs, x4 = x + 4 * xs;
        TV* a1 = acc + accStride, a2 = acc + 2 * accStride, a3 = acc + 3 * accStride;
        TV c00 = acc[0], c01 = acc[1], c02 = acc[2], c03 = TS.Zero, c04 = TS.Zero;
        TV c10 = a1[0], c11 = a1[1], c12 = a1[2], c13 = TS.Zero, c14 = TS.Zero;
        TV c20 = a2[0], c21 = a2[1], c22 = a2[2], c23 = TS.Zero, c24 = TS.Zero;
        TV c30 = a3[0], c31 = a3[1], c32 = a3[2], c33 = TS.Zero, c34 = TS.Zero;
        if (TN.Count > 3) { c03 = acc[3]; c13 = a1[3]; c23 = a2[3]; c33 = a3[3]; }
        if (TN.Count > 4) { c04 = acc[4]; c14 = a1[4]; c24 = a2[4]; c34 = a3[4]; }
        for (int c = k0; c < k1; c += block)
        {
            if (next != null && (c & 31) == 0)
            {
                SimdMath.Prefetch(next + c);
                SimdMath.Prefetch(next + ws + c);
                SimdMath.Prefetch(next + 2 * ws + c);
                SimdMath.Prefetch(next + 3 * ws + c);
            }

            TS.LoadBf16Pair(w + c, out TV e0, out TV o0);
            TS.LoadBf16Pair(w1 + c, out TV e1, out TV o1);
            TS.LoadBf16Pair(w2 + c, out TV e2, out TV o2);
            TS.LoadBf16Pair(w3 + c, out TV e3, out TV o3);
            TV v = TS.Load(x + c);
            c00 = TS.MultiplyAdd(e0, v, c00); c10 = TS.MultiplyAdd(e1, v, c10); c20 = TS.MultiplyAdd(e2, v, c20); c30 = TS.MultiplyAdd(e3, v, c30);
            v = TS.Load(x + c + lanes);
            c00 = TS.MultiplyAdd(o0, v, c00); c10 = TS.MultiplyAdd(o1, v, c10); c20 = TS.MultiplyAdd(o2, v, c20); c30 = TS.MultiplyAdd(o3, v, c30);
            v = TS.Load(x1 + c);
            c01 = TS.MultiplyAdd(e0, v, c01); c11 = TS.MultiplyAdd(e1, v, c11); c21 = TS.MultiplyAdd(e2, v, c21); c31 = TS.MultiplyAdd(e3, v, c31);
            v = TS.Load(x1 + c + lanes);
            c01 = TS.MultiplyAdd(o0, v, c01); c11 = TS.MultiplyAdd(o1, v, c11); c21 = TS.MultiplyAdd(o2, v, c21); c31 = TS.MultiplyAdd(o3, v, c31);
            v = TS.Load(x2 + c);
            c02 = TS.MultiplyAdd(e0, v, c02); c12 = TS.MultiplyAdd(e1, v, c12); c22 = TS.MultiplyAdd(e2, v, c22); c32 = TS.MultiplyAdd(e3, v, c32);
            v = TS.Load(x2 + c + lanes);
            c02 = TS.MultiplyAdd(o0, v, c02); c12 = TS.MultiplyAdd(o1, v, c12); c22 = TS.MultiplyAdd(o2, v, c22); c32 = TS.MultiplyAdd(o3, v, c32);
            if (TN.Count > 3)
            {
                v = TS.Load(x3 + c);
                c03 = TS.MultiplyAdd(e0, v, c03); c13 = TS.MultiplyAdd(e1, v, c13); c23 = TS.MultiplyAdd(e2, v, c23); c33 = TS.MultiplyAdd(e3, v, c33);
                v = TS.Load(x3 + c + lanes);
                c03 = TS.MultiplyAdd(o0, v, c03); c13 = TS.MultiplyAdd(o1, v, c13); c23 = TS.MultiplyAdd(o2, v, c23); c33 = TS.MultiplyAdd(o3, v, c33);
            }

            if (TN.Count > 4)
            {
                v = TS.Load(x4 + c);
                c04 = TS.MultiplyAdd(e0, v, c04); c14 = TS.MultiplyAdd(e1, v, c14); c24 = TS.MultiplyAdd(e2, v, c24); c34 = TS.MultiplyAdd(e3, v, c34);
                v = TS.Load(x4 + c + lanes);
                c04 = TS.MultiplyAdd(o0, v, c04); c14 = TS.MultiplyAdd(o1, v, c14); c24 = TS.MultiplyAdd(o2, v, c24); c34 = TS.MultiplyAdd(o3, v, c34);
            }
        }

        acc[0] = c00; acc[1] = c01; acc[2] = c02;
        a1[0] = c10; a1[1] = c11; a1[2] = c12;
        a2[0] = c20; a2[1] = c21; a2[2] = c22;
        a3[0] = c30; a3[1] = c31; a3[2] = c32;
        if (TN.Count > 3) { acc[3] = c03; a1[3] = c13; a2[3] = c23; a3[3] = c33; }
        if (TN.Count > 4) { acc[4] = c04; a1[4] = c14; a2[4] = c24; a3[4] = c34; }
    }
}

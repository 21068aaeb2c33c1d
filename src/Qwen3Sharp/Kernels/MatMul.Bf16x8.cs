using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Kernels;

/// <summary>
/// BF16 matrices in groups of 8 interleaved rows (<see cref="Tensors.DType.BF16x8"/>): per group, for every column pair
/// (2p, 2p + 1) one 32-byte vector whose 32-bit lane i is row i's two BF16 values (column 2p in the low half). One
/// shift and one mask give the 8 rows' float32 weights of both columns, and a token's activation is broadcast, so a
/// product of T tokens does T broadcasts and 2T FMAs per 8 rows and column pair, with no horizontal sums.
/// </summary>
/// <remarks>
/// <para>Every (row, token) sum has one order, whatever the token count, tile or thread: one fused chain over the
/// columns in order (k = 0, 1, 2, ...) from zero, in blocks of <see cref="PanelColumnBlock"/> columns, each block's sum
/// added to y in turn (the first stored, or added with accumulate). That is the order of the prefill panels
/// (<see cref="PanelRows{TV, TS}"/>, which convert the same groups to float32 first), so BF16 products are batch
/// invariant by default: a token's outputs are bit-identical alone, beside 7 others, or in a prefill chunk.</para>
/// <para>Vector256 only (AVX2 + FMA, also on AVX-512 machines); elsewhere the load keeps the row layout.</para>
/// </remarks>
public static unsafe partial class MatMul
{
    /// <summary>Rows per <see cref="Tensors.DType.BF16x8"/> group.</summary>
    internal const int Bf16GroupRows = 8;

    /// <summary>Whether loads repack BF16 matrices into <see cref="Tensors.DType.BF16x8"/> on this machine (AVX2 and FMA).</summary>
    internal static bool Bf16x8Supported => Avx2.IsSupported && Fma.IsSupported;

    /// <summary>Elements (ushorts) of a repacked matrix: whole groups of 8 rows (the last padded with zero rows).</summary>
    internal static long Bf16x8Elements(int rowCount, int cols) => (long)((rowCount + 7) / 8) * 8 * cols;

    /// <summary>
    /// Repacks rows [r0, r0 + count) of a row-major BF16 matrix (r0 a multiple of 8, columns even) into the groups
    /// starting at <paramref name="target"/> (group r0 / 8). Rows past <paramref name="rowCount"/> in the last group are zero.
    /// </summary>
    internal static void RepackBf16x8(ushort* source, int rowCount, int cols, int r0, int count, ushort* target)
    {
        int pairs = cols / 2;
        for (int g = r0; g < r0 + count; g += 8)
        {
            uint* dst = (uint*)(target + (long)(g - r0) * cols);
            for (int i = 0; i < 8; i++)
            {
                int r = g + i;
                if (r >= rowCount)
                {
                    for (int p = 0; p < pairs; p++)
                    {
                        dst[8 * p + i] = 0;
                    }

                    continue;
                }

                uint* src = (uint*)(source + (long)r * cols);
                for (int p = 0; p < pairs; p++)
                {
                    dst[8 * p + i] = src[p];
                }
            }
        }
    }

    /// <summary>Element (row, col) of a <see cref="Tensors.DType.BF16x8"/> matrix, as BF16 bits.</summary>
    internal static ushort Bf16x8Element(ushort* data, int cols, int row, int col)
        => data[(long)(row / 8) * 8 * cols + (col / 2) * 16 + (row % 8) * 2 + (col & 1)];

    /// <summary>Row <paramref name="row"/> of a <see cref="Tensors.DType.BF16x8"/> matrix as float32 (embedding lookups of a tied output head).</summary>
    internal static void Bf16x8Row(ushort* data, int cols, int row, float* destination)
    {
        uint* pairs = (uint*)(data + (long)(row / 8) * 8 * cols) + row % 8;
        for (int p = 0; p < cols / 2; p++)
        {
            uint v = pairs[8 * p];
            destination[2 * p] = BitConverter.UInt32BitsToSingle(v << 16);
            destination[2 * p + 1] = BitConverter.UInt32BitsToSingle(v & 0xFFFF0000u);
        }
    }

    /// <summary>Groups per work item: 8 (64 rows, a 256 KiB stream at 2,048 columns) while every thread still gets 4 items.</summary>
    private static int Bf16x8ItemGroups(int groups, int threads)
    {
        int item = 8;
        while (item > 1 && groups < item * 4 * threads)
        {
            item /= 2;
        }

        return item;
    }

    /// <summary>
    /// y[t, r] = (or +=) Σ_k w[r, k]·x[t, k] for a <see cref="Tensors.DType.BF16x8"/> matrix, any token count, in the one
    /// order of this file's remarks (the scalar twin without AVX2 + FMA, with the same bits).
    /// </summary>
    /// <param name="simd">Tests: false runs the scalar twin on any machine; null takes the vector kernels where AVX2 + FMA exist.</param>
    internal static void RunBf16x8(WorkerPool pool, ReadOnlySpan<float> x, int tokenCount, in WeightView w, Span<float> destination, bool accumulate,
        bool? simd = null)
    {
        int groups = (w.RowCount + 7) / 8, item = Bf16x8ItemGroups(groups, pool.ThreadCount);
        fixed (float* px = x, py = destination)
        {
            var job = new Bf16x8Job
            {
                Weights = (ushort*)w.Data,
                X = px,
                Y = py,
                TokenCount = tokenCount,
                RowCount = w.RowCount,
                ColCount = w.ColCount,
                ItemGroups = item,
                Accumulate = accumulate,
                Simd = (simd ?? true) && Bf16x8Supported,
            };
            pool.Run(ref job, (groups + item - 1) / item);
        }
    }

    private struct Bf16x8Job : IPoolJob
    {
        public ushort* Weights;   // BF16x8 groups
        public float* X;          // [TokenCount, ColCount]
        public float* Y;          // [TokenCount, RowCount]
        public int TokenCount, RowCount, ColCount, ItemGroups;
        public bool Accumulate, Simd;

        public readonly void Execute(int index, int worker)
        {
            int groups = (RowCount + 7) / 8, g0 = index * ItemGroups, end = Math.Min(g0 + ItemGroups, groups);
            bool partial = RowCount % 8 != 0 && end == groups;   // the padded last group: through a spill
            int g1 = partial ? end - 1 : end;
            for (int k0 = 0; k0 < ColCount; k0 += PanelColumnBlock)
            {
                int kn = Math.Min(PanelColumnBlock, ColCount - k0);
                bool add = Accumulate || k0 > 0;
                if (!Simd)
                {
                    Bf16x8Scalar(Weights, X, TokenCount, ColCount, k0, kn, g0, g1, Y, RowCount, add);
                }
                else if (TokenCount == 1)
                {
                    int g = g0;
                    for (; g + 4 <= g1; g += 4)
                    {
                        Bf16x8G4(Weights + (long)g * 8 * ColCount, ColCount, X, k0, kn, Y + g * 8, add);
                    }

                    for (; g + 2 <= g1; g += 2)
                    {
                        ushort* a = Weights + (long)g * 8 * ColCount;
                        Bf16x8G2<Tok1>(a, a + 8L * ColCount, X, ColCount, k0, kn, Y + g * 8, RowCount, add);
                    }

                    if (g < g1)
                    {
                        Bf16x8G1<Tok1>(Weights + (long)g * 8 * ColCount, X, ColCount, k0, kn, Y + g * 8, RowCount, add);
                    }
                }
                else
                {
                    Bf16x8Tiles(Weights, X, TokenCount, ColCount, k0, kn, g0, g1, Y, RowCount, add);
                }

                if (partial)
                {
                    PartialGroup(g1, k0, kn, add);
                }
            }
        }

        /// <summary>The last group, short of 8 rows: its 8 sums per token into a spill, the valid rows to y.</summary>
        private readonly void PartialGroup(int g, int k0, int kn, bool add)
        {
            float* spill = stackalloc float[8];
            ushort* a = Weights + (long)g * 8 * ColCount;
            int rows = RowCount - g * 8;
            for (int t = 0; t < TokenCount; t++)
            {
                float* xt = X + (long)t * ColCount;
                if (Simd)
                {
                    Bf16x8G1<Tok1>(a, xt, ColCount, k0, kn, spill, 8, add: false);
                }
                else
                {
                    Bf16x8Scalar(a, xt, 1, ColCount, k0, kn, 0, 1, spill, 8, add: false);
                }

                float* y = Y + (long)t * RowCount + g * 8;
                for (int i = 0; i < rows; i++)
                {
                    y[i] = add ? y[i] + spill[i] : spill[i];
                }
            }
        }
    }

    /// <summary>Groups [g0, g1) × every token: pairs of groups in balanced tiles of up to 4 tokens, a last odd group alone.</summary>
    private static void Bf16x8Tiles(ushort* w, float* x, int tokenCount, int cols, int k0, int kn, int g0, int g1, float* y, int ys, bool add)
    {
        int tiles = (tokenCount + 3) / 4;
        for (int g = g0; g < g1; g += 2)
        {
            ushort* a = w + (long)g * 8 * cols;
            bool pair = g + 1 < g1;
            for (int i = 0, t0 = 0; i < tiles; i++)
            {
                int n = (tokenCount - t0 + tiles - i - 1) / (tiles - i);
                float* xt = x + (long)t0 * cols, yt = y + (long)t0 * ys + g * 8;
                if (pair)
                {
                    switch (n)
                    {
                        case 1: Bf16x8G2<Tok1>(a, a + 8L * cols, xt, cols, k0, kn, yt, ys, add); break;
                        case 2: Bf16x8G2<Tok2>(a, a + 8L * cols, xt, cols, k0, kn, yt, ys, add); break;
                        case 3: Bf16x8G2<Tok3>(a, a + 8L * cols, xt, cols, k0, kn, yt, ys, add); break;
                        default: Bf16x8G2<Tok4>(a, a + 8L * cols, xt, cols, k0, kn, yt, ys, add); break;
                    }
                }
                else
                {
                    switch (n)
                    {
                        case 1: Bf16x8G1<Tok1>(a, xt, cols, k0, kn, yt, ys, add); break;
                        case 2: Bf16x8G1<Tok2>(a, xt, cols, k0, kn, yt, ys, add); break;
                        case 3: Bf16x8G1<Tok3>(a, xt, cols, k0, kn, yt, ys, add); break;
                        default: Bf16x8G1<Tok4>(a, xt, cols, k0, kn, yt, ys, add); break;
                    }
                }

                t0 += n;
            }
        }
    }

    /// <summary>
    /// The scalar twin: groups [g0, g1) (whole groups; y rows g·8..g·8+7) × tokens over columns [k0, k0 + kn), each
    /// sum one fused chain in column order, as the vector kernels form it.
    /// </summary>
    internal static void Bf16x8Scalar(ushort* w, float* x, int tokenCount, int cols, int k0, int kn, int g0, int g1, float* y, int ys, bool add)
    {
        for (int g = g0; g < g1; g++)
        {
            uint* pairs = (uint*)(w + (long)g * 8 * cols);
            for (int t = 0; t < tokenCount; t++)
            {
                float* xt = x + (long)t * cols;
                for (int i = 0; i < 8; i++)
                {
                    float acc = 0;
                    for (int k = k0; k < k0 + kn; k += 2)
                    {
                        uint v = pairs[4 * k + i];
                        acc = MathF.FusedMultiplyAdd(BitConverter.UInt32BitsToSingle(v << 16), xt[k], acc);
                        acc = MathF.FusedMultiplyAdd(BitConverter.UInt32BitsToSingle(v & 0xFFFF0000u), xt[k + 1], acc);
                    }

                    float* yi = y + (long)t * ys + g * 8 + i;
                    *yi = add ? *yi + acc : acc;
                }
            }
        }
    }

    internal interface ITokenCount
    {
        static abstract int N { get; }
    }

    internal struct Tok1 : ITokenCount { public static int N => 1; }
    internal struct Tok2 : ITokenCount { public static int N => 2; }
    internal struct Tok3 : ITokenCount { public static int N => 3; }
    internal struct Tok4 : ITokenCount { public static int N => 4; }
    internal struct Tok5 : ITokenCount { public static int N => 5; }
    internal struct Tok6 : ITokenCount { public static int N => 6; }
    internal struct Tok7 : ITokenCount { public static int N => 7; }
    internal struct Tok8 : ITokenCount { public static int N => 8; }

    /// <summary>One group (8 rows) × N tokens (up to 8) over columns [k0, k0 + kn).</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    internal static void Bf16x8G1<TN>(ushort* g0, float* x, int cols, int k0, int kn, float* y, int ys, bool add)
        where TN : struct, ITokenCount
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
        Vector256<uint> mask = Vector256.Create(0xFFFF0000u);
        uint* w0 = (uint*)g0 + 4 * k0, end = w0 + 4 * kn;
        float* x0 = x + k0;
        long xs = cols;
        for (; w0 < end; w0 += 8, x0 += 2)
        {
            Vector256<uint> v0 = Avx.LoadVector256(w0);
            Vector256<float> e0 = Avx2.ShiftLeftLogical(v0, 16).AsSingle();
            a0 = Fma.MultiplyAdd(e0, Vector256.Create(x0[0]), a0);
            if (TN.N > 1) { a1 = Fma.MultiplyAdd(e0, Vector256.Create(x0[xs]), a1); }
            if (TN.N > 2) { a2 = Fma.MultiplyAdd(e0, Vector256.Create(x0[2 * xs]), a2); }
            if (TN.N > 3) { a3 = Fma.MultiplyAdd(e0, Vector256.Create(x0[3 * xs]), a3); }
            if (TN.N > 4) { a4 = Fma.MultiplyAdd(e0, Vector256.Create(x0[4 * xs]), a4); }
            if (TN.N > 5) { a5 = Fma.MultiplyAdd(e0, Vector256.Create(x0[5 * xs]), a5); }
            if (TN.N > 6) { a6 = Fma.MultiplyAdd(e0, Vector256.Create(x0[6 * xs]), a6); }
            if (TN.N > 7) { a7 = Fma.MultiplyAdd(e0, Vector256.Create(x0[7 * xs]), a7); }
            Vector256<float> o0 = Avx2.And(v0, mask).AsSingle();
            a0 = Fma.MultiplyAdd(o0, Vector256.Create(x0[1]), a0);
            if (TN.N > 1) { a1 = Fma.MultiplyAdd(o0, Vector256.Create(x0[xs + 1]), a1); }
            if (TN.N > 2) { a2 = Fma.MultiplyAdd(o0, Vector256.Create(x0[2 * xs + 1]), a2); }
            if (TN.N > 3) { a3 = Fma.MultiplyAdd(o0, Vector256.Create(x0[3 * xs + 1]), a3); }
            if (TN.N > 4) { a4 = Fma.MultiplyAdd(o0, Vector256.Create(x0[4 * xs + 1]), a4); }
            if (TN.N > 5) { a5 = Fma.MultiplyAdd(o0, Vector256.Create(x0[5 * xs + 1]), a5); }
            if (TN.N > 6) { a6 = Fma.MultiplyAdd(o0, Vector256.Create(x0[6 * xs + 1]), a6); }
            if (TN.N > 7) { a7 = Fma.MultiplyAdd(o0, Vector256.Create(x0[7 * xs + 1]), a7); }
        }

        StoreOne(y, a0, add);
        if (TN.N > 1) { StoreOne(y + ys, a1, add); }
        if (TN.N > 2) { StoreOne(y + 2L * ys, a2, add); }
        if (TN.N > 3) { StoreOne(y + 3L * ys, a3, add); }
        if (TN.N > 4) { StoreOne(y + 4L * ys, a4, add); }
        if (TN.N > 5) { StoreOne(y + 5L * ys, a5, add); }
        if (TN.N > 6) { StoreOne(y + 6L * ys, a6, add); }
        if (TN.N > 7) { StoreOne(y + 7L * ys, a7, add); }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreOne(float* y, Vector256<float> a, bool add)
    {
        if (add)
        {
            a = Avx.Add(Avx.LoadVector256(y), a);
        }

        Avx.Store(y, a);
    }

    /// <summary>
    /// Two groups (16 rows) × N tokens over columns [k0, k0 + kn): y[t, 16 rows] = (or +=) the sums. x is [tokens, cols].
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    internal static void Bf16x8G2<TN>(ushort* g0, ushort* g1, float* x, int cols, int k0, int kn, float* y, int ys, bool add)
        where TN : struct, ITokenCount
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default;
        Vector256<float> b0 = default, b1 = default, b2 = default, b3 = default, b4 = default, b5 = default;
        Vector256<uint> mask = Vector256.Create(0xFFFF0000u);
        uint* w0 = (uint*)g0 + 4 * k0, w1 = (uint*)g1 + 4 * k0, end = w0 + 4 * kn;
        float* x0 = x + k0;
        long xs = cols;
        for (; w0 < end; w0 += 8, w1 += 8, x0 += 2)
        {
            Vector256<uint> v0 = Avx.LoadVector256(w0), v1 = Avx.LoadVector256(w1);
            Vector256<float> e0 = Avx2.ShiftLeftLogical(v0, 16).AsSingle(), e1 = Avx2.ShiftLeftLogical(v1, 16).AsSingle();
            Vector256<float> o0 = Avx2.And(v0, mask).AsSingle(), o1 = Avx2.And(v1, mask).AsSingle();
            Vector256<float> s = Vector256.Create(x0[0]);
            a0 = Fma.MultiplyAdd(e0, s, a0); b0 = Fma.MultiplyAdd(e1, s, b0);
            if (TN.N > 1) { s = Vector256.Create(x0[xs]); a1 = Fma.MultiplyAdd(e0, s, a1); b1 = Fma.MultiplyAdd(e1, s, b1); }
            if (TN.N > 2) { s = Vector256.Create(x0[2 * xs]); a2 = Fma.MultiplyAdd(e0, s, a2); b2 = Fma.MultiplyAdd(e1, s, b2); }
            if (TN.N > 3) { s = Vector256.Create(x0[3 * xs]); a3 = Fma.MultiplyAdd(e0, s, a3); b3 = Fma.MultiplyAdd(e1, s, b3); }
            if (TN.N > 4) { s = Vector256.Create(x0[4 * xs]); a4 = Fma.MultiplyAdd(e0, s, a4); b4 = Fma.MultiplyAdd(e1, s, b4); }
            if (TN.N > 5) { s = Vector256.Create(x0[5 * xs]); a5 = Fma.MultiplyAdd(e0, s, a5); b5 = Fma.MultiplyAdd(e1, s, b5); }
            s = Vector256.Create(x0[1]);
            a0 = Fma.MultiplyAdd(o0, s, a0); b0 = Fma.MultiplyAdd(o1, s, b0);
            if (TN.N > 1) { s = Vector256.Create(x0[xs + 1]); a1 = Fma.MultiplyAdd(o0, s, a1); b1 = Fma.MultiplyAdd(o1, s, b1); }
            if (TN.N > 2) { s = Vector256.Create(x0[2 * xs + 1]); a2 = Fma.MultiplyAdd(o0, s, a2); b2 = Fma.MultiplyAdd(o1, s, b2); }
            if (TN.N > 3) { s = Vector256.Create(x0[3 * xs + 1]); a3 = Fma.MultiplyAdd(o0, s, a3); b3 = Fma.MultiplyAdd(o1, s, b3); }
            if (TN.N > 4) { s = Vector256.Create(x0[4 * xs + 1]); a4 = Fma.MultiplyAdd(o0, s, a4); b4 = Fma.MultiplyAdd(o1, s, b4); }
            if (TN.N > 5) { s = Vector256.Create(x0[5 * xs + 1]); a5 = Fma.MultiplyAdd(o0, s, a5); b5 = Fma.MultiplyAdd(o1, s, b5); }
        }

        StoreGroup(y, a0, b0, add);
        if (TN.N > 1) { StoreGroup(y + ys, a1, b1, add); }
        if (TN.N > 2) { StoreGroup(y + 2L * ys, a2, b2, add); }
        if (TN.N > 3) { StoreGroup(y + 3L * ys, a3, b3, add); }
        if (TN.N > 4) { StoreGroup(y + 4L * ys, a4, b4, add); }
        if (TN.N > 5) { StoreGroup(y + 5L * ys, a5, b5, add); }
    }

    /// <summary>Four groups (32 rows) × one token over columns [k0, k0 + kn): the decode step's tile.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    internal static void Bf16x8G4(ushort* g0, int cols, float* x, int k0, int kn, float* y, bool add)
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector256<uint> mask = Vector256.Create(0xFFFF0000u);
        long gs = 4L * cols;                                       // one group, in uints
        uint* w = (uint*)g0 + 4 * k0, end = w + 4 * kn;
        float* x0 = x + k0;
        for (; w < end; w += 8, x0 += 2)
        {
            Vector256<uint> v0 = Avx.LoadVector256(w), v1 = Avx.LoadVector256(w + gs), v2 = Avx.LoadVector256(w + 2 * gs), v3 = Avx.LoadVector256(w + 3 * gs);
            Vector256<float> s = Vector256.Create(x0[0]);
            a0 = Fma.MultiplyAdd(Avx2.ShiftLeftLogical(v0, 16).AsSingle(), s, a0);
            a1 = Fma.MultiplyAdd(Avx2.ShiftLeftLogical(v1, 16).AsSingle(), s, a1);
            a2 = Fma.MultiplyAdd(Avx2.ShiftLeftLogical(v2, 16).AsSingle(), s, a2);
            a3 = Fma.MultiplyAdd(Avx2.ShiftLeftLogical(v3, 16).AsSingle(), s, a3);
            s = Vector256.Create(x0[1]);
            a0 = Fma.MultiplyAdd(Avx2.And(v0, mask).AsSingle(), s, a0);
            a1 = Fma.MultiplyAdd(Avx2.And(v1, mask).AsSingle(), s, a1);
            a2 = Fma.MultiplyAdd(Avx2.And(v2, mask).AsSingle(), s, a2);
            a3 = Fma.MultiplyAdd(Avx2.And(v3, mask).AsSingle(), s, a3);
        }

        StoreGroup(y, a0, a1, add);
        StoreGroup(y + 16, a2, a3, add);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreGroup(float* y, Vector256<float> a, Vector256<float> b, bool add)
    {
        if (add)
        {
            a = Avx.Add(Avx.LoadVector256(y), a);
            b = Avx.Add(Avx.LoadVector256(y + 8), b);
        }

        Avx.Store(y, a);
        Avx.Store(y + 8, b);
    }
}

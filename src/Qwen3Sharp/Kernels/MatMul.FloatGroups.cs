using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Kernels;

/// <summary>
/// Float matrices in groups of 8 interleaved rows (<see cref="DType.BF16x8"/>, <see cref="DType.F16x8"/>,
/// <see cref="DType.F32x8"/>): per group and column pair (2p, 2p + 1) the 8 rows' values of both columns side by side,
/// so one load (and for BF16 one shift and one mask) gives two vectors of 8 rows' float32 weights, and a token's
/// activation is broadcast: a product of T tokens does T broadcasts and 2T FMAs per 8 rows and column pair, with no
/// horizontal sums.
/// </summary>
/// <remarks>
/// <para>Every (row, token) sum has one order, whatever the token count, tile or thread: one fused chain over the
/// columns in order (k = 0, 1, 2, ...) from zero, in blocks of <see cref="PanelColumnBlock"/> columns, each block's sum
/// added to y in turn (the first stored, or added with accumulate). So products with these matrices are batch
/// invariant by default: a token's outputs are bit-identical alone, beside 7 others, or in a prefill chunk.</para>
/// <para>Tiles: two groups × up to 4 tokens (8 accumulators, 16 FMAs per column pair; more tokens spill registers with
/// 16 of them), four groups × one token for decode. Vector256 only (AVX2 + FMA, also on AVX-512 machines); the scalar
/// twin gives the same bits elsewhere.</para>
/// </remarks>
public static unsafe partial class MatMul
{
    /// <summary>Whether the vector kernels of the 8-row float groups run on this machine (AVX2 and FMA).</summary>
    internal static bool FloatGroupsSupported => Avx2.IsSupported && Fma.IsSupported;

    /// <summary>The 8-row group format of a row-major float type, or null.</summary>
    internal static DType? FloatGroupLayoutOf(DType dtype) => dtype switch
    {
        DType.BF16 => DType.BF16x8,
        DType.F16 => DType.F16x8,
        DType.F32 => DType.F32x8,
        _ => null,
    };

    /// <summary>Bytes of a repacked matrix: whole groups of 8 rows (the last padded with zero rows).</summary>
    internal static long FloatGroupBytes(DType source, int rowCount, int cols) => (long)((rowCount + 7) / 8) * 8 * cols * source.ByteSize();

    /// <summary>
    /// Repacks rows [r0, r0 + count) of a row-major BF16/F16/F32 matrix (r0 a multiple of 8, columns even) into the
    /// groups starting at <paramref name="target"/> (group r0 / 8). Rows past <paramref name="rowCount"/> in the last group are zero.
    /// </summary>
    internal static void RepackFloatGroups(DType source, byte* data, int rowCount, int cols, int r0, int count, byte* target)
    {
        int pairs = cols / 2, size = source.ByteSize();
        long groupBytes = 8L * cols * size;
        for (int g = r0; g < r0 + count; g += 8)
        {
            byte* dst = target + (g - r0) / 8 * groupBytes;
            if (source == DType.BF16 && g + 8 <= rowCount && Avx2.IsSupported)
            {
                RepackBf16Group((uint*)(data + (long)g * cols * 2), pairs, (uint*)dst);
                continue;
            }

            for (int i = 0; i < 8; i++)
            {
                int r = g + i;
                byte* src = data + (long)r * cols * size;
                bool zero = r >= rowCount;
                if (size == 2 && source == DType.BF16)
                {
                    uint* d = (uint*)dst + i, s = (uint*)src;                 // lane i of each pair vector: both columns
                    for (int p = 0; p < pairs; p++)
                    {
                        d[8 * p] = zero ? 0 : s[p];
                    }
                }
                else if (size == 2)
                {
                    ushort* d = (ushort*)dst + i, s = (ushort*)src;           // [even 8 rows][odd 8 rows] per pair
                    for (int p = 0; p < pairs; p++)
                    {
                        d[16 * p] = zero ? (ushort)0 : s[2 * p];
                        d[16 * p + 8] = zero ? (ushort)0 : s[2 * p + 1];
                    }
                }
                else
                {
                    float* d = (float*)dst + i, s = (float*)src;
                    for (int p = 0; p < pairs; p++)
                    {
                        d[16 * p] = zero ? 0 : s[2 * p];
                        d[16 * p + 8] = zero ? 0 : s[2 * p + 1];
                    }
                }
            }
        }
    }

    /// <summary>One whole BF16 group: 8 × 8 transposes of the rows' 32-bit column pairs (the load's repack at copy speed).</summary>
    private static void RepackBf16Group(uint* rows, int pairs, uint* dst)
    {
        int p = 0;
        for (; p + 8 <= pairs; p += 8)
        {
            Vector256<uint> r0 = Avx.LoadVector256(rows + p), r1 = Avx.LoadVector256(rows + pairs + p);
            Vector256<uint> r2 = Avx.LoadVector256(rows + 2L * pairs + p), r3 = Avx.LoadVector256(rows + 3L * pairs + p);
            Vector256<uint> r4 = Avx.LoadVector256(rows + 4L * pairs + p), r5 = Avx.LoadVector256(rows + 5L * pairs + p);
            Vector256<uint> r6 = Avx.LoadVector256(rows + 6L * pairs + p), r7 = Avx.LoadVector256(rows + 7L * pairs + p);
            SimdMath.Transpose8x8(r0, r1, r2, r3, r4, r5, r6, r7, dst + 8L * p);
        }

        for (; p < pairs; p++)
        {
            for (int i = 0; i < 8; i++)
            {
                dst[8L * p + i] = rows[(long)i * pairs + p];
            }
        }
    }

    /// <summary>Element (row, col) of an 8-row float group matrix as float32.</summary>
    internal static float FloatGroupElement(in WeightView w, int row, int col)
    {
        long pair = (long)(row / 8) * (w.ColCount / 2) + col / 2;
        int lane = row % 8, odd = col & 1;
        return w.DType switch
        {
            DType.BF16x8 => BitConverter.UInt32BitsToSingle((uint)((ushort*)w.Data)[pair * 16 + lane * 2 + odd] << 16),
            DType.F16x8 => (float)BitConverter.UInt16BitsToHalf(((ushort*)w.Data)[pair * 16 + odd * 8 + lane]),
            _ => ((float*)w.Data)[pair * 16 + odd * 8 + lane],
        };
    }

    /// <summary>Row <paramref name="row"/> of an 8-row float group matrix as float32 (embedding lookups of a tied output head).</summary>
    internal static void FloatGroupRow(in WeightView w, int row, float* destination)
    {
        for (int c = 0; c < w.ColCount; c++)
        {
            destination[c] = FloatGroupElement(w, row, c);
        }
    }

    /// <summary>How a column pair of 8 rows is stored: its bytes, and its two vectors of float32 weights.</summary>
    internal interface IPairFormat
    {
        /// <summary>Bytes per column pair of one group.</summary>
        static abstract int PairBytes { get; }

        static abstract void Load(byte* pair, out Vector256<float> even, out Vector256<float> odd);

        static abstract float Even(byte* pair, int lane);

        static abstract float Odd(byte* pair, int lane);
    }

    /// <summary>BF16: lane i of one 32-byte vector is row i's two values, the even column in the low half.</summary>
    internal struct Bf16Pairs : IPairFormat
    {
        public static int PairBytes => 32;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Load(byte* pair, out Vector256<float> even, out Vector256<float> odd)
        {
            Vector256<uint> v = Avx.LoadVector256((uint*)pair);
            even = Avx2.ShiftLeftLogical(v, 16).AsSingle();
            odd = Avx2.And(v, Vector256.Create(0xFFFF0000u)).AsSingle();
        }

        public static float Even(byte* pair, int lane) => BitConverter.UInt32BitsToSingle(((uint*)pair)[lane] << 16);

        public static float Odd(byte* pair, int lane) => BitConverter.UInt32BitsToSingle(((uint*)pair)[lane] & 0xFFFF0000u);
    }

    /// <summary>F16: the 8 rows' even-column halves, then their odd-column halves (32 bytes).</summary>
    internal struct F16Pairs : IPairFormat
    {
        public static int PairBytes => 32;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Load(byte* pair, out Vector256<float> even, out Vector256<float> odd)
        {
            even = Simd256.LoadF16((ushort*)pair);
            odd = Simd256.LoadF16((ushort*)pair + 8);
        }

        public static float Even(byte* pair, int lane) => (float)BitConverter.UInt16BitsToHalf(((ushort*)pair)[lane]);

        public static float Odd(byte* pair, int lane) => (float)BitConverter.UInt16BitsToHalf(((ushort*)pair)[8 + lane]);
    }

    /// <summary>F32: the 8 rows' even-column values, then their odd-column values (64 bytes).</summary>
    internal struct F32Pairs : IPairFormat
    {
        public static int PairBytes => 64;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Load(byte* pair, out Vector256<float> even, out Vector256<float> odd)
        {
            even = Avx.LoadVector256((float*)pair);
            odd = Avx.LoadVector256((float*)pair + 8);
        }

        public static float Even(byte* pair, int lane) => ((float*)pair)[lane];

        public static float Odd(byte* pair, int lane) => ((float*)pair)[8 + lane];
    }

    /// <summary>Groups per work item: 8 (64 rows, a 256 KiB stream at 2,048 BF16 columns) while every thread still gets 4 items.</summary>
    private static int FloatGroupItem(int groups, int threads)
    {
        int item = 8;
        while (item > 1 && groups < item * 4 * threads)
        {
            item /= 2;
        }

        return item;
    }

    /// <summary>
    /// y[t, r] = (or +=) Σ_k w[r, k]·x[t, k] for an 8-row float group matrix, any token count, in the one order of this
    /// file's remarks (the scalar twin without AVX2 + FMA, with the same bits).
    /// </summary>
    /// <param name="simd">Tests: false runs the scalar twin on any machine; null takes the vector kernels where AVX2 + FMA exist.</param>
    internal static void RunFloatGroups(WorkerPool pool, ReadOnlySpan<float> x, int tokenCount, in WeightView w, Span<float> destination,
        bool accumulate, bool? simd = null)
    {
        switch (w.DType)
        {
            case DType.BF16x8: RunFloatGroups<Bf16Pairs>(pool, x, tokenCount, w, destination, accumulate, simd); break;
            case DType.F16x8: RunFloatGroups<F16Pairs>(pool, x, tokenCount, w, destination, accumulate, simd); break;
            case DType.F32x8: RunFloatGroups<F32Pairs>(pool, x, tokenCount, w, destination, accumulate, simd); break;
            default: throw new ArgumentException($"{w.DType} is not an 8-row float group format", nameof(w));
        }
    }

    private static void RunFloatGroups<TF>(WorkerPool pool, ReadOnlySpan<float> x, int tokenCount, in WeightView w, Span<float> destination,
        bool accumulate, bool? simd)
        where TF : struct, IPairFormat
    {
        int groups = (w.RowCount + 7) / 8, item = FloatGroupItem(groups, pool.ThreadCount);
        fixed (float* px = x, py = destination)
        {
            var job = new FloatGroupJob<TF>
            {
                Weights = w.Data,
                X = px,
                Y = py,
                TokenCount = tokenCount,
                RowCount = w.RowCount,
                ColCount = w.ColCount,
                ItemGroups = item,
                Accumulate = accumulate,
                Simd = (simd ?? true) && FloatGroupsSupported,
            };
            pool.Run(ref job, (groups + item - 1) / item);
        }
    }

    private struct FloatGroupJob<TF> : IPoolJob where TF : struct, IPairFormat
    {
        public byte* Weights;     // 8-row groups
        public float* X;          // [TokenCount, ColCount]
        public float* Y;          // [TokenCount, RowCount]
        public int TokenCount, RowCount, ColCount, ItemGroups;
        public bool Accumulate, Simd;

        public readonly void Execute(int index, int worker)
        {
            int groups = (RowCount + 7) / 8, g0 = index * ItemGroups, end = Math.Min(g0 + ItemGroups, groups);
            bool partial = RowCount % 8 != 0 && end == groups;   // the padded last group: through a spill
            int g1 = partial ? end - 1 : end;
            long groupBytes = (long)ColCount / 2 * TF.PairBytes;
            for (int k0 = 0; k0 < ColCount; k0 += PanelColumnBlock)
            {
                int kn = Math.Min(PanelColumnBlock, ColCount - k0);
                bool add = Accumulate || k0 > 0;
                if (!Simd)
                {
                    FloatGroupsScalar<TF>(Weights, X, TokenCount, ColCount, k0, kn, g0, g1, Y, RowCount, add);
                }
                else if (TokenCount == 1)
                {
                    int g = g0;
                    for (; g + 4 <= g1; g += 4)
                    {
                        GroupsG4<TF>(Weights + g * groupBytes, groupBytes, X, k0, kn, Y + g * 8, add);
                    }

                    GroupTiles<TF>(Weights, groupBytes, X, 1, ColCount, k0, kn, g, g1, Y, RowCount, add);   // the last 1-3 groups
                }
                else
                {
                    GroupTiles<TF>(Weights, groupBytes, X, TokenCount, ColCount, k0, kn, g0, g1, Y, RowCount, add);
                }

                if (partial)
                {
                    PartialGroup(g1, groupBytes, k0, kn, add);
                }
            }
        }

        /// <summary>The last group, short of 8 rows: its 8 sums per token into a spill, the valid rows to y.</summary>
        private readonly void PartialGroup(int g, long groupBytes, int k0, int kn, bool add)
        {
            float* spill = stackalloc float[8];
            byte* a = Weights + g * groupBytes;
            int rows = RowCount - g * 8;
            for (int t = 0; t < TokenCount; t++)
            {
                float* xt = X + (long)t * ColCount;
                if (Simd)
                {
                    GroupsG1<TF, Tok1>(a, xt, ColCount, k0, kn, spill, 8, add: false);
                }
                else
                {
                    FloatGroupsScalar<TF>(a, xt, 1, ColCount, k0, kn, 0, 1, spill, 8, add: false);
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
    private static void GroupTiles<TF>(byte* w, long groupBytes, float* x, int tokenCount, int cols, int k0, int kn, int g0, int g1, float* y, int ys, bool add)
        where TF : struct, IPairFormat
    {
        int tiles = (tokenCount + 3) / 4;
        for (int g = g0; g < g1; g += 2)
        {
            byte* a = w + g * groupBytes;
            bool pair = g + 1 < g1;
            for (int i = 0, t0 = 0; i < tiles; i++)
            {
                int n = (tokenCount - t0 + tiles - i - 1) / (tiles - i);
                float* xt = x + (long)t0 * cols, yt = y + (long)t0 * ys + g * 8;
                if (pair)
                {
                    switch (n)
                    {
                        case 1: GroupsG2<TF, Tok1>(a, groupBytes, xt, cols, k0, kn, yt, ys, add); break;
                        case 2: GroupsG2<TF, Tok2>(a, groupBytes, xt, cols, k0, kn, yt, ys, add); break;
                        case 3: GroupsG2<TF, Tok3>(a, groupBytes, xt, cols, k0, kn, yt, ys, add); break;
                        default: GroupsG2<TF, Tok4>(a, groupBytes, xt, cols, k0, kn, yt, ys, add); break;
                    }
                }
                else
                {
                    switch (n)
                    {
                        case 1: GroupsG1<TF, Tok1>(a, xt, cols, k0, kn, yt, ys, add); break;
                        case 2: GroupsG1<TF, Tok2>(a, xt, cols, k0, kn, yt, ys, add); break;
                        case 3: GroupsG1<TF, Tok3>(a, xt, cols, k0, kn, yt, ys, add); break;
                        default: GroupsG1<TF, Tok4>(a, xt, cols, k0, kn, yt, ys, add); break;
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
    internal static void FloatGroupsScalar<TF>(byte* w, float* x, int tokenCount, int cols, int k0, int kn, int g0, int g1, float* y, int ys, bool add)
        where TF : struct, IPairFormat
    {
        long groupBytes = (long)cols / 2 * TF.PairBytes;
        for (int g = g0; g < g1; g++)
        {
            byte* group = w + g * groupBytes;
            for (int t = 0; t < tokenCount; t++)
            {
                float* xt = x + (long)t * cols;
                for (int i = 0; i < 8; i++)
                {
                    float acc = 0;
                    for (int k = k0; k < k0 + kn; k += 2)
                    {
                        byte* pair = group + (long)(k / 2) * TF.PairBytes;
                        acc = MathF.FusedMultiplyAdd(TF.Even(pair, i), xt[k], acc);
                        acc = MathF.FusedMultiplyAdd(TF.Odd(pair, i), xt[k + 1], acc);
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

    /// <summary>Two groups (16 rows; the second <paramref name="groupBytes"/> after the first) × N tokens over columns [k0, k0 + kn).</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void GroupsG2<TF, TN>(byte* g0, long groupBytes, float* x, int cols, int k0, int kn, float* y, int ys, bool add)
        where TF : struct, IPairFormat where TN : struct, ITokenCount
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector256<float> b0 = default, b1 = default, b2 = default, b3 = default;
        byte* w0 = g0 + (long)(k0 / 2) * TF.PairBytes, end = w0 + (long)(kn / 2) * TF.PairBytes;
        float* x0 = x + k0;
        long xs = cols;
        for (; w0 < end; w0 += TF.PairBytes, x0 += 2)
        {
            TF.Load(w0, out Vector256<float> e0, out Vector256<float> o0);
            TF.Load(w0 + groupBytes, out Vector256<float> e1, out Vector256<float> o1);
            Vector256<float> s = Vector256.Create(x0[0]);
            a0 = Fma.MultiplyAdd(e0, s, a0); b0 = Fma.MultiplyAdd(e1, s, b0);
            if (TN.N > 1) { s = Vector256.Create(x0[xs]); a1 = Fma.MultiplyAdd(e0, s, a1); b1 = Fma.MultiplyAdd(e1, s, b1); }
            if (TN.N > 2) { s = Vector256.Create(x0[2 * xs]); a2 = Fma.MultiplyAdd(e0, s, a2); b2 = Fma.MultiplyAdd(e1, s, b2); }
            if (TN.N > 3) { s = Vector256.Create(x0[3 * xs]); a3 = Fma.MultiplyAdd(e0, s, a3); b3 = Fma.MultiplyAdd(e1, s, b3); }
            s = Vector256.Create(x0[1]);
            a0 = Fma.MultiplyAdd(o0, s, a0); b0 = Fma.MultiplyAdd(o1, s, b0);
            if (TN.N > 1) { s = Vector256.Create(x0[xs + 1]); a1 = Fma.MultiplyAdd(o0, s, a1); b1 = Fma.MultiplyAdd(o1, s, b1); }
            if (TN.N > 2) { s = Vector256.Create(x0[2 * xs + 1]); a2 = Fma.MultiplyAdd(o0, s, a2); b2 = Fma.MultiplyAdd(o1, s, b2); }
            if (TN.N > 3) { s = Vector256.Create(x0[3 * xs + 1]); a3 = Fma.MultiplyAdd(o0, s, a3); b3 = Fma.MultiplyAdd(o1, s, b3); }
        }

        StoreGroupPair(y, a0, b0, add);
        if (TN.N > 1) { StoreGroupPair(y + ys, a1, b1, add); }
        if (TN.N > 2) { StoreGroupPair(y + 2L * ys, a2, b2, add); }
        if (TN.N > 3) { StoreGroupPair(y + 3L * ys, a3, b3, add); }
    }

    /// <summary>One group (8 rows) × N tokens over columns [k0, k0 + kn).</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void GroupsG1<TF, TN>(byte* g0, float* x, int cols, int k0, int kn, float* y, int ys, bool add)
        where TF : struct, IPairFormat where TN : struct, ITokenCount
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        byte* w0 = g0 + (long)(k0 / 2) * TF.PairBytes, end = w0 + (long)(kn / 2) * TF.PairBytes;
        float* x0 = x + k0;
        long xs = cols;
        for (; w0 < end; w0 += TF.PairBytes, x0 += 2)
        {
            TF.Load(w0, out Vector256<float> e0, out Vector256<float> o0);
            a0 = Fma.MultiplyAdd(e0, Vector256.Create(x0[0]), a0);
            if (TN.N > 1) { a1 = Fma.MultiplyAdd(e0, Vector256.Create(x0[xs]), a1); }
            if (TN.N > 2) { a2 = Fma.MultiplyAdd(e0, Vector256.Create(x0[2 * xs]), a2); }
            if (TN.N > 3) { a3 = Fma.MultiplyAdd(e0, Vector256.Create(x0[3 * xs]), a3); }
            a0 = Fma.MultiplyAdd(o0, Vector256.Create(x0[1]), a0);
            if (TN.N > 1) { a1 = Fma.MultiplyAdd(o0, Vector256.Create(x0[xs + 1]), a1); }
            if (TN.N > 2) { a2 = Fma.MultiplyAdd(o0, Vector256.Create(x0[2 * xs + 1]), a2); }
            if (TN.N > 3) { a3 = Fma.MultiplyAdd(o0, Vector256.Create(x0[3 * xs + 1]), a3); }
        }

        StoreGroup(y, a0, add);
        if (TN.N > 1) { StoreGroup(y + ys, a1, add); }
        if (TN.N > 2) { StoreGroup(y + 2L * ys, a2, add); }
        if (TN.N > 3) { StoreGroup(y + 3L * ys, a3, add); }
    }

    /// <summary>Four groups (32 rows, <paramref name="groupBytes"/> apart) × one token over columns [k0, k0 + kn): the decode step's tile.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void GroupsG4<TF>(byte* g0, long groupBytes, float* x, int k0, int kn, float* y, bool add)
        where TF : struct, IPairFormat
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        byte* w = g0 + (long)(k0 / 2) * TF.PairBytes, end = w + (long)(kn / 2) * TF.PairBytes;
        float* x0 = x + k0;
        for (; w < end; w += TF.PairBytes, x0 += 2)
        {
            TF.Load(w, out Vector256<float> e0, out Vector256<float> o0);
            TF.Load(w + groupBytes, out Vector256<float> e1, out Vector256<float> o1);
            TF.Load(w + 2 * groupBytes, out Vector256<float> e2, out Vector256<float> o2);
            TF.Load(w + 3 * groupBytes, out Vector256<float> e3, out Vector256<float> o3);
            Vector256<float> s = Vector256.Create(x0[0]);
            a0 = Fma.MultiplyAdd(e0, s, a0);
            a1 = Fma.MultiplyAdd(e1, s, a1);
            a2 = Fma.MultiplyAdd(e2, s, a2);
            a3 = Fma.MultiplyAdd(e3, s, a3);
            s = Vector256.Create(x0[1]);
            a0 = Fma.MultiplyAdd(o0, s, a0);
            a1 = Fma.MultiplyAdd(o1, s, a1);
            a2 = Fma.MultiplyAdd(o2, s, a2);
            a3 = Fma.MultiplyAdd(o3, s, a3);
        }

        StoreGroupPair(y, a0, a1, add);
        StoreGroupPair(y + 16, a2, a3, add);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreGroupPair(float* y, Vector256<float> a, Vector256<float> b, bool add)
    {
        StoreGroup(y, a, add);
        StoreGroup(y + 8, b, add);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreGroup(float* y, Vector256<float> a, bool add)
    {
        if (add)
        {
            a = Avx.Add(Avx.LoadVector256(y), a);
        }

        Avx.Store(y, a);
    }
}

using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Qwen3Sharp.Kernels.Reference;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Kernels;

/// <summary>
/// The integer-activation path for the K-quants Q4_K, Q5_K and Q6_K. It reuses QuantMatMul.Int8.cs's activation blocks
/// of 32 (float32 scale, int8 codes, code sum), so one quantization of a token serves every format of a Q4_K_M model.
/// A super-block's 256 weights line up with eight activation blocks, and every activation block meets one integer
/// block dot:
/// <list type="bullet">
/// <item>Q4_K / Q5_K, sub-block j: w = d·sc_j·q − dmin·m_j with q in 0..15 (0..31), so
/// Σ w·x = (d·sc_j·d_x)·Σ q·x_q − (dmin·m_j·d_x)·Σ x_q: <c>vpmaddubsw</c> of the unsigned codes with the activation
/// codes, <c>vpmaddwd</c> with ones, one conversion and one FMA; the mins term uses the activation block's code sum
/// and is done for all eight sub-blocks in one vector.</item>
/// <item>Q6_K, groups of 16 with int8 scales: w = d·sc_g·(q − 32), q in 0..63. Per 32 elements
/// <c>vpmaddubsw(q, x_q) − vpmaddubsw(32, x_q)</c> gives the int16 pair sums of (q − 32)·x_q, and <c>vpmaddwd</c>
/// against the two groups' scales (a <c>vpshufb</c> of the super-block's scales) sums them per group in int32;
/// then (d·d_x) once per 32.</item>
/// </list>
/// No int16 pair sum saturates: 2·63·127 = 16002, 2·32·127 = 8128, 2·31·127, 2·15·127 &lt; 2^15. The int32 block
/// sums are exact; only the float32 factors and accumulation round. AVX2 (also on AVX-512 machines, as the Q8_0/Q4_0
/// int8 kernels) with a scalar twin of the same integer math.
/// </summary>
public static unsafe partial class QuantMatMul
{
    /// <summary>A Q4_K-like format (6-bit scales and mins per 32): Q4_K, or Q5_K with its fifth bits.</summary>
    internal interface IKInt8Format
    {
        static abstract int BlockBytes { get; }

        static abstract bool Five { get; }
    }

    internal struct Q4KI : IKInt8Format
    {
        public static int BlockBytes => 144;

        public static bool Five => false;
    }

    internal struct Q5KI : IKInt8Format
    {
        public static int BlockBytes => 176;

        public static bool Five => true;
    }

    /// <summary>
    /// The eight sub-blocks' 6-bit scales (lower 8 bytes) and mins (upper 8 bytes) from the 12 packed bytes at
    /// <paramref name="packed"/>: sub-blocks 0..3 keep the low 6 bits of bytes 0..3 (scales) and 4..7 (mins);
    /// 4..7 take a nibble of bytes 8..11 and the top two bits of bytes 0..3 (scales) or 4..7 (mins).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<byte> ScalesMins6(byte* packed)
    {
        uint u0 = *(uint*)packed, u1 = *(uint*)(packed + 4), u2 = *(uint*)(packed + 8);
        uint scales03 = u0 & 0x3F3F3F3F, mins03 = u1 & 0x3F3F3F3F;
        uint scales47 = (u2 & 0x0F0F0F0F) | ((u0 >> 2) & 0x30303030);
        uint mins47 = ((u2 >> 4) & 0x0F0F0F0F) | ((u1 >> 2) & 0x30303030);
        return Vector128.Create(scales03, scales47, mins03, mins47).AsByte();
    }

    /// <summary>Q4_K/Q5_K against one token's 8-bit activations (<paramref name="x"/>: codes, <paramref name="xs"/>: scales, <paramref name="xsum"/>: code sums).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float DotKI1_256<TK>(byte* row, sbyte* x, float* xs, int* xsum, int superBlocks) where TK : IKInt8Format
    {
        float* half = HalfTable.Values;
        Vector256<float> a = default, b = default, mins = default;
        Vector256<byte> nibble = Vector256.Create((byte)0xF), bit4 = Vector256.Create((byte)0x10);
        Vector256<short> ones = Vector256.Create((short)1);
        for (int k = 0; k < superBlocks; k++, row += TK.BlockBytes, x += KBlockSize, xs += 8, xsum += 8)
        {
            Vector128<byte> sm = ScalesMins6(row + 4);
            Vector256<float> scales = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(sm));
            Vector256<float> minCodes = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(Sse2.ShiftRightLogical128BitLane(sm, 8)));
            Vector256<float> vxs = Vector256.Load(xs);
            // Σ_j dmin·m_j·d_x·Σx_q over the eight sub-blocks at once
            mins = Fma.MultiplyAdd(minCodes * Vector256.Create(half[*(ushort*)(row + 2)]), vxs * Avx.ConvertToVector256Single(Vector256.Load(xsum)), mins);
            Vector256<float> f = scales * Vector256.Create(half[*(ushort*)row]) * vxs;
            byte* qs = row + (TK.Five ? 48 : 16);
            Vector256<byte> qh = TK.Five ? Vector256.Load(row + 16) : default;
            Vector256<int> lane = Vector256<int>.Zero;
            for (int c = 0; c < 4; c++, qs += 32, x += 64, lane += Vector256.Create(2))
            {
                Vector256<byte> q = Vector256.Load(qs);
                Vector256<byte> lo = q & nibble;
                Vector256<byte> hi = Vector256.ShiftRightLogical(q.AsUInt16(), 4).AsByte() & nibble;
                if (TK.Five)
                {
                    // bit 2c of qh (now at bit 0 after c shifts of 2) is the fifth bit of sub-block 2c, bit 2c + 1 of 2c + 1
                    lo |= Vector256.ShiftLeft(qh.AsUInt16(), 4).AsByte() & bit4;
                    hi |= Vector256.ShiftLeft(qh.AsUInt16(), 3).AsByte() & bit4;
                    qh = Vector256.ShiftRightLogical(qh.AsUInt16(), 2).AsByte();
                }

                Vector256<int> p0 = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(lo, Vector256.Load(x)), ones);
                Vector256<int> p1 = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(hi, Vector256.Load(x + 32)), ones);
                a = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p0), Avx2.PermuteVar8x32(f, lane), a);
                b = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p1), Avx2.PermuteVar8x32(f, lane + Vector256<int>.One), b);
            }

            x -= KBlockSize;
        }

        return Vector256.Sum(a + b) - Vector256.Sum(mins);
    }

    /// <summary>
    /// Four tokens (activation rows <paramref name="cols"/> codes and <paramref name="cols"/>/32 scales apart) against one
    /// Q4_K/Q5_K row: each chunk's codes are unpacked once and dotted with the four tokens' codes. The mins terms go
    /// straight into each token's accumulator (its lanes are summed at the end either way).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotKI4_256<TK>(byte* row, sbyte* x, float* xs, int* xsum, int cols, int superBlocks, float* y, int ys, bool accumulate)
        where TK : IKInt8Format
    {
        float* half = HalfTable.Values;
        int blocks = cols / BlockSize;
        sbyte* x1 = x + cols, x2 = x + 2L * cols, x3 = x + 3L * cols;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector256<byte> nibble = Vector256.Create((byte)0xF), bit4 = Vector256.Create((byte)0x10);
        for (int k = 0; k < superBlocks; k++, row += TK.BlockBytes)
        {
            Vector128<byte> sm = ScalesMins6(row + 4);
            Vector256<float> scales = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(sm)) * Vector256.Create(half[*(ushort*)row]);
            Vector256<float> minScales = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(Sse2.ShiftRightLogical128BitLane(sm, 8)))
                * Vector256.Create(half[*(ushort*)(row + 2)]);
            int b0 = 8 * k;
            // per token: the factors d·sc_j·d_x of the eight sub-blocks, and the mins terms taken off its accumulator
            Vector256<float> v0 = Vector256.Load(xs + b0), v1 = Vector256.Load(xs + blocks + b0);
            Vector256<float> v2 = Vector256.Load(xs + 2 * blocks + b0), v3 = Vector256.Load(xs + 3 * blocks + b0);
            a0 = MinusMins(minScales, v0, xsum + b0, a0);
            a1 = MinusMins(minScales, v1, xsum + blocks + b0, a1);
            a2 = MinusMins(minScales, v2, xsum + 2 * blocks + b0, a2);
            a3 = MinusMins(minScales, v3, xsum + 3 * blocks + b0, a3);
            Vector256<float> f0 = scales * v0, f1 = scales * v1, f2 = scales * v2, f3 = scales * v3;
            byte* qs = row + (TK.Five ? 48 : 16);
            Vector256<byte> qh = TK.Five ? Vector256.Load(row + 16) : default;
            Vector256<int> lane = Vector256<int>.Zero;
            for (int c = 0; c < 4; c++, qs += 32, lane += Vector256.Create(2))
            {
                Vector256<byte> q = Vector256.Load(qs);
                Vector256<byte> lo = q & nibble;
                Vector256<byte> hi = Vector256.ShiftRightLogical(q.AsUInt16(), 4).AsByte() & nibble;
                if (TK.Five)
                {
                    lo |= Vector256.ShiftLeft(qh.AsUInt16(), 4).AsByte() & bit4;
                    hi |= Vector256.ShiftLeft(qh.AsUInt16(), 3).AsByte() & bit4;
                    qh = Vector256.ShiftRightLogical(qh.AsUInt16(), 2).AsByte();
                }

                long o = (long)k * KBlockSize + 64 * c;
                Vector256<int> next = lane + Vector256<int>.One;
                a0 = SubBlock(hi, x + o + 32, Avx2.PermuteVar8x32(f0, next), SubBlock(lo, x + o, Avx2.PermuteVar8x32(f0, lane), a0));
                a1 = SubBlock(hi, x1 + o + 32, Avx2.PermuteVar8x32(f1, next), SubBlock(lo, x1 + o, Avx2.PermuteVar8x32(f1, lane), a1));
                a2 = SubBlock(hi, x2 + o + 32, Avx2.PermuteVar8x32(f2, next), SubBlock(lo, x2 + o, Avx2.PermuteVar8x32(f2, lane), a2));
                a3 = SubBlock(hi, x3 + o + 32, Avx2.PermuteVar8x32(f3, next), SubBlock(lo, x3 + o, Avx2.PermuteVar8x32(f3, lane), a3));
            }
        }

        Store(y, Vector256.Sum(a0), accumulate);
        Store(y + ys, Vector256.Sum(a1), accumulate);
        Store(y + 2L * ys, Vector256.Sum(a2), accumulate);
        Store(y + 3L * ys, Vector256.Sum(a3), accumulate);
    }

    /// <summary>acc − (dmin·m_j)·d_x·Σx_q, lane j for sub-block j.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> MinusMins(Vector256<float> minScales, Vector256<float> xs, int* xsum, Vector256<float> acc)
        => Fma.MultiplyAddNegated(minScales * xs, Avx.ConvertToVector256Single(Vector256.Load(xsum)), acc);

    /// <summary>acc + factor · Σ q·x_q over one 32-element sub-block (factor broadcast) (unsigned codes, exact int32 partial sums).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> SubBlock(Vector256<byte> q, sbyte* x, Vector256<float> factor, Vector256<float> acc)
    {
        Vector256<int> p = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(q, Vector256.Load(x)), Vector256.Create((short)1));
        return Fma.MultiplyAdd(Avx.ConvertToVector256Single(p), factor, acc);
    }

    /// <summary>vpshufb masks that spread the int16 scales of groups 2p and 2p + 1 (of a half super-block's eight) over a 32-element block's two lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> GroupPairMask(int p) => Vector256.Create(
        Vector128.Create((ushort)((4 * p) | ((4 * p + 1) << 8))).AsByte(),
        Vector128.Create((ushort)((4 * p + 2) | ((4 * p + 3) << 8))).AsByte());

    /// <summary>One 32-element block of Q6_K: Σ_g sc_g·Σ (q − 32)·x_q as eight int32 partial sums, converted to float32 (exact).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Q6Block(Vector256<byte> q, sbyte* x, Vector256<byte> scales, Vector256<byte> mask)
    {
        Vector256<sbyte> xv = Vector256.Load(x);
        Vector256<short> pairs = Avx2.MultiplyAddAdjacent(q, xv) - Avx2.MultiplyAddAdjacent(Vector256.Create((byte)32), xv);
        return Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(pairs, Avx2.Shuffle(scales, mask).AsInt16()));
    }

    /// <summary>Q6_K against one token's 8-bit activations.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float DotQ6KI1_256(byte* row, sbyte* x, float* xs, int superBlocks)
    {
        float* half = HalfTable.Values;
        Vector256<float> a = default, b = default;
        Vector256<byte> nibble = Vector256.Create((byte)0xF), top = Vector256.Create((byte)0x30);
        Vector256<byte> m0 = GroupPairMask(0), m1 = GroupPairMask(1), m2 = GroupPairMask(2), m3 = GroupPairMask(3);
        for (int k = 0; k < superBlocks; k++, row += 210)
        {
            float d = half[*(ushort*)(row + 208)];
            Vector256<short> scales16 = Avx2.ConvertToVector256Int16(Vector128.Load((sbyte*)(row + 192)));   // groups 0..7 | 8..15
            for (int n = 0; n < 2; n++, x += 128, xs += 4)
            {
                // both lanes hold this half's eight group scales
                Vector256<byte> scales = (n == 0 ? Avx2.Permute2x128(scales16, scales16, 0x00) : Avx2.Permute2x128(scales16, scales16, 0x11)).AsByte();
                Vector256<byte> ql0 = Vector256.Load(row + 64 * n), ql1 = Vector256.Load(row + 64 * n + 32);
                Vector256<ushort> qh = Vector256.Load((ushort*)(row + 128 + 32 * n));
                // elements 0..31: low nibbles of ql0, qh bits 0-1; 32..63: ql1, bits 2-3; 64..95: high nibbles of ql0, bits 4-5; 96..127: ql1, bits 6-7
                Vector256<byte> q0 = (ql0 & nibble) | (Vector256.ShiftLeft(qh, 4).AsByte() & top);
                Vector256<byte> q1 = (ql1 & nibble) | (Vector256.ShiftLeft(qh, 2).AsByte() & top);
                Vector256<byte> q2 = (Vector256.ShiftRightLogical(ql0.AsUInt16(), 4).AsByte() & nibble) | (qh.AsByte() & top);
                Vector256<byte> q3 = (Vector256.ShiftRightLogical(ql1.AsUInt16(), 4).AsByte() & nibble) | (Vector256.ShiftRightLogical(qh, 2).AsByte() & top);
                a = Fma.MultiplyAdd(Q6Block(q0, x, scales, m0), Vector256.Create(d * xs[0]), a);
                b = Fma.MultiplyAdd(Q6Block(q1, x + 32, scales, m1), Vector256.Create(d * xs[1]), b);
                a = Fma.MultiplyAdd(Q6Block(q2, x + 64, scales, m2), Vector256.Create(d * xs[2]), a);
                b = Fma.MultiplyAdd(Q6Block(q3, x + 96, scales, m3), Vector256.Create(d * xs[3]), b);
            }
        }

        return Vector256.Sum(a + b);
    }

    /// <summary>Q6_K against four tokens' 8-bit activations (rows <paramref name="cols"/> codes, <paramref name="cols"/>/32 scales apart).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotQ6KI4_256(byte* row, sbyte* x, float* xs, int cols, int superBlocks, float* y, int ys, bool accumulate)
    {
        float* half = HalfTable.Values;
        int blocks = cols / BlockSize;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector256<byte> nibble = Vector256.Create((byte)0xF), top = Vector256.Create((byte)0x30);
        Vector256<byte> m0 = GroupPairMask(0), m1 = GroupPairMask(1), m2 = GroupPairMask(2), m3 = GroupPairMask(3);
        for (int k = 0; k < superBlocks; k++, row += 210)
        {
            float d = half[*(ushort*)(row + 208)];
            Vector256<short> scales16 = Avx2.ConvertToVector256Int16(Vector128.Load((sbyte*)(row + 192)));
            for (int n = 0; n < 2; n++)
            {
                Vector256<byte> scales = (n == 0 ? Avx2.Permute2x128(scales16, scales16, 0x00) : Avx2.Permute2x128(scales16, scales16, 0x11)).AsByte();
                Vector256<byte> ql0 = Vector256.Load(row + 64 * n), ql1 = Vector256.Load(row + 64 * n + 32);
                Vector256<ushort> qh = Vector256.Load((ushort*)(row + 128 + 32 * n));
                Vector256<byte> q0 = (ql0 & nibble) | (Vector256.ShiftLeft(qh, 4).AsByte() & top);
                Vector256<byte> q1 = (ql1 & nibble) | (Vector256.ShiftLeft(qh, 2).AsByte() & top);
                Vector256<byte> q2 = (Vector256.ShiftRightLogical(ql0.AsUInt16(), 4).AsByte() & nibble) | (qh.AsByte() & top);
                Vector256<byte> q3 = (Vector256.ShiftRightLogical(ql1.AsUInt16(), 4).AsByte() & nibble) | (Vector256.ShiftRightLogical(qh, 2).AsByte() & top);
                int b = 8 * k + 4 * n;
                long o = (long)b * BlockSize;
                a0 = Q6Half(q0, q1, q2, q3, x + o, xs + b, d, scales, m0, m1, m2, m3, a0);
                a1 = Q6Half(q0, q1, q2, q3, x + cols + o, xs + blocks + b, d, scales, m0, m1, m2, m3, a1);
                a2 = Q6Half(q0, q1, q2, q3, x + 2L * cols + o, xs + 2 * blocks + b, d, scales, m0, m1, m2, m3, a2);
                a3 = Q6Half(q0, q1, q2, q3, x + 3L * cols + o, xs + 3 * blocks + b, d, scales, m0, m1, m2, m3, a3);
            }
        }

        Store(y, Vector256.Sum(a0), accumulate);
        Store(y + ys, Vector256.Sum(a1), accumulate);
        Store(y + 2L * ys, Vector256.Sum(a2), accumulate);
        Store(y + 3L * ys, Vector256.Sum(a3), accumulate);
    }

    /// <summary>acc + one token's dot with half a Q6_K super-block (four 32-element blocks, codes unpacked).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Q6Half(Vector256<byte> q0, Vector256<byte> q1, Vector256<byte> q2, Vector256<byte> q3, sbyte* x, float* xs,
        float d, Vector256<byte> scales, Vector256<byte> m0, Vector256<byte> m1, Vector256<byte> m2, Vector256<byte> m3, Vector256<float> acc)
    {
        acc = Fma.MultiplyAdd(Q6Block(q0, x, scales, m0), Vector256.Create(d * xs[0]), acc);
        acc = Fma.MultiplyAdd(Q6Block(q1, x + 32, scales, m1), Vector256.Create(d * xs[1]), acc);
        acc = Fma.MultiplyAdd(Q6Block(q2, x + 64, scales, m2), Vector256.Create(d * xs[2]), acc);
        return Fma.MultiplyAdd(Q6Block(q3, x + 96, scales, m3), Vector256.Create(d * xs[3]), acc);
    }

    /// <summary>The scalar twin: the same integer block dots per 32 (Q6_K: per group of 16), float32 accumulation.</summary>
    internal static float DotKIScalar(byte* row, DType format, sbyte* x, float* xs, int* xsum, int superBlocks)
    {
        float total = 0;
        int blockBytes = format.BlockBytes();
        for (int k = 0; k < superBlocks; k++, row += blockBytes, x += KBlockSize, xs += 8, xsum += 8)
        {
            if (format == DType.Q6_K)
            {
                float d = Scale(row + 208);
                for (int s = 0; s < 8; s++)
                {
                    // sub-block s = 4n + p: ql bytes 64n + 32(p & 1) .., nibble p >> 1, qh bits 2p, 2p + 1
                    int n = s >> 2, p = s & 3;
                    byte* ql = row + 64 * n + 32 * (p & 1);
                    byte* qh = row + 128 + 32 * n;
                    int dot = 0;
                    for (int g = 0; g < 2; g++)
                    {
                        int groupDot = 0;
                        for (int l = 16 * g; l < 16 * g + 16; l++)
                        {
                            int q = ((ql[l] >> (4 * (p >> 1))) & 0xF) | (((qh[l] >> (2 * p)) & 3) << 4);
                            groupDot += (q - 32) * x[32 * s + l];
                        }

                        dot += ((sbyte*)(row + 192))[8 * n + 2 * p + g] * groupDot;
                    }

                    total += d * xs[s] * dot;
                }

                continue;
            }

            float dd = Scale(row), dmin = Scale(row + 2);
            bool five = format == DType.Q5_K;
            byte* qs = row + (five ? 48 : 16);
            byte* hi = row + 16;
            for (int s = 0; s < 8; s++)
            {
                (int sc, int m) = QuantScalar.ScaleMin(row + 4, s);
                int c = s >> 1, shift = 4 * (s & 1);
                int dot = 0;
                for (int l = 0; l < 32; l++)
                {
                    int q = ((qs[32 * c + l] >> shift) & 0xF) | (five ? ((hi[l] >> s) & 1) << 4 : 0);
                    dot += q * x[32 * s + l];
                }

                total += dd * sc * xs[s] * dot - dmin * m * xs[s] * xsum[s];
            }
        }

        return total;
    }

    private static void RunInt8K(Isa isa, WorkerPool pool, float* x, int tokenCount, in WeightView w, float* y, bool accumulate,
        bool batchInvariant)
    {
        int cols = w.ColCount;
        byte* scratch = (byte*)pool.SharedScratch(Q8ActivationBytes(tokenCount, cols));
        QuantizeActivations(isa, x, tokenCount, cols, scratch, out sbyte* codes, out float* scales, out int* sums);
        var job = new Int8KJob
        {
            Isa = isa,
            Format = w.DType,
            Weights = w.Data,
            RowBytes = w.RowBytes,
            Codes = codes,
            Scales = scales,
            Sums = sums,
            Y = y,
            TokenCount = tokenCount,
            RowCount = w.RowCount,
            ColCount = cols,
            Accumulate = accumulate,
            OneTokenAtATime = batchInvariant,
        };
        pool.Run(ref job, (w.RowCount + ChunkRows - 1) / ChunkRows);
    }

    private struct Int8KJob : IPoolJob
    {
        public Isa Isa;
        public DType Format;
        public byte* Weights;     // [RowCount, ColCount / 256 super-blocks]
        public long RowBytes;
        public sbyte* Codes;      // [TokenCount, ColCount]
        public float* Scales;     // [TokenCount, ColCount / 32]
        public int* Sums;         // [TokenCount, ColCount / 32]
        public float* Y;          // [TokenCount, RowCount]
        public int TokenCount, RowCount, ColCount;
        public bool Accumulate, OneTokenAtATime;   // batch invariant: every token through the one-token kernel

        public readonly void Execute(int index, int worker)
        {
            int r0 = index * ChunkRows, r1 = Math.Min(r0 + ChunkRows, RowCount);
            int blocks = ColCount / BlockSize, superBlocks = ColCount / KBlockSize;
            for (int r = r0; r < r1; r++)
            {
                byte* row = Weights + r * RowBytes;
                if (r + 1 < r1)
                {
                    SimdMath.Prefetch(row + RowBytes);
                }

                int t = 0;
                if (Isa != Isa.Scalar && !OneTokenAtATime)
                {
                    for (; t + 4 <= TokenCount; t += 4)
                    {
                        sbyte* x = Codes + (long)t * ColCount;
                        float* xs = Scales + (long)t * blocks;
                        int* xsum = Sums + (long)t * blocks;
                        float* y = Y + (long)t * RowCount + r;
                        switch (Format)
                        {
                            case DType.Q4_K: DotKI4_256<Q4KI>(row, x, xs, xsum, ColCount, superBlocks, y, RowCount, Accumulate); break;
                            case DType.Q5_K: DotKI4_256<Q5KI>(row, x, xs, xsum, ColCount, superBlocks, y, RowCount, Accumulate); break;
                            default: DotQ6KI4_256(row, x, xs, ColCount, superBlocks, y, RowCount, Accumulate); break;
                        }
                    }
                }

                for (; t < TokenCount; t++)
                {
                    sbyte* x = Codes + (long)t * ColCount;
                    float* xs = Scales + (long)t * blocks;
                    int* xsum = Sums + (long)t * blocks;
                    float s = (Isa, Format) switch
                    {
                        (Isa.Scalar, _) => DotKIScalar(row, Format, x, xs, xsum, superBlocks),
                        (_, DType.Q4_K) => DotKI1_256<Q4KI>(row, x, xs, xsum, superBlocks),
                        (_, DType.Q5_K) => DotKI1_256<Q5KI>(row, x, xs, xsum, superBlocks),
                        _ => DotQ6KI1_256(row, x, xs, superBlocks),
                    };
                    Store(Y + (long)t * RowCount + r, s, Accumulate);
                }
            }
        }
    }
}

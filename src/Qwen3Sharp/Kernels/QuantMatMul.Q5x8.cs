using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Kernels;

/// <summary>
/// Q5_K repacked into groups of 8 rows (<see cref="DType.Q5_Kx8"/>): <see cref="DType.Q4_Kx8"/>'s layout (each 32-element
/// sub-block's low four bits as Q4_0x8 lays out a block, the 6-bit scales and mins as bytes, d and dmin per row) plus,
/// per sub-block, one 32-byte vector of fifth bits: byte b holds bit 4 of the 8 code bytes at position b of the
/// sub-block's 8 unpacked code vectors (bit c for vector c = 2v + (high nibble ? 1 : 0), v = 0..3; see
/// <see cref="Q5Codes"/> for how the kernel joins them to the nibbles).
/// Codes are then 0..31 against the int8 activation: <c>vpmaddubsw</c> pairs ≤ 2·31·127 = 7874, so four are summed in
/// int16 (≤ 31496 &lt; 2^15) and each half widened by <c>vpmaddwd</c>. The float steps are Q4_Kx8's (w = d·sc·q − dmin·m),
/// and the scalar twin <see cref="DotGroupQ5_Kx8Scalar"/> gives the AVX2 kernel's bits exactly.
/// </summary>
public static unsafe partial class QuantMatMul
{
    /// <summary>Bytes of one super-block of a <see cref="DType.Q5_Kx8"/> group: low-nibble codes, fifth bits, scales, mins, d, dmin.</summary>
    private const int K5GroupBytes = 8 * GroupBlockBytes + 8 * 32 + 2 * 64 + 2 * 16;

    private const int K5HighOffset = 8 * GroupBlockBytes, K5ScalesOffset = K5HighOffset + 8 * 32, K5MinsOffset = K5ScalesOffset + 64,
        K5dOffset = K5MinsOffset + 64, K5dMinOffset = K5dOffset + 16;

    /// <summary>Bytes of a <see cref="DType.Q5_Kx8"/> matrix (the last group padded to 8 rows).</summary>
    public static long RepackedBytesQ5_Kx8(int rows, int cols) => (long)((rows + GroupRows - 1) / GroupRows) * (cols / KBlockSize) * K5GroupBytes;

    /// <summary>False when some super-block's d or dmin is an fp16 infinity or NaN (see <see cref="CanRepackQ4_0x8"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // runs once per matrix at load: no tier-0 code
    public static bool CanRepackQ5_Kx8(byte* source, int rows, int cols)
    {
        long blockCount = (long)rows * (cols / KBlockSize);
        for (long b = 0; b < blockCount; b++)
        {
            ushort d = *(ushort*)(source + b * 176), dmin = *(ushort*)(source + b * 176 + 2);
            if ((d & 0x7C00) == 0x7C00 || (dmin & 0x7C00) == 0x7C00)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// A Q5_K matrix [rows, cols] into <see cref="DType.Q5_Kx8"/> at <paramref name="destination"/>
    /// (<see cref="RepackedBytesQ5_Kx8"/> bytes). Sub-block s of a Q5_K super-block (176 bytes: d, dmin, 12 bytes of
    /// scales and mins, 32 bytes qh, 128 bytes qs): element e is the low (s even) or high (s odd) nibble of qs[32(s/2) + e]
    /// plus 16 · bit s of qh[e].
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // runs once per matrix at load: no tier-0 code
    public static void RepackQ5_Kx8(byte* source, int rows, int cols, byte* destination)
    {
        int superBlocks = cols / KBlockSize;
        long rowBytes = (long)superBlocks * 176;
        int groups = (rows + GroupRows - 1) / GroupRows;
        for (int g = 0; g < groups; g++)
        {
            for (int i = 0; i < GroupRows; i++)
            {
                int r = g * GroupRows + i;
                bool pad = r >= rows;
                byte* block = source + r * rowBytes;
                byte* dst = destination + (long)g * superBlocks * K5GroupBytes;
                for (int k = 0; k < superBlocks; k++, block += 176, dst += K5GroupBytes)
                {
                    ((ushort*)(dst + K5dOffset))[i] = pad ? (ushort)0 : *(ushort*)block;
                    ((ushort*)(dst + K5dMinOffset))[i] = pad ? (ushort)0 : *(ushort*)(block + 2);
                    uint* qh = (uint*)(block + 16);    // dword c holds qh[4c..4c+3]: the fifth bits of elements 4c + j
                    for (int s = 0; s < 8; s++)
                    {
                        (int sc, int m) = pad ? (0, 0) : Reference.QuantScalar.ScaleMin(block + 4, s);
                        dst[K5ScalesOffset + s * GroupRows + i] = (byte)sc;
                        dst[K5MinsOffset + s * GroupRows + i] = (byte)m;
                        uint* q = (uint*)(dst + s * GroupBlockBytes) + i;
                        if (pad)
                        {
                            q[0] = q[8] = q[16] = q[24] = 0;
                            ((uint*)(dst + K5HighOffset + s * 32))[i] = 0;
                            continue;
                        }

                        // low four bits: sub-block element e is byte 32(s/2) + e's low (s even) or high (s odd) nibble, as Q4_K
                        byte* qs = block + 48 + 32 * (s >> 1);
                        bool high = (s & 1) != 0;
                        for (int v = 0; v < 4; v++)
                        {
                            ulong u = *(ulong*)(qs + 8 * v);
                            q[8 * v] = Pack((uint)u, (uint)(u >> 32), high);
                        }

                        // fifth bits: byte j of the row's dword gets, at bit c, bit s of qh[4c + j] (element 4c + j = 8v + 4h + j, c = 2v + h)
                        uint fifth = 0;
                        for (int c = 0; c < 8; c++)
                        {
                            fifth |= ((qh[c] >> s) & 0x01010101u) << c;
                        }

                        ((uint*)(dst + K5HighOffset + s * 32))[i] = fifth;
                    }
                }
            }
        }

        static uint Pack(uint first, uint second, bool high) => high
            ? ((first >> 4) & 0x0F0F0F0Fu) | (second & 0xF0F0F0F0u)
            : (first & 0x0F0F0F0Fu) | ((second & 0x0F0F0F0Fu) << 4);
    }

    /// <summary>The code (0..31) of element <paramref name="e"/> (0..31) of row <paramref name="i"/> in sub-block <paramref name="s"/> of a group super-block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int CodeQ5_Kx8(byte* sb, int s, int i, int e)
    {
        int v = e >> 3, h = (e >> 2) & 1;
        int fifth = (sb[K5HighOffset + s * 32 + i * 4 + (e & 3)] >> (2 * v + h)) & 1;
        return CodeQ4_0x8(sb + s * GroupBlockBytes, i, e) | fifth << 4;
    }

    /// <summary>Element (<paramref name="row"/>, <paramref name="col"/>) of a <see cref="DType.Q5_Kx8"/> matrix (slow path).</summary>
    public static float ElementQ5_Kx8(byte* data, int cols, int row, int col)
    {
        var values = stackalloc float[KBlockSize];
        int k = col / KBlockSize;
        byte* sb = data + ((long)(row / GroupRows) * (cols / KBlockSize) + k) * K5GroupBytes;
        DequantizeSuperBlockQ5_Kx8(sb, row % GroupRows, values);
        return values[col % KBlockSize];
    }

    private static void DequantizeRowQ5_Kx8(byte* data, int cols, int row, float* destination)
    {
        int superBlocks = cols / KBlockSize, i = row % GroupRows;
        byte* sb = data + (long)(row / GroupRows) * superBlocks * K5GroupBytes;
        for (int k = 0; k < superBlocks; k++, sb += K5GroupBytes, destination += KBlockSize)
        {
            DequantizeSuperBlockQ5_Kx8(sb, i, destination);
        }
    }

    /// <summary>Row <paramref name="i"/>'s 256 elements of one group super-block, as the Q5_K dequantization computes them: (d·sc)·q − (dmin·m).</summary>
    private static void DequantizeSuperBlockQ5_Kx8(byte* sb, int i, float* destination)
    {
        float d = HalfToSingle(((ushort*)(sb + K5dOffset))[i]), dmin = HalfToSingle(((ushort*)(sb + K5dMinOffset))[i]);
        byte* codes = stackalloc byte[BlockSize];
        for (int s = 0; s < 8; s++)
        {
            float ds = d * sb[K5ScalesOffset + s * GroupRows + i], dm = dmin * sb[K5MinsOffset + s * GroupRows + i];
            for (int e = 0; e < BlockSize; e++)
            {
                codes[e] = (byte)CodeQ5_Kx8(sb, s, i, e);
            }

            ScaleCodes(codes, BlockSize, ds, 0, dm, destination + 32 * s);
        }
    }

    /// <summary>
    /// A Q5_Kx8 sub-block's eight code vectors (0..31 per byte; codes at <paramref name="q"/>, fifth bits at
    /// <paramref name="hb"/>): code vector c's fifth bits are bit c of each byte, moved to bit 4..7 (vectors 0-3 by one
    /// shared 16-bit shift by 4, never across a byte), masked, and <c>vpminub</c> with 16 turns a set bit into 16. One shift
    /// for all eight vectors instead of one each: vector shifts have fewer ports than and/min/or.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q5Codes(byte* q, byte* hb, out Vector256<byte> c0, out Vector256<byte> c1, out Vector256<byte> c2, out Vector256<byte> c3,
        out Vector256<byte> c4, out Vector256<byte> c5, out Vector256<byte> c6, out Vector256<byte> c7)
    {
        Vector256<byte> m = Vector256.Create((byte)0x0F), b4 = Vector256.Create((byte)0x10);
        Vector256<byte> b5 = Vector256.Create((byte)0x20), b6 = Vector256.Create((byte)0x40), b7 = Vector256.Create((byte)0x80);
        Vector256<byte> h1 = Vector256.Load(hb), h0 = Avx2.ShiftLeftLogical(h1.AsUInt16(), 4).AsByte();
        Vector256<byte> v0 = Vector256.Load(q), v1 = Vector256.Load(q + 32), v2 = Vector256.Load(q + 64), v3 = Vector256.Load(q + 96);
        c0 = (v0 & m) | Avx2.Min(h0 & b4, b4);
        c1 = (Avx2.ShiftRightLogical(v0.AsUInt16(), 4).AsByte() & m) | Avx2.Min(h0 & b5, b4);
        c2 = (v1 & m) | Avx2.Min(h0 & b6, b4);
        c3 = (Avx2.ShiftRightLogical(v1.AsUInt16(), 4).AsByte() & m) | Avx2.Min(h0 & b7, b4);
        c4 = (v2 & m) | Avx2.Min(h1 & b4, b4);
        c5 = (Avx2.ShiftRightLogical(v2.AsUInt16(), 4).AsByte() & m) | Avx2.Min(h1 & b5, b4);
        c6 = (v3 & m) | Avx2.Min(h1 & b6, b4);
        c7 = (Avx2.ShiftRightLogical(v3.AsUInt16(), 4).AsByte() & m) | Avx2.Min(h1 & b7, b4);
    }

    /// <summary>5-bit codes in AVX2: four <c>vpmaddubsw</c> per int16 sum (eight would overflow), each half widened.</summary>
    internal readonly struct Q5DotAvx2 : ICodeDot
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Dot(Vector256<byte> c0, Vector256<byte> c1, Vector256<byte> c2, Vector256<byte> c3,
            Vector256<byte> c4, Vector256<byte> c5, Vector256<byte> c6, Vector256<byte> c7, int* x)
            => Q5CodesDot(c0, c1, c2, c3, c4, c5, c6, c7, x, Vector256.Create((short)1));
    }

    /// <summary>The 8 rows' exact dots of a sub-block's code vectors with the activation dwords at <paramref name="x"/>: four <c>vpmaddubsw</c> per int16 sum, each half widened.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Q5CodesDot(Vector256<byte> c0, Vector256<byte> c1, Vector256<byte> c2, Vector256<byte> c3,
        Vector256<byte> c4, Vector256<byte> c5, Vector256<byte> c6, Vector256<byte> c7, int* x, Vector256<short> ones)
    {
        Vector256<short> first = (Avx2.MultiplyAddAdjacent(c0, Vector256.Create(x[0]).AsSByte()) + Avx2.MultiplyAddAdjacent(c1, Vector256.Create(x[1]).AsSByte()))
            + (Avx2.MultiplyAddAdjacent(c2, Vector256.Create(x[2]).AsSByte()) + Avx2.MultiplyAddAdjacent(c3, Vector256.Create(x[3]).AsSByte()));
        Vector256<short> second = (Avx2.MultiplyAddAdjacent(c4, Vector256.Create(x[4]).AsSByte()) + Avx2.MultiplyAddAdjacent(c5, Vector256.Create(x[5]).AsSByte()))
            + (Avx2.MultiplyAddAdjacent(c6, Vector256.Create(x[6]).AsSByte()) + Avx2.MultiplyAddAdjacent(c7, Vector256.Create(x[7]).AsSByte()));
        return Avx2.MultiplyAddAdjacent(first, ones) + Avx2.MultiplyAddAdjacent(second, ones);
    }

    /// <summary>One group of 8 Q5_K rows against one token: the steps of <see cref="DotGroupQ4_Kx8_256{TDot}"/> with 5-bit codes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static Vector256<float> DotGroupQ5_Kx8_256<TDot>(byte* group, int superBlocks, sbyte* x, float* xs, int* xsum)
        where TDot : struct, ICodeDot
    {
        Vector256<int> halfMask = Vector256.Create(unchecked((int)0x8FFFE000));
        Vector256<float> halfScale = HalfScale;
        Vector256<float> acc = Vector256<float>.Zero;
        for (int k = 0; k < superBlocks; k++, group += K5GroupBytes)
        {
            Vector256<float> d = WidenHalves((short*)(group + K5dOffset), halfMask, halfScale);
            Vector256<float> mins = Vector256<float>.Zero;
            for (int p = 0; p < K5GroupBytes - K5HighOffset; p += 64)
            {
                SimdMath.Prefetch(group + PrefetchBytes + K5HighOffset + p);
            }

            for (int s = 0; s < 8; s++, x += BlockSize, xs++, xsum++)
            {
                byte* q = group + s * GroupBlockBytes;
                SimdMath.Prefetch(q + PrefetchBytes);
                SimdMath.Prefetch(q + PrefetchBytes + 64);
                Q5Codes(q, group + K5HighOffset + s * 32, out Vector256<byte> c0, out Vector256<byte> c1, out Vector256<byte> c2, out Vector256<byte> c3,
                    out Vector256<byte> c4, out Vector256<byte> c5, out Vector256<byte> c6, out Vector256<byte> c7);
                Vector256<int> dot = TDot.Dot(c0, c1, c2, c3, c4, c5, c6, c7, (int*)x);
                Vector256<float> sc = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(group + K5ScalesOffset + s * GroupRows));
                Vector256<float> mc = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(group + K5MinsOffset + s * GroupRows));
                acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(dot), d * sc * Vector256.Create(*xs), acc);
                mins = Fma.MultiplyAdd(mc, Vector256.Create(*xs * *xsum), mins);
            }

            acc = Fma.MultiplyAddNegated(WidenHalves((short*)(group + K5dMinOffset), halfMask, halfScale), mins, acc);
        }

        return acc;
    }

    /// <summary>
    /// One group of Q5_K rows against <paramref name="tokenCount"/> tokens: each sub-block's codes joined once for every token;
    /// per token the arithmetic of <see cref="DotGroupQ5_Kx8_256{TDot}"/> in the same order (the same bits as decoding it alone).
    /// <paramref name="acc"/> holds 2·tokenCount vectors: the sums, then the mins accumulators.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotGroupQ5_Kx8N_256<TDot>(byte* group, int superBlocks, sbyte* x, float* xs, int* xsum, int cols, int tokenCount,
        Vector256<float>* acc)
        where TDot : struct, ICodeDot
    {
        Vector256<int> halfMask = Vector256.Create(unchecked((int)0x8FFFE000));
        Vector256<float> halfScale = HalfScale;
        int blocks = cols / BlockSize;
        Vector256<float>* mins = acc + tokenCount;
        for (int t = 0; t < tokenCount; t++)
        {
            acc[t] = Vector256<float>.Zero;
        }

        for (int k = 0; k < superBlocks; k++, group += K5GroupBytes)
        {
            Vector256<float> d = WidenHalves((short*)(group + K5dOffset), halfMask, halfScale);
            for (int t = 0; t < tokenCount; t++)
            {
                mins[t] = Vector256<float>.Zero;
            }

            for (int s = 0; s < 8; s++)
            {
                byte* q = group + s * GroupBlockBytes, hb = group + K5HighOffset + s * 32;
                SimdMath.Prefetch(q + PrefetchBytes);
                SimdMath.Prefetch(q + PrefetchBytes + 64);
                Vector256<float> sc = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(group + K5ScalesOffset + s * GroupRows));
                Vector256<float> mc = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(group + K5MinsOffset + s * GroupRows));
                int b = 8 * k + s;
                Q5Codes(q, hb, out Vector256<byte> c0, out Vector256<byte> c1, out Vector256<byte> c2, out Vector256<byte> c3,
                    out Vector256<byte> c4, out Vector256<byte> c5, out Vector256<byte> c6, out Vector256<byte> c7);   // once for every token
                for (int t = 0; t < tokenCount; t++)
                {
                    long o = (long)t * blocks + b;
                    Vector256<int> dot = TDot.Dot(c0, c1, c2, c3, c4, c5, c6, c7, (int*)(x + (long)t * cols + (long)b * BlockSize));
                    acc[t] = Fma.MultiplyAdd(Avx.ConvertToVector256Single(dot), d * sc * Vector256.Create(xs[o]), acc[t]);
                    mins[t] = Fma.MultiplyAdd(mc, Vector256.Create(xs[o] * xsum[o]), mins[t]);
                }
            }

            Vector256<float> dmin = WidenHalves((short*)(group + K5dMinOffset), halfMask, halfScale);
            for (int t = 0; t < tokenCount; t++)
            {
                acc[t] = Fma.MultiplyAddNegated(dmin, mins[t], acc[t]);
            }
        }
    }

    /// <summary>The scalar twin of <see cref="DotGroupQ5_Kx8_256{TDot}"/>, bit for bit.</summary>
    internal static void DotGroupQ5_Kx8Scalar(byte* group, int superBlocks, sbyte* x, float* xs, int* xsum, float* destination)
    {
        float* half = HalfTable.Values;
        for (int i = 0; i < GroupRows; i++)
        {
            float acc = 0;
            byte* sb = group;
            for (int k = 0; k < superBlocks; k++, sb += K5GroupBytes)
            {
                float d = half[((ushort*)(sb + K5dOffset))[i]], mins = 0;
                for (int s = 0; s < 8; s++)
                {
                    int b = 8 * k + s;
                    sbyte* xb = x + (long)b * BlockSize;
                    int dot = 0;
                    for (int e = 0; e < BlockSize; e++)
                    {
                        dot += CodeQ5_Kx8(sb, s, i, e) * xb[e];
                    }

                    acc = MathF.FusedMultiplyAdd(dot, d * sb[K5ScalesOffset + s * GroupRows + i] * xs[b], acc);
                    mins = MathF.FusedMultiplyAdd(sb[K5MinsOffset + s * GroupRows + i], xs[b] * xsum[b], mins);
                }

                acc = MathF.FusedMultiplyAdd(-half[((ushort*)(sb + K5dMinOffset))[i]], mins, acc);
            }

            destination[i] = acc;
        }
    }
}

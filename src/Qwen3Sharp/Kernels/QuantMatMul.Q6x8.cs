using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Kernels;

/// <summary>
/// Q6_K repacked into groups of 8 rows (<see cref="DType.Q6_Kx8"/>), the <see cref="DType.Q4_Kx8"/> idea for 6-bit
/// codes. A 32-element sub-block of 8 rows unpacks into eight 32-byte vectors u0..u7 (u_k: elements 4k..4k+3 of each row,
/// one row per 32-bit lane), so one activation dword broadcast to every lane meets all 8 rows at once. They are stored in
/// six: four vectors hold u0, u2, u4, u6 whole in bits 0–5 and the top two bits of u1, u3, u5, u7 in bits 6–7, two more
/// the low nibbles of u1 and u3, u5 and u7. Per sub-block and group: 6 loads, 22 unpacking operations (4 masks for the
/// even vectors; a mask, or a shift and a mask, for an odd one's nibble, a shift and a mask for its top bits, an or;
/// the same six vectors as low-nibble planes plus a 2-bit plane took 34), 8 <c>vpmaddubsw</c> of the unsigned codes
/// q (0..63) with broadcast activation dwords.
/// The signed code is q − 32: each 16-element group's int16 pair sums take off 32·(the activation pair sums), which the
/// product prepares once per token (<see cref="PrepareQ6Offsets"/>); int16 adds wrap, and the true sums
/// |Σ (q − 32)·x| ≤ 8·32·127 = 32512 fit, so the result is exact although the unsigned partial sums do not fit.
/// One <c>vpmaddwd</c> per group against that group's int8 scales (widened by <c>vpmovsxbw</c> and duplicated to both
/// words of each row's lane by one unpack) gives each row's exact Σ_g sc_g·Σ (q − 32)·x in its lane
/// (≤ 128·32·32·127 &lt; 2^24: exact in float32 too), then one FMA with d·d_x for 8 rows. No horizontal sums.
/// <para>
/// Against the row-layout int8 kernel (<see cref="DotQ6KI1_256"/>, the same activation quantization and the same
/// integer math) results differ only in float32 summation order: that kernel rounds each 32-element block in eight
/// partial sums (four elements each) spread over sixteen accumulator lanes that are added at the end; this one rounds
/// each block's exact sum once. <see cref="DotGroupQ6_Kx8Scalar"/> is the AVX2 kernel's twin bit for bit.
/// </para>
/// </summary>
public static unsafe partial class QuantMatMul
{
    /// <summary>Bytes of one sub-block's codes in a <see cref="DType.Q6_Kx8"/> group (8 rows × 32 six-bit codes: six vectors).</summary>
    private const int Q6SubBlockBytes = 192;

    /// <summary>Bytes of one super-block of a <see cref="DType.Q6_Kx8"/> group: codes, scales, d (8·210).</summary>
    private const int Q6GroupBytes = 8 * Q6SubBlockBytes + 8 * 16 + 2 * GroupRows;

    private const int Q6ScalesOffset = 8 * Q6SubBlockBytes, Q6dOffset = Q6ScalesOffset + 8 * 16;

    /// <summary>Bytes of a <see cref="DType.Q6_Kx8"/> matrix (the last group padded to 8 rows): as many as Q6_K's.</summary>
    public static long RepackedBytesQ6_Kx8(int rows, int cols) => (long)((rows + GroupRows - 1) / GroupRows) * (cols / KBlockSize) * Q6GroupBytes;

    /// <summary>False when some super-block's d is an fp16 infinity or NaN (see <see cref="CanRepackQ4_0x8"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // runs once per matrix at load: no tier-0 code
    public static bool CanRepackQ6_Kx8(byte* source, int rows, int cols)
    {
        long blockCount = (long)rows * (cols / KBlockSize);
        for (long b = 0; b < blockCount; b++)
        {
            if ((*(ushort*)(source + b * 210 + 208) & 0x7C00) == 0x7C00)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// A Q6_K matrix [rows, cols] into <see cref="DType.Q6_Kx8"/> at <paramref name="destination"/>
    /// (<see cref="RepackedBytesQ6_Kx8"/> bytes; the layout is documented at <see cref="DType.Q6_Kx8"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // runs once per matrix at load: no tier-0 code
    public static void RepackQ6_Kx8(byte* source, int rows, int cols, byte* destination)
    {
        int superBlocks = cols / KBlockSize;
        long rowBytes = (long)superBlocks * 210;
        int groups = (rows + GroupRows - 1) / GroupRows;
        byte* q = stackalloc byte[KBlockSize];     // one super-block's codes, 0..63, in element order
        for (int g = 0; g < groups; g++)
        {
            for (int i = 0; i < GroupRows; i++)
            {
                int r = g * GroupRows + i;
                bool pad = r >= rows;
                byte* block = source + r * rowBytes;
                byte* dst = destination + (long)g * superBlocks * Q6GroupBytes;
                for (int k = 0; k < superBlocks; k++, block += 210, dst += Q6GroupBytes)
                {
                    for (int e = 0; e < KBlockSize; e++)
                    {
                        // element e: sub-block s = 4n + p, ql byte 64n + 32(p & 1) + l (nibble p >> 1), qh byte 32n + l (bits 2p, 2p + 1)
                        int n = e >> 7, p = (e >> 5) & 3, l = e & 31;
                        q[e] = pad ? (byte)0
                            : (byte)(((block[64 * n + 32 * (p & 1) + l] >> (4 * (p >> 1))) & 0xF) | (((block[128 + 32 * n + l] >> (2 * p)) & 3) << 4));
                    }

                    ((ushort*)(dst + Q6dOffset))[i] = pad ? (ushort)0 : *(ushort*)(block + 208);
                    for (int s = 0; s < 8; s++)
                    {
                        byte* qs = q + 32 * s;
                        byte* sub = dst + s * Q6SubBlockBytes + 4 * i;
                        for (int j = 0; j < 4; j++)
                        {
                            for (int m = 0; m < 4; m++)   // vector m: element 8m + j whole, the top bits of element 8m + 4 + j
                            {
                                sub[32 * m + j] = (byte)(qs[8 * m + j] | ((qs[8 * m + 4 + j] >> 4) << 6));
                            }

                            for (int n = 0; n < 2; n++)   // vector 4 + n: the low nibbles of elements 16n + 4 + j and 16n + 12 + j
                            {
                                sub[128 + 32 * n + j] = (byte)((qs[16 * n + 4 + j] & 0xF) | ((qs[16 * n + 12 + j] & 0xF) << 4));
                            }
                        }

                        for (int h = 0; h < 2; h++)      // the scales of groups 2s + h: rows 0..3 at 4h, rows 4..7 at 8 + 4h
                        {
                            dst[Q6ScalesOffset + 16 * s + 8 * (i >> 2) + 4 * h + (i & 3)] = pad ? (byte)0 : block[192 + 2 * s + h];
                        }
                    }
                }
            }
        }
    }

    /// <summary>Row <paramref name="i"/>'s code (0..63) of element <paramref name="e"/> (0..31) of sub-block <paramref name="s"/> of a group super-block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int CodeQ6_Kx8(byte* sb, int s, int i, int e)
    {
        int k = e >> 2, at = 4 * i + (e & 3);   // unpacked vector u_k, its byte of row i
        byte* sub = sb + s * Q6SubBlockBytes;
        byte whole = sub[32 * (k >> 1) + at];
        if ((k & 1) == 0)
        {
            return whole & 0x3F;
        }

        byte nibbles = sub[128 + 32 * (k >> 2) + at];
        return ((k & 2) == 0 ? nibbles & 0xF : nibbles >> 4) | ((whole >> 6) << 4);
    }

    /// <summary>Row <paramref name="i"/>'s int8 scale of 16-element group <paramref name="h"/> (0, 1) of sub-block <paramref name="s"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int ScaleQ6_Kx8(byte* sb, int s, int h, int i) => ((sbyte*)sb)[Q6ScalesOffset + 16 * s + 8 * (i >> 2) + 4 * h + (i & 3)];

    /// <summary>Element (<paramref name="row"/>, <paramref name="col"/>) of a <see cref="DType.Q6_Kx8"/> matrix (slow path).</summary>
    public static float ElementQ6_Kx8(byte* data, int cols, int row, int col)
    {
        var values = stackalloc float[KBlockSize];
        int k = col / KBlockSize;
        byte* sb = data + ((long)(row / GroupRows) * (cols / KBlockSize) + k) * Q6GroupBytes;
        DequantizeSuperBlockQ6_Kx8(sb, row % GroupRows, values);
        return values[col % KBlockSize];
    }

    private static void DequantizeRowQ6_Kx8(byte* data, int cols, int row, float* destination)
    {
        int superBlocks = cols / KBlockSize, i = row % GroupRows;
        byte* sb = data + (long)(row / GroupRows) * superBlocks * Q6GroupBytes;
        for (int k = 0; k < superBlocks; k++, sb += Q6GroupBytes, destination += KBlockSize)
        {
            DequantizeSuperBlockQ6_Kx8(sb, i, destination);
        }
    }

    /// <summary>
    /// Row <paramref name="i"/>'s 256 elements of one group super-block, as the Q6_K dequantization computes them:
    /// (d·sc)·(q − 32). Per sub-block the row's six code dwords give its 32 codes four at a time (prefill panels and
    /// embedding lookups go through here), then 8 at a time to float32.
    /// </summary>
    private static void DequantizeSuperBlockQ6_Kx8(byte* sb, int i, float* destination)
    {
        float d = HalfToSingle(((ushort*)(sb + Q6dOffset))[i]);
        uint* codes = stackalloc uint[8];     // one sub-block's 32 codes of row i, in element order
        byte* q = (byte*)codes;
        for (int s = 0; s < 8; s++, destination += BlockSize)
        {
            uint* sub = (uint*)(sb + s * Q6SubBlockBytes) + i;   // vector v's dword of row i: sub[8v]
            for (int m = 0; m < 4; m++)
            {
                uint whole = sub[8 * m], nibbles = sub[8 * (4 + (m >> 1))] >> (4 * (m & 1));
                codes[2 * m] = whole & 0x3F3F3F3Fu;                                            // elements 8m..8m + 3
                codes[2 * m + 1] = ((whole >> 2) & 0x30303030u) | (nibbles & 0x0F0F0F0Fu);      // 8m + 4..8m + 7
            }

            for (int h = 0; h < 2; h++)
            {
                ScaleCodes(q + 16 * h, 16, d * ScaleQ6_Kx8(sb, s, h, i), 32, 0, destination + 16 * h);
            }
        }
    }

    /// <summary>
    /// Per token and 16-element group of the activation codes <paramref name="x"/> ([groupCount, 16]), the int16 pair
    /// 32·Σ_k (x[4k] + x[4k + 1]) | 32·Σ_k (x[4k + 2] + x[4k + 3]) (k over the group's four dwords, each ≤ 32·8·127):
    /// what <c>vpmaddubsw</c> of the code offset 32 with those activation dwords sums to, taken off the unsigned codes' sums.
    /// </summary>
    internal static void PrepareQ6Offsets(sbyte* x, long groupCount, int* destination)
    {
        for (long g = 0; g < groupCount; g++, x += 16)
        {
            int lo = 0, hi = 0;
            for (int k = 0; k < 4; k++)
            {
                lo += x[4 * k] + x[4 * k + 1];
                hi += x[4 * k + 2] + x[4 * k + 3];
            }

            destination[g] = (ushort)(32 * lo) | (32 * hi << 16);
        }
    }

    /// <summary>
    /// Half a sub-block's unpacked code vectors (0..63): u_{4n}..u_{4n+3} from the whole-code vectors <paramref name="a0"/>
    /// (u_{4n}, top bits of u_{4n+1}), <paramref name="a1"/> (u_{4n+2}, top bits of u_{4n+3}) and the nibble vector <paramref name="b"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void UnpackQ6(Vector256<byte> a0, Vector256<byte> a1, Vector256<byte> b,
        out Vector256<byte> u0, out Vector256<byte> u1, out Vector256<byte> u2, out Vector256<byte> u3)
    {
        Vector256<byte> code = Vector256.Create((byte)0x3F), m = Vector256.Create((byte)0x0F), top = Vector256.Create((byte)0x30);
        u0 = a0 & code;
        u1 = (b & m) | (Avx2.ShiftRightLogical(a0.AsUInt16(), 2).AsByte() & top);
        u2 = a1 & code;
        u3 = (Avx2.ShiftRightLogical(b.AsUInt16(), 4).AsByte() & m) | (Avx2.ShiftRightLogical(a1.AsUInt16(), 2).AsByte() & top);
    }

    /// <summary>
    /// One sub-block's Σ_g sc_g·Σ (q − 32)·x for the 8 rows (lane i: row i), exact: <paramref name="x"/> its 8 activation
    /// dwords, <paramref name="offsets"/> its two groups' pair offsets (<see cref="PrepareQ6Offsets"/>), <paramref name="s0"/>
    /// and <paramref name="s1"/> the two groups' scales, each row's in both words of its lane.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Q6GroupDot(Vector256<byte> u0, Vector256<byte> u1, Vector256<byte> u2, Vector256<byte> u3,
        Vector256<byte> u4, Vector256<byte> u5, Vector256<byte> u6, Vector256<byte> u7, int* x, int* offsets,
        Vector256<short> s0, Vector256<short> s1)
    {
        // int16 adds wrap: the unsigned sums may pass 2^15, the sums less the offsets do not
        Vector256<short> p0 = (Avx2.MultiplyAddAdjacent(u0, Vector256.Create(x[0]).AsSByte()) + Avx2.MultiplyAddAdjacent(u1, Vector256.Create(x[1]).AsSByte()))
            + (Avx2.MultiplyAddAdjacent(u2, Vector256.Create(x[2]).AsSByte()) + Avx2.MultiplyAddAdjacent(u3, Vector256.Create(x[3]).AsSByte()))
            - Vector256.Create(offsets[0]).AsInt16();
        Vector256<short> p1 = (Avx2.MultiplyAddAdjacent(u4, Vector256.Create(x[4]).AsSByte()) + Avx2.MultiplyAddAdjacent(u5, Vector256.Create(x[5]).AsSByte()))
            + (Avx2.MultiplyAddAdjacent(u6, Vector256.Create(x[6]).AsSByte()) + Avx2.MultiplyAddAdjacent(u7, Vector256.Create(x[7]).AsSByte()))
            - Vector256.Create(offsets[1]).AsInt16();
        return Avx2.MultiplyAddAdjacent(p0, s0) + Avx2.MultiplyAddAdjacent(p1, s1);
    }

    /// <summary>A sub-block's two groups' scales (<c>vpmovsxbw</c> of its 16 bytes), each row's in both words of its lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q6Scales(byte* scales, out Vector256<short> s0, out Vector256<short> s1)
    {
        Vector256<short> s = Avx2.ConvertToVector256Int16((sbyte*)scales);   // [g0 r0..3, g1 r0..3 | g0 r4..7, g1 r4..7]
        s0 = Avx2.UnpackLow(s, s);
        s1 = Avx2.UnpackHigh(s, s);
    }

    /// <summary>Prefetches the super-block <see cref="PrefetchBytes"/> ahead of <paramref name="sb"/>: its scales and d (sub-block lines go with each sub-block).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchQ6Tail(byte* sb)
    {
        SimdMath.Prefetch(sb + PrefetchBytes + Q6ScalesOffset);
        SimdMath.Prefetch(sb + PrefetchBytes + Q6ScalesOffset + 64);
        SimdMath.Prefetch(sb + PrefetchBytes + Q6ScalesOffset + 128);
    }

    /// <summary>Prefetches sub-block <paramref name="s"/>'s three lines <see cref="PrefetchBytes"/> ahead.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchQ6SubBlock(byte* sb, int s)
    {
        byte* p = sb + PrefetchBytes + s * Q6SubBlockBytes;
        SimdMath.Prefetch(p);
        SimdMath.Prefetch(p + 64);
        SimdMath.Prefetch(p + 128);
    }

    /// <summary>
    /// One group of 8 Q6_K rows against one token (<paramref name="offsets"/>: its <see cref="PrepareQ6Offsets"/>, two per
    /// sub-block): per sub-block the 8 rows' exact Σ_g sc_g·Σ (q − 32)·x times d·d_x, one FMA.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static Vector256<float> DotGroupQ6_Kx8_256(byte* group, int superBlocks, sbyte* x, float* xs, int* offsets)
    {
        Vector256<int> halfMask = Vector256.Create(unchecked((int)0x8FFFE000));
        Vector256<float> halfScale = HalfScale;
        Vector256<float> acc = Vector256<float>.Zero;
        for (int k = 0; k < superBlocks; k++, group += Q6GroupBytes)
        {
            Vector256<float> d = WidenHalves((short*)(group + Q6dOffset), halfMask, halfScale);
            PrefetchQ6Tail(group);
            for (int s = 0; s < 8; s++, x += BlockSize, xs++, offsets += 2)
            {
                PrefetchQ6SubBlock(group, s);
                byte* q = group + s * Q6SubBlockBytes;
                UnpackQ6(Vector256.Load(q), Vector256.Load(q + 32), Vector256.Load(q + 128), out var u0, out var u1, out var u2, out var u3);
                UnpackQ6(Vector256.Load(q + 64), Vector256.Load(q + 96), Vector256.Load(q + 160), out var u4, out var u5, out var u6, out var u7);
                Q6Scales(group + Q6ScalesOffset + 16 * s, out var s0, out var s1);
                Vector256<int> dot = Q6GroupDot(u0, u1, u2, u3, u4, u5, u6, u7, (int*)x, offsets, s0, s1);
                acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(dot), d * Vector256.Create(*xs), acc);
            }
        }

        return acc;
    }

    /// <summary>
    /// Two Q6_K groups against one token in one pass (as <see cref="DotGroupPairQ8_0x8_256"/>): each activation dword is
    /// broadcast once for both groups' unpacked codes, two independent chains; each lane has the bits
    /// <see cref="DotGroupQ6_Kx8_256"/> gives it (int16 adds wrap, so the pair sums less the offsets are exact in any
    /// order; the int32 and float steps are the same).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotGroupPairQ6_Kx8_256(byte* ga, byte* gb, int superBlocks, sbyte* x, float* xs, int* offsets,
        out Vector256<float> ra, out Vector256<float> rb)
    {
        Vector256<int> halfMask = Vector256.Create(unchecked((int)0x8FFFE000));
        Vector256<float> halfScale = HalfScale;
        Vector256<float> acca = Vector256<float>.Zero, accb = Vector256<float>.Zero;
        for (int k = 0; k < superBlocks; k++, ga += Q6GroupBytes, gb += Q6GroupBytes)
        {
            Vector256<float> da = WidenHalves((short*)(ga + Q6dOffset), halfMask, halfScale);
            Vector256<float> db = WidenHalves((short*)(gb + Q6dOffset), halfMask, halfScale);
            PrefetchQ6Tail(ga);
            PrefetchQ6Tail(gb);
            for (int s = 0; s < 8; s++, x += BlockSize, xs++, offsets += 2)
            {
                PrefetchQ6SubBlock(ga, s);
                PrefetchQ6SubBlock(gb, s);
                byte* qa = ga + s * Q6SubBlockBytes, qb = gb + s * Q6SubBlockBytes;
                Q6HalfPair(qa, qa + 128, qb, qb + 128, (int*)x, offsets[0], out Vector256<short> a0, out Vector256<short> b0);
                Q6HalfPair(qa + 64, qa + 160, qb + 64, qb + 160, (int*)x + 4, offsets[1], out Vector256<short> a1, out Vector256<short> b1);
                Q6Scales(ga + Q6ScalesOffset + 16 * s, out var sa0, out var sa1);
                Q6Scales(gb + Q6ScalesOffset + 16 * s, out var sb0, out var sb1);
                Vector256<int> dota = Avx2.MultiplyAddAdjacent(a0, sa0) + Avx2.MultiplyAddAdjacent(a1, sa1);
                Vector256<int> dotb = Avx2.MultiplyAddAdjacent(b0, sb0) + Avx2.MultiplyAddAdjacent(b1, sb1);
                Vector256<float> xsk = Vector256.Create(*xs);
                acca = Fma.MultiplyAdd(Avx.ConvertToVector256Single(dota), da * xsk, acca);
                accb = Fma.MultiplyAdd(Avx.ConvertToVector256Single(dotb), db * xsk, accb);
            }
        }

        ra = acca;
        rb = accb;
    }

    /// <summary>
    /// Half a sub-block (16-element group n: whole-code vectors at <c>sub-block + 64n</c> and <c>+ 32</c>, the nibble
    /// vector at <c>sub-block + 128 + 32n</c>) of two groups at once: each one's codes unpacked by <see cref="UnpackQ6"/>,
    /// their int16 pair sums with the 4 activation dwords at <paramref name="x"/>, each dword broadcast once for both,
    /// less <paramref name="offset"/> (<see cref="PrepareQ6Offsets"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q6HalfPair(byte* qa, byte* na, byte* qb, byte* nb, int* x, int offset, out Vector256<short> pa, out Vector256<short> pb)
    {
        UnpackQ6(Vector256.Load(qa), Vector256.Load(qa + 32), Vector256.Load(na), out var a0, out var a1, out var a2, out var a3);
        UnpackQ6(Vector256.Load(qb), Vector256.Load(qb + 32), Vector256.Load(nb), out var b0, out var b1, out var b2, out var b3);
        Vector256<sbyte> xv = Vector256.Create(x[0]).AsSByte();
        Vector256<short> sa = Avx2.MultiplyAddAdjacent(a0, xv), sb = Avx2.MultiplyAddAdjacent(b0, xv);
        xv = Vector256.Create(x[1]).AsSByte();
        sa += Avx2.MultiplyAddAdjacent(a1, xv);
        sb += Avx2.MultiplyAddAdjacent(b1, xv);
        xv = Vector256.Create(x[2]).AsSByte();
        sa += Avx2.MultiplyAddAdjacent(a2, xv);
        sb += Avx2.MultiplyAddAdjacent(b2, xv);
        xv = Vector256.Create(x[3]).AsSByte();
        sa += Avx2.MultiplyAddAdjacent(a3, xv);
        sb += Avx2.MultiplyAddAdjacent(b3, xv);
        Vector256<short> o = Vector256.Create(offset).AsInt16();   // int16 adds wrap: exact once the offset is off
        pa = sa - o;
        pb = sb - o;
    }

    /// <summary>
    /// One group of Q6_K rows against <paramref name="tokenCount"/> tokens (<paramref name="offsets"/> rows
    /// <paramref name="cols"/>/16 apart): each sub-block's codes and scales unpacked once; per token the arithmetic of
    /// <see cref="DotGroupQ6_Kx8_256"/> in the same order (the same bits as decoding it alone).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotGroupQ6_Kx8N_256(byte* group, int superBlocks, sbyte* x, float* xs, int* offsets, int cols, int tokenCount,
        Vector256<float>* acc)
    {
        Vector256<int> halfMask = Vector256.Create(unchecked((int)0x8FFFE000));
        Vector256<float> halfScale = HalfScale;
        int blocks = cols / BlockSize;
        for (int t = 0; t < tokenCount; t++)
        {
            acc[t] = Vector256<float>.Zero;
        }

        for (int k = 0; k < superBlocks; k++, group += Q6GroupBytes)
        {
            Vector256<float> d = WidenHalves((short*)(group + Q6dOffset), halfMask, halfScale);
            PrefetchQ6Tail(group);
            for (int s = 0; s < 8; s++)
            {
                PrefetchQ6SubBlock(group, s);
                byte* q = group + s * Q6SubBlockBytes;
                UnpackQ6(Vector256.Load(q), Vector256.Load(q + 32), Vector256.Load(q + 128), out var u0, out var u1, out var u2, out var u3);
                UnpackQ6(Vector256.Load(q + 64), Vector256.Load(q + 96), Vector256.Load(q + 160), out var u4, out var u5, out var u6, out var u7);
                Q6Scales(group + Q6ScalesOffset + 16 * s, out var s0, out var s1);
                int b = 8 * k + s;
                for (int t = 0; t < tokenCount; t++)
                {
                    int* xb = (int*)(x + (long)t * cols + (long)b * BlockSize);
                    Vector256<int> dot = Q6GroupDot(u0, u1, u2, u3, u4, u5, u6, u7, xb, offsets + (long)t * 2 * blocks + 2 * b, s0, s1);
                    acc[t] = Fma.MultiplyAdd(Avx.ConvertToVector256Single(dot), d * Vector256.Create(xs[(long)t * blocks + b]), acc[t]);
                }
            }
        }
    }

    /// <summary>
    /// The scalar twin of <see cref="DotGroupQ6_Kx8_256"/>, bit for bit: per row and sub-block the exact integer
    /// Σ_g sc_g·Σ (q − 32)·x (computed directly, not through the offsets), then one fused multiply-add with d·d_x.
    /// </summary>
    internal static void DotGroupQ6_Kx8Scalar(byte* group, int superBlocks, sbyte* x, float* xs, float* destination)
    {
        float* half = HalfTable.Values;
        for (int i = 0; i < GroupRows; i++)
        {
            float acc = 0;
            byte* sb = group;
            for (int k = 0; k < superBlocks; k++, sb += Q6GroupBytes)
            {
                float d = half[((ushort*)(sb + Q6dOffset))[i]];
                for (int s = 0; s < 8; s++)
                {
                    int b = 8 * k + s;
                    sbyte* xb = x + (long)b * BlockSize;
                    int dot = 0;
                    for (int h = 0; h < 2; h++)
                    {
                        int groupDot = 0;
                        for (int e = 16 * h; e < 16 * h + 16; e++)
                        {
                            groupDot += (CodeQ6_Kx8(sb, s, i, e) - 32) * xb[e];
                        }

                        dot += ScaleQ6_Kx8(sb, s, h, i) * groupDot;
                    }

                    acc = MathF.FusedMultiplyAdd(dot, d * xs[b], acc);
                }
            }

            destination[i] = acc;
        }
    }
}

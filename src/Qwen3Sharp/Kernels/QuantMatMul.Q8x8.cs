using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Kernels;

/// <summary>
/// Q8_0 repacked into groups of 8 rows (<see cref="DType.Q8_0x8"/>), the layout of <see cref="DType.Q4_0x8"/> with
/// whole code bytes: one 32-byte vector holds 4 consecutive codes of each of the 8 rows (one row per 32-bit lane), so an
/// activation dword broadcast to every lane meets all 8 rows at once. Per block and group: 8 loads, and per vector the
/// sign trick (<c>vpsignb</c> moves the weight's sign onto the activation, <c>vpabsb</c> makes the weight unsigned),
/// one <c>vpmaddubsw</c> (pairs ≤ 2·127·127 = 32258: no saturation; two would overflow int16, so each is widened by
/// <c>vpmaddwd</c> with ones before the add), then one int→float conversion, the 8 rows' fp16 scales widened in-vector
/// and one FMA for the 8 rows. About 6.6 vector operations per row and block against the row kernel's ~11 (its scale
/// lookup, broadcast, conversion and FMA are per row), and no horizontal sums. The integer block dot is exact, so
/// results differ from the row kernel only in float32 summation order; <see cref="DotGroupQ8_0x8Scalar"/> is the AVX2
/// kernel's twin bit for bit.
/// </summary>
public static unsafe partial class QuantMatMul
{
    /// <summary>Code bytes of one Q8_0 block of a group (8 rows × 32 bytes).</summary>
    private const int Q8GroupBlockBytes = GroupRows * 32;

    /// <summary>Bytes of one block of a <see cref="DType.Q8_0x8"/> group: its 8 scales, then its codes (one sequential stream per group, as Q4_0x8's blocks).</summary>
    private const int Q8BlockBytes = GroupScaleBytes + Q8GroupBlockBytes;

    /// <summary>Bytes of one group of 8 Q8_0 rows of <paramref name="cols"/> columns (per block: scales, then codes).</summary>
    private static long Q8GroupBytes(int cols) => (long)cols / BlockSize * Q8BlockBytes;

    /// <summary>Bytes of a <see cref="DType.Q8_0x8"/> matrix (the last group padded to 8 rows).</summary>
    public static long RepackedBytesQ8_0x8(int rows, int cols) => (long)((rows + GroupRows - 1) / GroupRows) * Q8GroupBytes(cols);

    /// <summary>
    /// False when some block scale is an fp16 infinity or NaN (see <see cref="CanRepackQ4_0x8"/>). A code of −128 is fine:
    /// <c>vpabsb</c> gives 0x80, which <c>vpmaddubsw</c> reads as unsigned 128 (pairs ≤ 2·128·127 &lt; 2^15).
    /// </summary>
    public static bool CanRepackQ8_0x8(byte* source, int rows, int cols)
    {
        long blockCount = (long)rows * (cols / BlockSize);
        for (long b = 0; b < blockCount; b++)
        {
            if ((*(ushort*)(source + b * 34) & 0x7C00) == 0x7C00)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// A Q8_0 matrix [rows, cols] (row-major blocks) into <see cref="DType.Q8_0x8"/> at <paramref name="destination"/>
    /// (<see cref="RepackedBytesQ8_0x8"/> bytes): per group of 8 rows and block, the 8 rows' scales, then the block's codes as
    /// 8 vectors [vector v][row i][4 bytes] (codes 4v..4v+3 of row i).
    /// </summary>
    public static void RepackQ8_0x8(byte* source, int rows, int cols, byte* destination)
    {
        if (Avx2.IsSupported)
        {
            RepackQ8_0x8Avx2(source, rows, cols, destination);
            return;
        }

        RepackQ8_0x8Scalar(source, rows, cols, destination, 0);
    }

    /// <summary>
    /// <see cref="RepackQ8_0x8"/> with each whole group's blocks as an 8 × 8 transpose of 32-bit lanes (row i's 32 codes in
    /// one unaligned load; out come the 8 code vectors, lane i row i's codes 4v..4v+3) instead of 64 four-byte moves: the
    /// repack was a third of a Q8_0 GGUF load's CPU time. The same bytes as <see cref="RepackQ8_0x8Scalar"/> (test); a short
    /// last group takes the scalar loop, which pads it with zero rows.
    /// </summary>
    internal static void RepackQ8_0x8Avx2(byte* source, int rows, int cols, byte* destination)
    {
        int blocks = cols / BlockSize;
        long rowBytes = (long)blocks * 34, groupBytes = Q8GroupBytes(cols);
        int whole = rows / GroupRows;
        for (int g = 0; g < whole; g++)
        {
            byte* group = destination + g * groupBytes;
            byte* row0 = source + (long)g * GroupRows * rowBytes;
            for (int k = 0; k < blocks; k++)
            {
                byte* b0 = row0 + k * 34L;
                ushort* scales = (ushort*)(group + (long)k * Q8BlockBytes);
                for (int i = 0; i < GroupRows; i++)
                {
                    scales[i] = *(ushort*)(b0 + i * rowBytes);
                }

                Vector256<uint> r0 = Vector256.Load((uint*)(b0 + 2)), r1 = Vector256.Load((uint*)(b0 + rowBytes + 2));
                Vector256<uint> r2 = Vector256.Load((uint*)(b0 + 2 * rowBytes + 2)), r3 = Vector256.Load((uint*)(b0 + 3 * rowBytes + 2));
                Vector256<uint> r4 = Vector256.Load((uint*)(b0 + 4 * rowBytes + 2)), r5 = Vector256.Load((uint*)(b0 + 5 * rowBytes + 2));
                Vector256<uint> r6 = Vector256.Load((uint*)(b0 + 6 * rowBytes + 2)), r7 = Vector256.Load((uint*)(b0 + 7 * rowBytes + 2));
                SimdMath.Transpose8x8(r0, r1, r2, r3, r4, r5, r6, r7, (uint*)((byte*)scales + GroupScaleBytes));
            }
        }

        if (whole * GroupRows < rows)
        {
            RepackQ8_0x8Scalar(source, rows, cols, destination, whole);
        }
    }

    /// <summary>The scalar form of <see cref="RepackQ8_0x8"/> from group <paramref name="firstGroup"/> on (rows past the matrix: zeros).</summary>
    internal static void RepackQ8_0x8Scalar(byte* source, int rows, int cols, byte* destination, int firstGroup)
    {
        int blocks = cols / BlockSize;
        long rowBytes = (long)blocks * 34, groupBytes = Q8GroupBytes(cols);
        int groups = (rows + GroupRows - 1) / GroupRows;
        for (int g = firstGroup; g < groups; g++)
        {
            byte* group = destination + g * groupBytes;   // [blocks]: [8 rows] fp16 scales, then [8 vectors][8 rows][4 bytes] codes
            for (int i = 0; i < GroupRows; i++)
            {
                int r = g * GroupRows + i;
                byte* block = source + r * rowBytes;
                for (int k = 0; k < blocks; k++, block += 34)
                {
                    ushort* scales = (ushort*)(group + (long)k * Q8BlockBytes);
                    uint* q = (uint*)((byte*)scales + GroupScaleBytes) + i;
                    for (int v = 0; v < 8; v++)
                    {
                        q[v * GroupRows] = r < rows ? *(uint*)(block + 2 + 4 * v) : 0;
                    }

                    scales[i] = r < rows ? *(ushort*)block : (ushort)0;
                }
            }
        }
    }

    /// <summary>Element (<paramref name="row"/>, <paramref name="col"/>) of a <see cref="DType.Q8_0x8"/> matrix (slow path).</summary>
    public static float ElementQ8_0x8(byte* data, int cols, int row, int col)
    {
        int i = row % GroupRows, k = col / BlockSize, e = col % BlockSize;
        byte* block = data + row / GroupRows * Q8GroupBytes(cols) + (long)k * Q8BlockBytes;
        return HalfToSingle(((ushort*)block)[i]) * (sbyte)block[GroupScaleBytes + (e >> 2) * 32 + i * 4 + (e & 3)];
    }

    /// <summary>
    /// Row <paramref name="row"/> of a <see cref="DType.Q8_0x8"/> matrix to float32 (prefill panels, embedding lookups):
    /// per block its 8 dwords gathered, then widened and scaled 8 at a time (the scalar loop cost Q8_0 prefill a fifth).
    /// </summary>
    private static void DequantizeRowQ8_0x8(byte* data, int cols, int row, float* destination)
    {
        int blocks = cols / BlockSize, i = row % GroupRows;
        byte* block = data + row / GroupRows * Q8GroupBytes(cols);
        uint* gathered = stackalloc uint[8];     // the row's 32 codes of one block, in order
        sbyte* q = (sbyte*)gathered;
        for (int k = 0; k < blocks; k++, block += Q8BlockBytes, destination += BlockSize)
        {
            float d = HalfTable.Values[((ushort*)block)[i]];
            uint* source = (uint*)(block + GroupScaleBytes) + i;
            for (int v = 0; v < 8; v++)
            {
                gathered[v] = source[v * GroupRows];
            }

            if (Avx2.IsSupported)
            {
                Vector256<float> dv = Vector256.Create(d);
                for (int e = 0; e < BlockSize; e += 8)
                {
                    (Simd256.LoadInt8(q + e) * dv).Store(destination + e);
                }
            }
            else
            {
                for (int e = 0; e < BlockSize; e++)
                {
                    destination[e] = q[e] * d;
                }
            }
        }
    }

    /// <summary>One block's 8 vectors against 8 activation dwords (already sign-adjusted per vector below): each row's exact block dot in its lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Q8BlockDot(byte* codes, int* x, Vector256<short> ones)
    {
        Vector256<int> a = Q8VectorDot(Vector256.Load((sbyte*)codes), x[0], ones) + Q8VectorDot(Vector256.Load((sbyte*)codes + 32), x[1], ones);
        Vector256<int> b = Q8VectorDot(Vector256.Load((sbyte*)codes + 64), x[2], ones) + Q8VectorDot(Vector256.Load((sbyte*)codes + 96), x[3], ones);
        Vector256<int> c = Q8VectorDot(Vector256.Load((sbyte*)codes + 128), x[4], ones) + Q8VectorDot(Vector256.Load((sbyte*)codes + 160), x[5], ones);
        Vector256<int> d = Q8VectorDot(Vector256.Load((sbyte*)codes + 192), x[6], ones) + Q8VectorDot(Vector256.Load((sbyte*)codes + 224), x[7], ones);
        return (a + b) + (c + d);
    }

    /// <summary>As <see cref="Q8VectorDot(Vector256{sbyte}, Vector256{sbyte}, Vector256{short})"/> for code vector <paramref name="v"/> with its unsigned codes <paramref name="abs"/> already made.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Q8AbsDot(Vector256<byte> abs, sbyte* w, int* x, int v, Vector256<short> ones)
        => Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(abs, Avx2.Sign(Vector256.Create(x[v]).AsSByte(), Vector256.Load(w + 32 * v))), ones);

    /// <summary>Per lane (row): Σ of 4 code × activation products; the weight's sign moved onto the activation.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Q8VectorDot(Vector256<sbyte> w, int x, Vector256<short> ones)
        => Q8VectorDot(w, Vector256.Create(x).AsSByte(), ones);

    /// <summary>As above with the activation dword already broadcast to every lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Q8VectorDot(Vector256<sbyte> w, Vector256<sbyte> x, Vector256<short> ones)
        => Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Abs(w), Avx2.Sign(x, w)), ones);

    /// <summary>The four cache lines of one block's 256 code bytes (<see cref="PrefetchBytes"/> ahead of the block being read).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchQ8Block(byte* codes)
    {
        SimdMath.Prefetch(codes);
        SimdMath.Prefetch(codes + 64);
        SimdMath.Prefetch(codes + 128);
        SimdMath.Prefetch(codes + 192);
    }

    /// <summary>One group of 8 rows against one token: lane i is row i's dot product.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static Vector256<float> DotGroupQ8_0x8_256(byte* group, int blocks, sbyte* x, float* xs)
    {
        short* d = (short*)group;
        group += GroupScaleBytes;
        Vector256<short> ones = Vector256.Create((short)1);
        Vector256<int> halfMask = Vector256.Create(unchecked((int)0x8FFFE000));
        Vector256<float> halfScale = HalfScale;
        Vector256<float> acc = Vector256<float>.Zero;
        for (int k = 0; k < blocks; k++, group += Q8BlockBytes, d += Q8BlockBytes / 2, x += BlockSize)
        {
            PrefetchQ8Block(group + PrefetchBytes);
            Vector256<int> dot = Q8BlockDot(group, (int*)x, ones);
            Vector256<float> scale = WidenHalves(d, halfMask, halfScale) * Vector256.Create(xs[k]);
            acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(dot), scale, acc);
        }

        return acc;
    }

    /// <summary>
    /// Two groups of 8 rows against one token in one pass: each block's 8 activation broadcasts serve both groups, and the
    /// two groups are independent chains. Each lane's sum has the same bits as <see cref="DotGroupQ8_0x8_256"/> (the
    /// block dot is exact in int32 whatever the order of its adds; the float steps are the same).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotGroupPairQ8_0x8_256(byte* ga, byte* gb, int blocks, sbyte* x, float* xs, out Vector256<float> ra, out Vector256<float> rb)
    {
        short* da = (short*)ga, db = (short*)gb;
        ga += GroupScaleBytes;
        gb += GroupScaleBytes;
        Vector256<short> ones = Vector256.Create((short)1);
        Vector256<int> halfMask = Vector256.Create(unchecked((int)0x8FFFE000));
        Vector256<float> halfScale = HalfScale;
        Vector256<float> acca = Vector256<float>.Zero, accb = Vector256<float>.Zero;
        for (int k = 0; k < blocks; k++, ga += Q8BlockBytes, gb += Q8BlockBytes, da += Q8BlockBytes / 2, db += Q8BlockBytes / 2, x += BlockSize)
        {
            PrefetchQ8Block(ga + PrefetchBytes);
            PrefetchQ8Block(gb + PrefetchBytes);
            // written out: as a loop the JIT kept it rolled, with index arithmetic around every step
            int* xi = (int*)x;
            Vector256<int> sa = Vector256<int>.Zero, sb = Vector256<int>.Zero;
            Q8VectorDotTwice(ga, gb, xi, 0, ones, ref sa, ref sb);
            Q8VectorDotTwice(ga, gb, xi, 1, ones, ref sa, ref sb);
            Q8VectorDotTwice(ga, gb, xi, 2, ones, ref sa, ref sb);
            Q8VectorDotTwice(ga, gb, xi, 3, ones, ref sa, ref sb);
            Q8VectorDotTwice(ga, gb, xi, 4, ones, ref sa, ref sb);
            Q8VectorDotTwice(ga, gb, xi, 5, ones, ref sa, ref sb);
            Q8VectorDotTwice(ga, gb, xi, 6, ones, ref sa, ref sb);
            Q8VectorDotTwice(ga, gb, xi, 7, ones, ref sa, ref sb);

            Vector256<float> xsk = Vector256.Create(xs[k]);
            acca = Fma.MultiplyAdd(Avx.ConvertToVector256Single(sa), WidenHalves(da, halfMask, halfScale) * xsk, acca);
            accb = Fma.MultiplyAdd(Avx.ConvertToVector256Single(sb), WidenHalves(db, halfMask, halfScale) * xsk, accb);
        }

        ra = acca;
        rb = accb;
    }

    /// <summary>
    /// Four groups of 8 rows against one token in one pass, <paramref name="stride"/> bytes apart (the quarters of a
    /// <see cref="FourStreamDecode"/> item): each activation broadcast serves all four, the four are independent chains,
    /// and there is no software prefetch (four long streams keep the hardware prefetchers ahead; see FourStreamDecode).
    /// <paramref name="result"/>[j] is group j's, with the bits <see cref="DotGroupQ8_0x8_256"/> gives it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotGroupQuadQ8_0x8_256(byte* g0, long stride, int blocks, sbyte* x, float* xs, Vector256<float>* result)
    {
        short* d0 = (short*)g0;
        long ds = stride / sizeof(short);
        g0 += GroupScaleBytes;
        byte* g1 = g0 + stride, g2 = g1 + stride, g3 = g2 + stride;
        Vector256<short> ones = Vector256.Create((short)1);
        Vector256<int> halfMask = Vector256.Create(unchecked((int)0x8FFFE000));
        Vector256<float> halfScale = HalfScale;
        Vector256<float> a0 = Vector256<float>.Zero, a1 = Vector256<float>.Zero, a2 = Vector256<float>.Zero, a3 = Vector256<float>.Zero;
        for (int k = 0; k < blocks; k++, g0 += Q8BlockBytes, g1 += Q8BlockBytes, g2 += Q8BlockBytes, g3 += Q8BlockBytes,
            d0 += Q8BlockBytes / 2, x += BlockSize)
        {
            int* xi = (int*)x;
            Vector256<int> s0 = Vector256<int>.Zero, s1 = Vector256<int>.Zero, s2 = Vector256<int>.Zero, s3 = Vector256<int>.Zero;
            for (int v = 0; v < 8; v++)
            {
                Vector256<sbyte> xv = Vector256.Create(xi[v]).AsSByte();
                s0 += Q8VectorDot(Vector256.Load((sbyte*)g0 + 32 * v), xv, ones);
                s1 += Q8VectorDot(Vector256.Load((sbyte*)g1 + 32 * v), xv, ones);
                s2 += Q8VectorDot(Vector256.Load((sbyte*)g2 + 32 * v), xv, ones);
                s3 += Q8VectorDot(Vector256.Load((sbyte*)g3 + 32 * v), xv, ones);
            }

            Vector256<float> xsk = Vector256.Create(xs[k]);
            a0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(s0), WidenHalves(d0, halfMask, halfScale) * xsk, a0);
            a1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(s1), WidenHalves(d0 + ds, halfMask, halfScale) * xsk, a1);
            a2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(s2), WidenHalves(d0 + 2 * ds, halfMask, halfScale) * xsk, a2);
            a3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(s3), WidenHalves(d0 + 3 * ds, halfMask, halfScale) * xsk, a3);
        }

        result[0] = a0;
        result[1] = a1;
        result[2] = a2;
        result[3] = a3;
    }

    /// <summary>Code vector <paramref name="v"/> of a block of two groups against activation dword <paramref name="v"/>, broadcast once for both.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q8VectorDotTwice(byte* ga, byte* gb, int* x, int v, Vector256<short> ones, ref Vector256<int> sa, ref Vector256<int> sb)
    {
        Vector256<sbyte> xv = Vector256.Create(x[v]).AsSByte();
        sa += Q8VectorDot(Vector256.Load((sbyte*)ga + 32 * v), xv, ones);
        sb += Q8VectorDot(Vector256.Load((sbyte*)gb + 32 * v), xv, ones);
    }

    /// <summary>
    /// One group against <paramref name="tokenCount"/> tokens: the block's codes made unsigned once (eight vectors kept in
    /// registers), the sign trick and products per token; the same arithmetic per token as <see cref="DotGroupQ8_0x8_256"/>, so every
    /// token's result has the same bits as decoding it alone.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotGroupQ8_0x8N_256(byte* group, int blocks, sbyte* x, float* xs, int cols, int tokenCount, Vector256<float>* acc)
    {
        short* d = (short*)group;
        group += GroupScaleBytes;
        Vector256<short> ones = Vector256.Create((short)1);
        Vector256<int> halfMask = Vector256.Create(unchecked((int)0x8FFFE000));
        Vector256<float> halfScale = HalfScale;
        for (int t = 0; t < tokenCount; t++)
        {
            acc[t] = Vector256<float>.Zero;
        }

        for (int k = 0; k < blocks; k++, group += Q8BlockBytes, d += Q8BlockBytes / 2)
        {
            PrefetchQ8Block(group + PrefetchBytes);
            Vector256<float> dw = WidenHalves(d, halfMask, halfScale);
            // the codes made unsigned once for every token (vpabsb), the signed codes reloaded from L1 for vpsignb
            sbyte* w = (sbyte*)group;
            Vector256<byte> a0 = Avx2.Abs(Vector256.Load(w)), a1 = Avx2.Abs(Vector256.Load(w + 32));
            Vector256<byte> a2 = Avx2.Abs(Vector256.Load(w + 64)), a3 = Avx2.Abs(Vector256.Load(w + 96));
            Vector256<byte> a4 = Avx2.Abs(Vector256.Load(w + 128)), a5 = Avx2.Abs(Vector256.Load(w + 160));
            Vector256<byte> a6 = Avx2.Abs(Vector256.Load(w + 192)), a7 = Avx2.Abs(Vector256.Load(w + 224));
            for (int t = 0; t < tokenCount; t++)
            {
                long o = (long)t * blocks + k;
                int* xt = (int*)(x + (long)t * cols + (long)k * BlockSize);
                Vector256<int> dot = ((Q8AbsDot(a0, w, xt, 0, ones) + Q8AbsDot(a1, w, xt, 1, ones)) + (Q8AbsDot(a2, w, xt, 2, ones) + Q8AbsDot(a3, w, xt, 3, ones)))
                    + ((Q8AbsDot(a4, w, xt, 4, ones) + Q8AbsDot(a5, w, xt, 5, ones)) + (Q8AbsDot(a6, w, xt, 6, ones) + Q8AbsDot(a7, w, xt, 7, ones)));
                acc[t] = Fma.MultiplyAdd(Avx.ConvertToVector256Single(dot), dw * Vector256.Create(xs[o]), acc[t]);
            }
        }
    }

    /// <summary>
    /// The scalar twin of <see cref="DotGroupQ8_0x8_256"/>, bit for bit: per row and block the exact integer dot, then
    /// one fused multiply-add with (weight scale · activation scale).
    /// </summary>
    internal static void DotGroupQ8_0x8Scalar(byte* group, int blocks, sbyte* x, float* xs, float* destination)
    {
        float* half = HalfTable.Values;
        for (int i = 0; i < GroupRows; i++)
        {
            float acc = 0;
            for (int k = 0; k < blocks; k++)
            {
                ushort* d = (ushort*)(group + (long)k * Q8BlockBytes);
                byte* codes = (byte*)d + GroupScaleBytes;
                sbyte* xk = x + (long)k * BlockSize;
                int dot = 0;
                for (int e = 0; e < BlockSize; e++)
                {
                    dot += (sbyte)codes[(e >> 2) * 32 + i * 4 + (e & 3)] * xk[e];
                }

                acc = MathF.FusedMultiplyAdd(dot, half[d[i]] * xs[k], acc);
            }

            destination[i] = acc;
        }
    }
}

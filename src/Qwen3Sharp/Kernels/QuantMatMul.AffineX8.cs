using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Kernels;

/// <summary>
/// MLX affine matrices (BF16 scales and biases, 4- or 8-bit codes) repacked into groups of 8 rows
/// (<see cref="DType.Affine8x8"/>, <see cref="DType.Affine4x8"/>) and their integer-activation kernels, on the machinery of
/// <see cref="DType.Q8_0x8"/> and <see cref="DType.Q4_0x8"/>. With w = s·q + b per affine group and the codes centred
/// on the middle of their range (c = q − z, z = 2^(bits − 1) of the checkpoint's width: 128 for 8-bit codes, 32 for 6-bit
/// ones held as bytes, 8, 4 or 2 for 4-, 3- and 2-bit ones held as nibbles), a row's sum over one affine group is
/// <c>s·Σ c·x + (b + z·s)·Σx</c>: the first term from the int8 activation blocks exactly as Q8_0x8 (Q4_0x8) computes a
/// block (exact integer dot, then times the activation block's scale, blocks of one affine group summed in float32), the
/// second from the float32 activation's own group sum (computed once per token and shared by every row). Centring keeps the
/// codes signed for <c>vpsignb</c>/<c>vpmaddubsw</c> (|c| ≤ 128: pairs ≤ 2·128·127 &lt; 2^15) and keeps the activation
/// rounding error of the int8 blocks multiplied by centred codes, as in Q8_0, instead of by codes offset by up to their
/// whole range (centred on 128, tiny-b's 6-bit codes had 0.11 KL on the int8 path; on 32, see MlxTests). Per affine
/// group and 8 rows, the BF16 scales and biases are widened in-vector (<c>vpmovzxwd</c>, shift) for two more FMAs.
/// The scalar twin <see cref="DotGroupAffineX8Scalar"/> gives the AVX2 kernels' bits exactly; one token, N tokens and
/// the twin do the same float32 steps in the same order, so a token's result does not depend on what it is batched with.
/// </summary>
public static unsafe partial class QuantMatMul
{
    /// <summary>
    /// The 8-row layout of an MLX affine matrix (<see cref="DType.Affine8x8"/> for 8-bit codes, <see cref="DType.Affine4x8"/>
    /// for 4-bit ones), or null when its scales and biases are not BF16 (F16 and F32 tables stay on <see cref="AffineMatMul"/>).
    /// </summary>
    public static DType? AffineGroupLayoutOf(in WeightView w)
        => w.DType == DType.Affine && w.GroupDType == DType.BF16 ? (w.Bits == 8 ? DType.Affine8x8 : DType.Affine4x8) : null;

    /// <summary>Code bytes of one 32-element block of an affine group of 8 rows.</summary>
    private static int AffineBlockBytes(int bits) => bits == 8 ? Q8GroupBlockBytes : GroupBlockBytes;

    /// <summary>Bytes of one affine group's tables in an 8-row group: the 8 rows' BF16 scales, then their BF16 biases.</summary>
    private const int AffineTableBytes = 2 * GroupRows * sizeof(ushort);

    /// <summary>
    /// Bytes of one group of 8 rows of an affine x8 matrix: per affine group, its tables (<see cref="AffineTableBytes"/>),
    /// then its blocks' codes, so that a group is one sequential stream (as Q4_0x8's and Q8_0x8's blocks).
    /// </summary>
    private static long AffineGroupBytes(int bits, int groupSize, int cols) => GroupRows * ((long)cols * bits / 8 + 4L * (cols / groupSize));

    /// <summary>Bytes of an affine matrix [rows, cols] repacked into 8-row groups (the last group padded to 8 rows).</summary>
    public static long RepackedBytesAffineX8(int bits, int groupSize, int rows, int cols)
        => (long)((rows + GroupRows - 1) / GroupRows) * AffineGroupBytes(bits, groupSize, cols);

    /// <summary>
    /// Rows [<paramref name="r0"/>, <paramref name="r0"/> + <paramref name="rowCount"/>) of the MLX affine matrix
    /// <paramref name="w"/> (BF16 tables; <paramref name="r0"/> a multiple of 8) into their 8-row groups at
    /// <paramref name="destination"/> (the first of those groups): per group, each block's codes as <see cref="RepackQ8_0x8"/>
    /// (8 bits, centred: q − z as a signed byte, z = <see cref="AffineCentre"/>) or <see cref="RepackQ4_0x8"/> (4 bits, unsigned;
    /// MLX's element 2k in the low nibble of byte k regrouped) lays them out, each affine group's blocks after its 8 scales and 8 biases.
    /// Rows past the matrix are zero (scale and bias 0).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // runs once per matrix at load: no tier-0 code
    public static void RepackAffineX8(in WeightView w, int r0, int rowCount, byte* destination)
    {
        if (AffineGroupLayoutOf(w) is null || r0 % GroupRows != 0)
        {
            throw new ArgumentException($"not an affine matrix with BF16 tables, or rows from {r0} (not a multiple of {GroupRows})", nameof(w));
        }

        int bits = w.Bits, cols = w.ColCount, blocks = cols / BlockSize, affineGroups = cols / w.GroupSize;
        int centre = AffineCentre(w.SourceBits);
        int blockBytes = AffineBlockBytes(bits), blocksPerGroup = w.GroupSize / BlockSize;
        long groupBytes = AffineGroupBytes(bits, w.GroupSize, cols), sourceRowBytes = w.RowBytes;
        int groups = (rowCount + GroupRows - 1) / GroupRows;
        for (int g = 0; g < groups; g++)
        {
            byte* group = destination + g * groupBytes;   // [affine groups]: [8 rows] scales, [8 rows] biases, [blocks][vectors][8 rows][4 bytes] codes
            long affineBytes = AffineTableBytes + (long)blocksPerGroup * blockBytes;
            for (int i = 0; i < GroupRows; i++)
            {
                int r = r0 + g * GroupRows + i;
                bool pad = r >= r0 + rowCount || r >= w.RowCount;
                byte* source = w.Data + r * sourceRowBytes;
                ushort* sourceScales = (ushort*)w.Scales + (long)r * affineGroups, sourceBiases = (ushort*)w.Biases + (long)r * affineGroups;
                for (int a = 0; a < affineGroups; a++)
                {
                    ushort* tables = (ushort*)(group + a * affineBytes);
                    tables[i] = pad ? (ushort)0 : sourceScales[a];
                    tables[GroupRows + i] = pad ? (ushort)0 : sourceBiases[a];
                }

                for (int k = 0; k < blocks; k++)
                {
                    uint* q = (uint*)(group + k / blocksPerGroup * affineBytes + AffineTableBytes + (long)(k % blocksPerGroup) * blockBytes) + i;
                    if (bits == 8)
                    {
                        for (int v = 0; v < 8; v++)
                        {
                            q[v * GroupRows] = pad ? 0 : CentreBytes(*(uint*)(source + k * BlockSize + 4 * v), centre);
                        }

                        continue;
                    }

                    // MLX: element e of the block is byte e/2's low (e even) or high nibble. Vector v, byte j: element 8v + j
                    // (low nibble), 8v + 4 + j (high nibble), as Q4_0x8.
                    byte* b = source + k * (BlockSize / 2);
                    for (int v = 0; v < 4; v++)
                    {
                        uint packed = 0;
                        for (int j = 0; j < 4; j++)
                        {
                            int low = MlxNibble(b, 8 * v + j), high = MlxNibble(b, 8 * v + 4 + j);
                            packed |= (uint)(low | high << 4) << (8 * j);
                        }

                        q[v * GroupRows] = pad ? 0 : packed;
                    }
                }
            }
        }

        static int MlxNibble(byte* b, int e) => (b[e >> 1] >> ((e & 1) * 4)) & 0xF;
    }

    /// <summary>The code every affine code is centred on: 2^(<paramref name="sourceBits"/> − 1), the middle of its range.</summary>
    internal static int AffineCentre(int sourceBits) => 1 << (sourceBits - 1);

    /// <summary>Four code bytes, each less the centre as a signed byte (for 128 that is flipping each byte's top bit).</summary>
    private static uint CentreBytes(uint codes, int centre)
    {
        if (centre == 128)
        {
            return codes ^ 0x80808080u;
        }

        uint centred = 0;
        for (int j = 0; j < 32; j += 8)
        {
            centred |= (uint)(byte)((int)((codes >> j) & 0xFF) - centre) << j;
        }

        return centred;
    }

    /// <summary>The code q (0..255 or 0..15, as MLX stores it) of element <paramref name="e"/> of row <paramref name="i"/> in one block's code bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int AffineCode(int bits, int centre, byte* blockCodes, int i, int e)
        => bits == 8 ? (sbyte)blockCodes[(e >> 2) * 32 + i * 4 + (e & 3)] + centre : CodeQ4_0x8(blockCodes, i, e);

    /// <summary>Element (<paramref name="row"/>, <paramref name="col"/>) of an affine x8 matrix (slow path): scale·q + bias, as <see cref="AffineMatMul.DequantizeRow"/>.</summary>
    public static float ElementAffineX8(in WeightView w, int row, int col)
    {
        int cols = w.ColCount, i = row % GroupRows, blockBytes = AffineBlockBytes(w.Bits), a = col / w.GroupSize;
        byte* tables = w.Data + row / GroupRows * AffineGroupBytes(w.Bits, w.GroupSize, cols)
            + a * (AffineTableBytes + (long)(w.GroupSize / BlockSize) * blockBytes);
        float scale = Bf16ToSingle(((ushort*)tables)[i]), bias = Bf16ToSingle(((ushort*)tables)[GroupRows + i]);
        byte* codes = tables + AffineTableBytes + (long)(col % w.GroupSize / BlockSize) * blockBytes;
        return scale * AffineCode(w.Bits, AffineCentre(w.SourceBits), codes, i, col % BlockSize) + bias;
    }

    /// <summary>Row <paramref name="row"/> of an affine x8 matrix to float32 (prefill panels, embedding lookups), with the bits of <see cref="AffineMatMul.DequantizeRow"/>.</summary>
    private static void DequantizeRowAffineX8(in WeightView w, int row, float* destination)
    {
        int cols = w.ColCount, blocks = cols / BlockSize, i = row % GroupRows, bits = w.Bits, blockBytes = AffineBlockBytes(bits);
        int blocksPerGroup = w.GroupSize / BlockSize, centre = AffineCentre(w.SourceBits);
        byte* codes = w.Data + row / GroupRows * AffineGroupBytes(bits, w.GroupSize, cols);
        ushort* tables = (ushort*)codes;
        uint* gathered = stackalloc uint[8];     // the row's 32 codes of one block, in element order
        byte* q = (byte*)gathered;
        for (int k = 0; k < blocks; k++, codes += blockBytes, destination += BlockSize)
        {
            if (k % blocksPerGroup == 0)
            {
                tables = (ushort*)codes;        // an affine group's scales and biases, then its blocks
                codes += AffineTableBytes;
            }

            float scale = Bf16ToSingle(tables[i]), bias = Bf16ToSingle(tables[GroupRows + i]);
            if (bits == 8)
            {
                uint* source = (uint*)codes + i;
                for (int v = 0; v < 8; v++)
                {
                    gathered[v] = source[v * GroupRows];
                }

                for (int e = 0; e < BlockSize; e++)
                {
                    q[e] = (byte)((sbyte)q[e] + centre);     // back to MLX's unsigned codes
                }
            }
            else
            {
                GatherQ4Codes(codes, i, gathered);
            }

            for (int e = 0; e < BlockSize; e++)
            {
                destination[e] = scale * q[e] + bias;
            }
        }
    }

    private static float Bf16ToSingle(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    /// <summary>
    /// Per token, the float32 sum of its activation over each affine group (<paramref name="destination"/> [tokenCount,
    /// cols / groupSize]): the bias term's factor, shared by every row and by both kernels of a machine (the scalar twin
    /// included; under AVX2 two 8-lane partial sums and a fixed horizontal sum, else in element order). One serial
    /// chain of adds cost the 8-row kernels 15-20% of a 256×2048 product from L2.
    /// </summary>
    internal static void AffineActivationSums(float* x, int tokenCount, int cols, int groupSize, float* destination)
    {
        for (long p = 0; p < (long)tokenCount * (cols / groupSize); p++, x += groupSize)
        {
            if (Avx.IsSupported)
            {
                Vector256<float> s0 = Vector256.Load(x), s1 = Vector256.Load(x + 8);
                for (int e = 16; e < groupSize; e += 16)
                {
                    s0 += Vector256.Load(x + e);
                    s1 += Vector256.Load(x + e + 8);
                }

                destination[p] = Vector256.Sum(s0 + s1);
                continue;
            }

            float sum = 0;
            for (int e = 0; e < groupSize; e++)
            {
                sum += x[e];
            }

            destination[p] = sum;
        }
    }

    /// <summary>Eight BF16 values (a group's 8 rows' scales or biases) to float32, exactly.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> WidenBf16(ushort* p) => (Avx2.ConvertToVector256Int32(p) << 16).AsSingle();

    /// <summary>
    /// The code width of an affine x8 matrix as a type, so each kernel is compiled once per width with no branch on it
    /// inside its loops (the same speed as a flag in the A/B from L2, within its noise; the cleaner code).
    /// </summary>
    private interface IAffineCodes
    {
        /// <summary>Code bytes of one 32-element block of a group.</summary>
        static abstract int BlockBytes { get; }

        /// <summary>
        /// One block's exact integer dot of the centred codes with the int8 activation, one row per lane (8 bits: Q8_0x8's
        /// block dot; 4 bits: Q4_0x8's, less centre · <paramref name="xsum"/>, the block's Σ activation codes).
        /// </summary>
        static abstract Vector256<int> BlockDot(byte* codes, int* x, int xsum, int centre);

        /// <summary>The same block of two groups, each activation dword broadcast once for both.</summary>
        static abstract void BlockDotTwice(byte* ga, byte* gb, int* x, int xsum, int centre, out Vector256<int> da, out Vector256<int> db);

        /// <summary>The lines of one block's codes, <see cref="PrefetchBytes"/> ahead.</summary>
        static abstract void Prefetch(byte* codes);
    }

    private readonly struct AffineCodes8 : IAffineCodes
    {
        public static int BlockBytes => Q8GroupBlockBytes;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> BlockDot(byte* codes, int* x, int xsum, int centre) => Q8BlockDot(codes, x, Vector256.Create((short)1));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void BlockDotTwice(byte* ga, byte* gb, int* x, int xsum, int centre, out Vector256<int> da, out Vector256<int> db)
        {
            // written out: as a loop the JIT kept it rolled, with index arithmetic around every step
            Vector256<short> ones = Vector256.Create((short)1);
            Vector256<int> sa = Vector256<int>.Zero, sb = Vector256<int>.Zero;
            Q8VectorDotTwice(ga, gb, x, 0, ones, ref sa, ref sb);
            Q8VectorDotTwice(ga, gb, x, 1, ones, ref sa, ref sb);
            Q8VectorDotTwice(ga, gb, x, 2, ones, ref sa, ref sb);
            Q8VectorDotTwice(ga, gb, x, 3, ones, ref sa, ref sb);
            Q8VectorDotTwice(ga, gb, x, 4, ones, ref sa, ref sb);
            Q8VectorDotTwice(ga, gb, x, 5, ones, ref sa, ref sb);
            Q8VectorDotTwice(ga, gb, x, 6, ones, ref sa, ref sb);
            Q8VectorDotTwice(ga, gb, x, 7, ones, ref sa, ref sb);
            da = sa;
            db = sb;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Prefetch(byte* codes) => PrefetchQ8Block(codes + PrefetchBytes);
    }

    private readonly struct AffineCodes4 : IAffineCodes
    {
        public static int BlockBytes => GroupBlockBytes;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> BlockDot(byte* codes, int* x, int xsum, int centre)
        {
            Vector256<byte> m = Vector256.Create((byte)0x0F);
            Vector256<byte> v0 = Vector256.Load(codes), v1 = Vector256.Load(codes + 32);
            Vector256<byte> v2 = Vector256.Load(codes + 64), v3 = Vector256.Load(codes + 96);
            Vector256<short> pairs = GroupBlockPairs(
                v0 & m, Avx2.ShiftRightLogical(v0.AsUInt16(), 4).AsByte() & m,
                v1 & m, Avx2.ShiftRightLogical(v1.AsUInt16(), 4).AsByte() & m,
                v2 & m, Avx2.ShiftRightLogical(v2.AsUInt16(), 4).AsByte() & m,
                v3 & m, Avx2.ShiftRightLogical(v3.AsUInt16(), 4).AsByte() & m, x);
            return Avx2.MultiplyAddAdjacent(pairs, Vector256.Create((short)1)) - Vector256.Create(xsum * centre);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void BlockDotTwice(byte* ga, byte* gb, int* x, int xsum, int centre, out Vector256<int> da, out Vector256<int> db)
        {
            BlockPairsTwice(ga, gb, x, Vector256.Create((byte)0x0F), out Vector256<short> pa, out Vector256<short> pb);
            Vector256<short> ones = Vector256.Create((short)1);
            Vector256<int> offset = Vector256.Create(xsum * centre);
            da = Avx2.MultiplyAddAdjacent(pa, ones) - offset;
            db = Avx2.MultiplyAddAdjacent(pb, ones) - offset;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Prefetch(byte* codes)
        {
            SimdMath.Prefetch(codes + PrefetchBytes);
            SimdMath.Prefetch(codes + PrefetchBytes + 64);
        }
    }

    /// <summary>
    /// One affine x8 group of 8 rows against one token: lane i is row i's dot product. <paramref name="blocksPerGroup"/>
    /// = group size / 32; <paramref name="xg"/>: the token's activation sums per affine group (<see cref="AffineActivationSums"/>).
    /// </summary>
    internal static Vector256<float> DotGroupAffineX8_256(int bits, bool vnni, int centre, byte* group, int blocks, int blocksPerGroup, sbyte* x, float* xs, int* xsum, float* xg)
        => (bits, vnni) switch
        {
            (8, true) => DotGroupAffineX8_256<AffineCodes8Vnni>(centre, group, blocks, blocksPerGroup, x, xs, xsum, xg),
            (8, false) => DotGroupAffineX8_256<AffineCodes8>(centre, group, blocks, blocksPerGroup, x, xs, xsum, xg),
            (_, true) => DotGroupAffineX8_256<AffineCodes4Vnni>(centre, group, blocks, blocksPerGroup, x, xs, xsum, xg),
            _ => DotGroupAffineX8_256<AffineCodes4>(centre, group, blocks, blocksPerGroup, x, xs, xsum, xg),
        };

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static Vector256<float> DotGroupAffineX8_256<TC>(int centre, byte* group, int blocks, int blocksPerGroup, sbyte* x, float* xs, int* xsum, float* xg)
        where TC : struct, IAffineCodes
    {
        int affineGroups = blocks / blocksPerGroup;
        Vector256<float> zv = Vector256.Create((float)centre);
        Vector256<float> acc = Vector256<float>.Zero;
        for (int a = 0, k = 0; a < affineGroups; a++)
        {
            ushort* scales = (ushort*)group;     // the biases follow the scales, the codes the biases
            group += AffineTableBytes;
            Vector256<float> part = Vector256<float>.Zero;
            for (int end = k + blocksPerGroup; k < end; k++, group += TC.BlockBytes, x += BlockSize)
            {
                TC.Prefetch(group);
                Vector256<int> dot = TC.BlockDot(group, (int*)x, xsum[k], centre);
                part = Fma.MultiplyAdd(Avx.ConvertToVector256Single(dot), Vector256.Create(xs[k]), part);
            }

            acc = AffineGroupEnd(scales, GroupRows, zv, Vector256.Create(xg[a]), part, acc);
        }

        return acc;
    }

    /// <summary>
    /// Two affine x8 groups against one token in one pass (as <see cref="DotGroupPairQ8_0x8_256"/> and
    /// <see cref="DotGroupPairQ4_0x8_256"/>): each block's activation broadcasts serve both groups, two independent chains;
    /// each lane has the bits <see cref="DotGroupAffineX8_256"/> gives it (the block dots are exact integers; the float steps
    /// are the same).
    /// </summary>
    internal static void DotGroupPairAffineX8_256(int bits, bool vnni, int centre, byte* ga, byte* gb, int blocks, int blocksPerGroup, sbyte* x, float* xs,
        int* xsum, float* xg, out Vector256<float> ra, out Vector256<float> rb)
    {
        switch (bits, vnni)
        {
            case (8, true):
                DotGroupPairAffineX8_256<AffineCodes8Vnni>(centre, ga, gb, blocks, blocksPerGroup, x, xs, xsum, xg, out ra, out rb);
                break;
            case (8, false):
                DotGroupPairAffineX8_256<AffineCodes8>(centre, ga, gb, blocks, blocksPerGroup, x, xs, xsum, xg, out ra, out rb);
                break;
            case (_, true):
                DotGroupPairAffineX8_256<AffineCodes4Vnni>(centre, ga, gb, blocks, blocksPerGroup, x, xs, xsum, xg, out ra, out rb);
                break;
            default:
                DotGroupPairAffineX8_256<AffineCodes4>(centre, ga, gb, blocks, blocksPerGroup, x, xs, xsum, xg, out ra, out rb);
                break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DotGroupPairAffineX8_256<TC>(int centre, byte* ga, byte* gb, int blocks, int blocksPerGroup, sbyte* x, float* xs,
        int* xsum, float* xg, out Vector256<float> ra, out Vector256<float> rb)
        where TC : struct, IAffineCodes
    {
        int affineGroups = blocks / blocksPerGroup;
        Vector256<float> zv = Vector256.Create((float)centre);
        Vector256<float> acca = Vector256<float>.Zero, accb = Vector256<float>.Zero;
        for (int a = 0, k = 0; a < affineGroups; a++)
        {
            ushort* scalesA = (ushort*)ga, scalesB = (ushort*)gb;     // the biases follow the scales, the codes the biases
            ga += AffineTableBytes;
            gb += AffineTableBytes;
            Vector256<float> parta = Vector256<float>.Zero, partb = Vector256<float>.Zero;
            for (int end = k + blocksPerGroup; k < end; k++, ga += TC.BlockBytes, gb += TC.BlockBytes, x += BlockSize)
            {
                TC.Prefetch(ga);
                TC.Prefetch(gb);
                TC.BlockDotTwice(ga, gb, (int*)x, xsum[k], centre, out Vector256<int> da, out Vector256<int> db);
                Vector256<float> xsk = Vector256.Create(xs[k]);
                parta = Fma.MultiplyAdd(Avx.ConvertToVector256Single(da), xsk, parta);
                partb = Fma.MultiplyAdd(Avx.ConvertToVector256Single(db), xsk, partb);
            }

            Vector256<float> xga = Vector256.Create(xg[a]);
            acca = AffineGroupEnd(scalesA, GroupRows, zv, xga, parta, acca);
            accb = AffineGroupEnd(scalesB, GroupRows, zv, xga, partb, accb);
        }

        ra = acca;
        rb = accb;
    }

    /// <summary>
    /// Four affine x8 groups against one token in one pass, <paramref name="stride"/> bytes apart (the quarters of a
    /// <see cref="FourStreamDecode"/> item; two BlockDotTwice per block, no software prefetch): <paramref name="result"/>[j]
    /// is group j's, with the bits <see cref="DotGroupAffineX8_256"/> gives it.
    /// </summary>
    internal static void DotGroupQuadAffineX8_256(int bits, bool vnni, int centre, byte* g0, long stride, int blocks, int blocksPerGroup, sbyte* x, float* xs,
        int* xsum, float* xg, Vector256<float>* result)
    {
        switch (bits, vnni)
        {
            case (8, true):
                DotGroupQuadAffineX8_256<AffineCodes8Vnni>(centre, g0, stride, blocks, blocksPerGroup, x, xs, xsum, xg, result);
                break;
            case (8, false):
                DotGroupQuadAffineX8_256<AffineCodes8>(centre, g0, stride, blocks, blocksPerGroup, x, xs, xsum, xg, result);
                break;
            case (_, true):
                DotGroupQuadAffineX8_256<AffineCodes4Vnni>(centre, g0, stride, blocks, blocksPerGroup, x, xs, xsum, xg, result);
                break;
            default:
                DotGroupQuadAffineX8_256<AffineCodes4>(centre, g0, stride, blocks, blocksPerGroup, x, xs, xsum, xg, result);
                break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DotGroupQuadAffineX8_256<TC>(int centre, byte* g0, long stride, int blocks, int blocksPerGroup, sbyte* x, float* xs,
        int* xsum, float* xg, Vector256<float>* result)
        where TC : struct, IAffineCodes
    {
        int affineGroups = blocks / blocksPerGroup;
        byte* g1 = g0 + stride, g2 = g1 + stride, g3 = g2 + stride;
        long ss = stride / sizeof(ushort);   // the next group's scales
        Vector256<float> zv = Vector256.Create((float)centre);
        Vector256<float> a0 = Vector256<float>.Zero, a1 = Vector256<float>.Zero, a2 = Vector256<float>.Zero, a3 = Vector256<float>.Zero;
        for (int a = 0, k = 0; a < affineGroups; a++)
        {
            ushort* s0 = (ushort*)g0;     // the biases follow the scales, the codes the biases
            g0 += AffineTableBytes;
            g1 += AffineTableBytes;
            g2 += AffineTableBytes;
            g3 += AffineTableBytes;
            Vector256<float> p0 = Vector256<float>.Zero, p1 = Vector256<float>.Zero, p2 = Vector256<float>.Zero, p3 = Vector256<float>.Zero;
            for (int end = k + blocksPerGroup; k < end; k++, g0 += TC.BlockBytes, g1 += TC.BlockBytes, g2 += TC.BlockBytes, g3 += TC.BlockBytes, x += BlockSize)
            {
                TC.BlockDotTwice(g0, g1, (int*)x, xsum[k], centre, out Vector256<int> d0, out Vector256<int> d1);
                TC.BlockDotTwice(g2, g3, (int*)x, xsum[k], centre, out Vector256<int> d2, out Vector256<int> d3);
                Vector256<float> xsk = Vector256.Create(xs[k]);
                p0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(d0), xsk, p0);
                p1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(d1), xsk, p1);
                p2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(d2), xsk, p2);
                p3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(d3), xsk, p3);
            }

            Vector256<float> xga = Vector256.Create(xg[a]);
            a0 = AffineGroupEnd(s0, GroupRows, zv, xga, p0, a0);
            a1 = AffineGroupEnd(s0 + ss, GroupRows, zv, xga, p1, a1);
            a2 = AffineGroupEnd(s0 + 2 * ss, GroupRows, zv, xga, p2, a2);
            a3 = AffineGroupEnd(s0 + 3 * ss, GroupRows, zv, xga, p3, a3);
        }

        result[0] = a0;
        result[1] = a1;
        result[2] = a2;
        result[3] = a3;
    }

    /// <summary>One affine group's end for one 8-row group: acc + s·part, then + (s·centre + bias)·xg (the decode kernels' one order; biases: their offset from the scales).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> AffineGroupEnd(ushort* scales, long biases, Vector256<float> zv, Vector256<float> xg, Vector256<float> part, Vector256<float> acc)
    {
        Vector256<float> s = WidenBf16(scales);
        acc = Fma.MultiplyAdd(s, part, acc);
        return Fma.MultiplyAdd(Fma.MultiplyAdd(s, zv, WidenBf16(scales + biases)), xg, acc);
    }

    /// <summary>
    /// One affine x8 group against <paramref name="tokenCount"/> tokens (activation rows <paramref name="cols"/> codes,
    /// <paramref name="blocks"/> scales and sums, and cols / group size group sums apart): the same arithmetic per token as
    /// <see cref="DotGroupAffineX8_256"/>, so every token's result has the same bits as decoding it alone.
    /// <paramref name="acc"/> holds 2·<paramref name="tokenCount"/> vectors: the results, then each token's group part.
    /// </summary>
    internal static void DotGroupAffineX8N_256(int bits, bool vnni, int centre, byte* group, int blocks, int blocksPerGroup, sbyte* x, float* xs, int* xsum, float* xg,
        int cols, int tokenCount, Vector256<float>* acc)
    {
        switch (bits, vnni)
        {
            case (8, true):
                DotGroupAffineX8N_256<AffineCodes8Vnni>(centre, group, blocks, blocksPerGroup, x, xs, xsum, xg, cols, tokenCount, acc);
                break;
            case (8, false):
                DotGroupAffineX8N_256<AffineCodes8>(centre, group, blocks, blocksPerGroup, x, xs, xsum, xg, cols, tokenCount, acc);
                break;
            case (_, true):
                DotGroupAffineX8N_256<AffineCodes4Vnni>(centre, group, blocks, blocksPerGroup, x, xs, xsum, xg, cols, tokenCount, acc);
                break;
            default:
                DotGroupAffineX8N_256<AffineCodes4>(centre, group, blocks, blocksPerGroup, x, xs, xsum, xg, cols, tokenCount, acc);
                break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DotGroupAffineX8N_256<TC>(int centre, byte* group, int blocks, int blocksPerGroup, sbyte* x, float* xs, int* xsum, float* xg,
        int cols, int tokenCount, Vector256<float>* acc)
        where TC : struct, IAffineCodes
    {
        int affineGroups = blocks / blocksPerGroup;
        Vector256<float> zv = Vector256.Create((float)centre);
        for (int t = 0; t < tokenCount; t++)
        {
            acc[t] = Vector256<float>.Zero;
        }

        Vector256<short> ones = Vector256.Create((short)1);
        Vector256<float>* part = acc + tokenCount;       // [tokenCount]: each token's part of the current affine group
        if (typeof(TC) == typeof(AffineCodes8) || typeof(TC) == typeof(AffineCodes8Vnni))
        {
            // 8-bit: block by block, each block's codes made unsigned once for every token (as DotGroupQ8_0x8N_256), the
            // tokens' group parts in acc[tokenCount..]; the same float steps in the same order
            for (int a = 0, k = 0; a < affineGroups; a++)
            {
                ushort* scales = (ushort*)group, biases = scales + GroupRows;     // then the codes
                group += AffineTableBytes;
                for (int t = 0; t < tokenCount; t++)
                {
                    part[t] = Vector256<float>.Zero;
                }

                for (int end = k + blocksPerGroup; k < end; k++, group += Q8GroupBlockBytes)
                {
                    PrefetchQ8Block(group + PrefetchBytes);
                    sbyte* w = (sbyte*)group;
                    if (typeof(TC) == typeof(AffineCodes8Vnni))
                    {
                        // AVX-VNNI: the codes made unsigned (+128) once, 128·Σx off per token (QuantMatMul.Vnni.cs; same bits)
                        SignFlipped(w, out var u0, out var u1, out var u2, out var u3, out var u4, out var u5, out var u6, out var u7);
                        for (int t = 0; t < tokenCount; t++)
                        {
                            long o = (long)t * blocks + k;
                            int* xt = (int*)(x + (long)t * cols + (long)k * BlockSize);
                            Vector256<int> dot = CodesVnni(u0, u1, u2, u3, u4, u5, u6, u7, xt) - Vector256.Create(xsum[o] << 7);
                            part[t] = Fma.MultiplyAdd(Avx.ConvertToVector256Single(dot), Vector256.Create(xs[o]), part[t]);
                        }

                        continue;
                    }

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
                        part[t] = Fma.MultiplyAdd(Avx.ConvertToVector256Single(dot), Vector256.Create(xs[o]), part[t]);
                    }
                }

                Vector256<float> sg = WidenBf16(scales);
                Vector256<float> sh = Fma.MultiplyAdd(sg, zv, WidenBf16(biases));
                for (int t = 0; t < tokenCount; t++)
                {
                    Vector256<float> r = Fma.MultiplyAdd(sg, part[t], acc[t]);
                    acc[t] = Fma.MultiplyAdd(sh, Vector256.Create(xg[(long)t * affineGroups + a]), r);
                }
            }

            return;
        }

        // 4-bit: block by block, each block's nibbles unpacked once for every token (as DotGroupQ4_0x8N_256), the tokens'
        // group parts in acc[tokenCount..]; the same integer dots and float steps in the same order
        Vector256<byte> m = Vector256.Create((byte)0x0F);
        for (int a = 0, k = 0; a < affineGroups; a++)
        {
            ushort* scales = (ushort*)group, biases = scales + GroupRows;     // then the codes
            group += AffineTableBytes;
            for (int t = 0; t < tokenCount; t++)
            {
                part[t] = Vector256<float>.Zero;
            }

            for (int end = k + blocksPerGroup; k < end; k++, group += GroupBlockBytes)
            {
                SimdMath.Prefetch(group + PrefetchBytes);
                SimdMath.Prefetch(group + PrefetchBytes + 64);
                Vector256<byte> v0 = Vector256.Load(group), v1 = Vector256.Load(group + 32);
                Vector256<byte> v2 = Vector256.Load(group + 64), v3 = Vector256.Load(group + 96);
                Vector256<byte> l0 = v0 & m, h0 = Avx2.ShiftRightLogical(v0.AsUInt16(), 4).AsByte() & m;
                Vector256<byte> l1 = v1 & m, h1 = Avx2.ShiftRightLogical(v1.AsUInt16(), 4).AsByte() & m;
                Vector256<byte> l2 = v2 & m, h2 = Avx2.ShiftRightLogical(v2.AsUInt16(), 4).AsByte() & m;
                Vector256<byte> l3 = v3 & m, h3 = Avx2.ShiftRightLogical(v3.AsUInt16(), 4).AsByte() & m;
                for (int t = 0; t < tokenCount; t++)
                {
                    long o = (long)t * blocks + k;
                    int* xt = (int*)(x + (long)t * cols + (long)k * BlockSize);
                    Vector256<int> dot = typeof(TC) == typeof(AffineCodes4Vnni)
                        ? CodesVnni(l0, h0, l1, h1, l2, h2, l3, h3, xt) - Vector256.Create(xsum[o] * centre)
                        : Avx2.MultiplyAddAdjacent(GroupBlockPairs(l0, h0, l1, h1, l2, h2, l3, h3, xt), ones) - Vector256.Create(xsum[o] * centre);
                    part[t] = Fma.MultiplyAdd(Avx.ConvertToVector256Single(dot), Vector256.Create(xs[o]), part[t]);
                }
            }

            Vector256<float> sg = WidenBf16(scales);
            Vector256<float> sh = Fma.MultiplyAdd(sg, zv, WidenBf16(biases));
            for (int t = 0; t < tokenCount; t++)
            {
                Vector256<float> r = Fma.MultiplyAdd(sg, part[t], acc[t]);
                acc[t] = Fma.MultiplyAdd(sh, Vector256.Create(xg[(long)t * affineGroups + a]), r);
            }
        }
    }

    /// <summary>
    /// The scalar twin of <see cref="DotGroupAffineX8_256"/>, bit for bit: per row and block the exact integer dot of the
    /// centred codes, summed per affine group with one fused multiply-add each by the activation scale, then
    /// acc = fma(s, part, acc) and acc = fma(fma(s, z, b), Σx, acc).
    /// </summary>
    internal static void DotGroupAffineX8Scalar(int bits, int centre, byte* group, int blocks, int blocksPerGroup, sbyte* x, float* xs, int* xsum, float* xg,
        float* destination)
    {
        int blockBytes = AffineBlockBytes(bits), affineGroups = blocks / blocksPerGroup;
        long affineBytes = AffineTableBytes + (long)blocksPerGroup * blockBytes;
        for (int i = 0; i < GroupRows; i++)
        {
            float acc = 0;
            for (int a = 0; a < affineGroups; a++)
            {
                ushort* tables = (ushort*)(group + a * affineBytes);     // scales, biases, then the codes
                float part = 0;
                for (int b = 0; b < blocksPerGroup; b++)
                {
                    int k = a * blocksPerGroup + b;
                    byte* codes = (byte*)tables + AffineTableBytes + (long)b * blockBytes;
                    sbyte* xk = x + (long)k * BlockSize;
                    int dot = 0;
                    for (int e = 0; e < BlockSize; e++)
                    {
                        dot += (AffineCode(bits, centre, codes, i, e) - centre) * xk[e];
                    }

                    part = MathF.FusedMultiplyAdd(dot, xs[k], part);
                }

                float s = Bf16ToSingle(tables[i]), bias = Bf16ToSingle(tables[GroupRows + i]);
                acc = MathF.FusedMultiplyAdd(s, part, acc);
                acc = MathF.FusedMultiplyAdd(MathF.FusedMultiplyAdd(s, centre, bias), xg[a], acc);
            }

            destination[i] = acc;
        }
    }
}

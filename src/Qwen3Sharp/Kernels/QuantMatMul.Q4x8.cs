using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Kernels;

/// <summary>
/// Q4_0 repacked into groups of 8 rows (<see cref="DType.Q4_0x8"/>; the idea of llama.cpp's <c>block_q4_0x8</c> and
/// <c>ggml_gemv_q4_0_8x8_q8_0</c>, our own layout and code) and its integer-activation decode kernel. The row-at-a-time
/// kernel (<see cref="DotRow_256{TF}"/>) spends per row and block a broadcast load, a shift, a mask, a scale lookup and
/// a horizontal layout that only pays off after a final sum. Here one 32-byte vector holds 4 code bytes of each of
/// the 8 rows (one row per 32-bit lane), so an activation dword broadcast to every lane meets all 8 rows at once:
/// per block and group, 4 loads and 12 mask/shift operations unpack the codes, 8 <c>vpmaddubsw</c> against broadcast
/// activation dwords are summed in int16 (|Σ| ≤ 8·2·15·127 = 30480 &lt; 2^15), one <c>vpmaddwd</c> with ones gives
/// each row's exact block dot in its lane, Q4_0's offset of 8 comes off as 8·Σ(activation codes) (one broadcast for
/// all rows), and the 8 rows' fp16 scales are widened in-vector (sign-extend, shift, mask, ×2^112: exact for every
/// finite fp16, subnormals included) for one FMA that accumulates 8 rows. No horizontal sums.
/// Results differ from the row kernel only in float32 summation order (here each block's dot is one exact integer,
/// rounded once when scaled); the scalar twin <see cref="DotGroupQ4_0x8Scalar"/> gives the AVX2 kernel's bits exactly.
/// </summary>
public static unsafe partial class QuantMatMul
{
    /// <summary>Rows per interleaved group of <see cref="DType.Q4_0x8"/>.</summary>
    internal const int GroupRows = 8;

    /// <summary>Code bytes of one block of a group (8 rows × 16 bytes).</summary>
    private const int GroupBlockBytes = GroupRows * 16;

    /// <summary>Bytes of the 8 rows' fp16 scales of one block of a <see cref="DType.Q4_0x8"/> or <see cref="DType.Q8_0x8"/> group.</summary>
    private const int GroupScaleBytes = GroupRows * 2;

    /// <summary>
    /// Bytes of one block of a <see cref="DType.Q4_0x8"/> group: its 8 scales, then its 128 code bytes, so that a group is
    /// one sequential stream. With the scales in a run after the codes (the layout until session 15), every group was a
    /// stream with a second one 8 KiB ahead of it, and on the Zen 5 that broke the hardware prefetcher: one thread read
    /// 8 KiB of every 9 KiB at 10.9 GB/s against 33.1 for all of it (<c>Qwen3Sharp.Bench quick 1 pattern</c>,
    /// <c>PATTERNS=9216/1/128,9216/1/128/0/1024</c>).
    /// </summary>
    private const int Q4BlockBytes = GroupScaleBytes + GroupBlockBytes;

    /// <summary>Bytes of one group of 8 rows of <paramref name="cols"/> columns (per block: scales, then codes).</summary>
    internal static long GroupBytes(int cols) => (long)cols / BlockSize * Q4BlockBytes;

    /// <summary>The 8-row layout a row-major block format is repacked into at load (Q4_0, Q4_K, Q5_K, Q6_K, Q8_0), or null.</summary>
    public static DType? GroupLayoutOf(DType rowFormat) => rowFormat switch
    {
        DType.Q4_0 => DType.Q4_0x8,
        DType.Q4_K => DType.Q4_Kx8,
        DType.Q5_K => DType.Q5_Kx8,
        DType.Q6_K => DType.Q6_Kx8,
        DType.Q8_0 => DType.Q8_0x8,
        _ => null,
    };

    /// <summary>Bytes of a <paramref name="rowFormat"/> matrix repacked into its <see cref="GroupLayoutOf"/> layout.</summary>
    public static long RepackedBytes(DType rowFormat, int rows, int cols) => rowFormat switch
    {
        DType.Q4_0 => RepackedBytesQ4_0x8(rows, cols),
        DType.Q4_K => RepackedBytesQ4_Kx8(rows, cols),
        DType.Q5_K => RepackedBytesQ5_Kx8(rows, cols),
        DType.Q6_K => RepackedBytesQ6_Kx8(rows, cols),
        DType.Q8_0 => RepackedBytesQ8_0x8(rows, cols),
        _ => throw new ArgumentOutOfRangeException(nameof(rowFormat), rowFormat, "no 8-row layout"),
    };

    /// <summary>False when the matrix has a scale the 8-row kernels cannot widen exactly (see each format's CanRepack), or no 8-row layout.</summary>
    public static bool CanRepack(DType rowFormat, byte* source, int rows, int cols) => rowFormat switch
    {
        DType.Q4_0 => CanRepackQ4_0x8(source, rows, cols),
        DType.Q4_K => CanRepackQ4_Kx8(source, rows, cols),
        DType.Q5_K => CanRepackQ5_Kx8(source, rows, cols),
        DType.Q6_K => CanRepackQ6_Kx8(source, rows, cols),
        DType.Q8_0 => CanRepackQ8_0x8(source, rows, cols),
        _ => false,
    };

    /// <summary>Repacks a <paramref name="rowFormat"/> matrix into its <see cref="GroupLayoutOf"/> layout (<see cref="RepackedBytes"/> at <paramref name="destination"/>).</summary>
    public static void Repack(DType rowFormat, byte* source, int rows, int cols, byte* destination)
    {
        switch (rowFormat)
        {
            case DType.Q4_0:
                RepackQ4_0x8(source, rows, cols, destination);
                break;
            case DType.Q4_K:
                RepackQ4_Kx8(source, rows, cols, destination);
                break;
            case DType.Q5_K:
                RepackQ5_Kx8(source, rows, cols, destination);
                break;
            case DType.Q6_K:
                RepackQ6_Kx8(source, rows, cols, destination);
                break;
            case DType.Q8_0:
                RepackQ8_0x8(source, rows, cols, destination);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(rowFormat), rowFormat, "no 8-row layout");
        }
    }

    /// <summary>Bytes of a <see cref="DType.Q4_0x8"/> matrix (the last group padded to 8 rows).</summary>
    public static long RepackedBytesQ4_0x8(int rows, int cols) => (long)((rows + GroupRows - 1) / GroupRows) * GroupBytes(cols);

    /// <summary>
    /// False when some block scale of the Q4_0 matrix is an fp16 infinity or NaN: the kernel's in-vector widening maps
    /// those to finite values, so such a matrix stays in row layout.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // runs once per matrix at load: no tier-0 code
    public static bool CanRepackQ4_0x8(byte* source, int rows, int cols)
    {
        long blockCount = (long)rows * (cols / BlockSize);
        for (long b = 0; b < blockCount; b++)
        {
            if ((*(ushort*)(source + b * 18) & 0x7C00) == 0x7C00)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// A Q4_0 matrix [rows, cols] (row-major blocks) into <see cref="DType.Q4_0x8"/> at <paramref name="destination"/>
    /// (<see cref="RepackedBytesQ4_0x8"/> bytes): for each group of 8 rows and each block, the 8 rows' scales, then their
    /// 8×16 code bytes regrouped into the four vectors the kernel loads.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // runs once per matrix at load: no tier-0 code
    public static void RepackQ4_0x8(byte* source, int rows, int cols, byte* destination)
    {
        int blocks = cols / BlockSize;
        long rowBytes = (long)blocks * 18, groupBytes = GroupBytes(cols);
        int groups = (rows + GroupRows - 1) / GroupRows;
        for (int g = 0; g < groups; g++)
        {
            byte* group = destination + g * groupBytes;   // [blocks]: [8 rows] fp16 scales, then [4 vectors][8 rows][4 bytes] codes
            for (int i = 0; i < GroupRows; i++)
            {
                int r = g * GroupRows + i;
                byte* block = source + r * rowBytes;
                for (int k = 0; k < blocks; k++, block += 18)
                {
                    ushort* scales = (ushort*)(group + (long)k * Q4BlockBytes);
                    uint* q = (uint*)((byte*)scales + GroupScaleBytes) + i;
                    if (r >= rows)
                    {
                        q[0] = q[8] = q[16] = q[24] = 0;
                        scales[i] = 0;
                        continue;
                    }

                    scales[i] = *(ushort*)block;
                    // source byte b: element b (low nibble), element b + 16 (high nibble). Vector v, byte j: element
                    // 8v + j (low nibble), 8v + 4 + j (high nibble).
                    ulong s0 = *(ulong*)(block + 2), s1 = *(ulong*)(block + 10);
                    q[0] = Pack((uint)s0, (uint)(s0 >> 32), high: false);    // elements 0..3 | 4..7
                    q[8] = Pack((uint)s1, (uint)(s1 >> 32), high: false);    // 8..11 | 12..15
                    q[16] = Pack((uint)s0, (uint)(s0 >> 32), high: true);    // 16..19 | 20..23
                    q[24] = Pack((uint)s1, (uint)(s1 >> 32), high: true);    // 24..27 | 28..31
                }
            }
        }

        static uint Pack(uint first, uint second, bool high) => high
            ? ((first >> 4) & 0x0F0F0F0Fu) | (second & 0xF0F0F0F0u)
            : (first & 0x0F0F0F0Fu) | ((second & 0x0F0F0F0Fu) << 4);
    }

    /// <summary>The code (0..15) of element <paramref name="e"/> (0..31) of row <paramref name="i"/> in one block's 128 code bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int CodeQ4_0x8(byte* blockCodes, int i, int e)
    {
        byte b = blockCodes[(e >> 3) * 32 + i * 4 + (e & 3)];
        return (e & 4) == 0 ? b & 0xF : b >> 4;
    }

    /// <summary>Element (<paramref name="row"/>, <paramref name="col"/>) of a <see cref="DType.Q4_0x8"/> matrix (slow path).</summary>
    public static float ElementQ4_0x8(byte* data, int cols, int row, int col)
    {
        int i = row % GroupRows, k = col / BlockSize;
        byte* block = data + row / GroupRows * GroupBytes(cols) + (long)k * Q4BlockBytes;
        return HalfToSingle(((ushort*)block)[i]) * (CodeQ4_0x8(block + GroupScaleBytes, i, col % BlockSize) - 8);
    }

    /// <summary>Row <paramref name="row"/> of any block-format matrix to float32 (embedding lookups, prefill panels).</summary>
    public static void DequantizeRow(in WeightView w, int row, float* destination)
    {
        if (w.DType == DType.Q4_Kx8)
        {
            DequantizeRowQ4_Kx8(w.Data, w.ColCount, row, destination);
            return;
        }

        if (w.DType == DType.Q8_0x8)
        {
            DequantizeRowQ8_0x8(w.Data, w.ColCount, row, destination);
            return;
        }

        if (w.DType == DType.Q6_Kx8)
        {
            DequantizeRowQ6_Kx8(w.Data, w.ColCount, row, destination);
            return;
        }

        if (w.DType == DType.Q5_Kx8)
        {
            DequantizeRowQ5_Kx8(w.Data, w.ColCount, row, destination);
            return;
        }

        if (w.DType is DType.Affine8x8 or DType.Affine4x8)
        {
            DequantizeRowAffineX8(w, row, destination);
            return;
        }

        if (w.DType != DType.Q4_0x8)
        {
            DequantizeRow(w.Row(row), w.DType, w.ColCount, destination);
            return;
        }

        int cols = w.ColCount, blocks = cols / BlockSize, i = row % GroupRows;
        byte* block = w.Data + row / GroupRows * GroupBytes(cols);
        uint* gathered = stackalloc uint[8];     // the row's 32 codes of one block, in element order
        for (int k = 0; k < blocks; k++, block += Q4BlockBytes, destination += BlockSize)
        {
            GatherQ4Codes(block + GroupScaleBytes, i, gathered);
            ScaleCodes((byte*)gathered, BlockSize, HalfToSingle(((ushort*)block)[i]), 8, 0, destination);
        }
    }

    /// <summary>Row <paramref name="i"/>'s 32 codes (0..15) of one block's 128 code bytes (Q4_0x8, a Q4_Kx8 sub-block), one byte each in element order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void GatherQ4Codes(byte* blockCodes, int i, uint* destination)
    {
        uint* source = (uint*)blockCodes + i;    // vector v's dword of row i: source[8v]; low nibbles elements 8v..8v + 3, high 8v + 4..8v + 7
        for (int v = 0; v < 4; v++)
        {
            uint b = source[8 * v];
            destination[2 * v] = b & 0x0F0F0F0Fu;
            destination[2 * v + 1] = (b >> 4) & 0x0F0F0F0Fu;
        }
    }

    /// <summary>
    /// <paramref name="count"/> (a multiple of 8) elements <c>scale · (code − offset) − shift</c> (float32, in that order,
    /// no fused multiply-add: the scalar dequantization's bits; a shift of 0 changes no bit) from as many code bytes;
    /// 8 at a time under AVX2 (the scalar loop cost Q4 prefill its panels' time).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ScaleCodes(byte* codes, int count, float scale, int offset, float shift, float* destination)
    {
        if (Avx2.IsSupported)
        {
            Vector256<float> sv = Vector256.Create(scale), hv = Vector256.Create(shift);
            Vector256<int> ov = Vector256.Create(offset);
            for (int e = 0; e < count; e += 8)
            {
                (sv * Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(codes + e) - ov) - hv).Store(destination + e);
            }
        }
        else
        {
            for (int e = 0; e < count; e++)
            {
                destination[e] = scale * (codes[e] - offset) - shift;
            }
        }
    }

    /// <summary>The product with a <see cref="DType.Q4_0x8"/>, <see cref="DType.Q4_Kx8"/>, <see cref="DType.Q6_Kx8"/>, <see cref="DType.Q8_0x8"/>, <see cref="DType.Affine8x8"/> or <see cref="DType.Affine4x8"/> matrix (int8 activations).</summary>
    private static void RunX8(Isa isa, WorkerPool pool, float* x, int tokenCount, in WeightView w, float* y, bool accumulate)
    {
        int cols = w.ColCount, blocks = cols / BlockSize;
        long activationBytes = (Q8ActivationBytes(tokenCount, cols) + 63) & ~63L;
        bool q6 = w.DType == DType.Q6_Kx8, affine = w.DType.IsAffine();
        int perToken = q6 ? cols / 16 : affine ? cols / w.GroupSize : 0;   // Q6_K's group offsets (ints), the affine groups' Σx (floats)
        long extraBytes = (long)tokenCount * perToken * sizeof(int);
        // prefill and batched decode on AVX-512: the token-pair tiles, their activations paired after the others (QuantMatMul.PairTiles.cs)
        bool pairTiles = tokenCount > 1 && UsesPairTiles(isa, w.DType);
        // then those per-token values as pairs, after the paired activations
        long pairedActivationBytes = pairTiles ? (PairActivationBytes(tokenCount, cols) + 63) & ~63L : 0;
        long pairBytes = pairTiles ? pairedActivationBytes + (tokenCount + 1) / 2 * 2L * perToken * sizeof(int) : 0;
        extraBytes = (extraBytes + 63) & ~63L;
        byte* scratch = (byte*)pool.SharedScratch(activationBytes + extraBytes + pairBytes);
        QuantizeActivations(isa, x, tokenCount, cols, scratch, out sbyte* codes, out float* scales, out int* sums);
        sbyte* pairCodes = null;
        float* pairScales = null;
        int* pairSums = null;
        int* pairOffsets = null;
        if (pairTiles)
        {
            byte* pairs = scratch + activationBytes + extraBytes;
            // the codes' offset: Q4_0's 8, the sign flip's 128 (Q8_0, MLX 5–8-bit), an MLX 2–4-bit group's centre; K-quants: scale · sum
            int? sumFactor = w.DType switch { DType.Q4_0x8 => 8, DType.Q8_0x8 or DType.Affine8x8 => 128, DType.Affine4x8 => AffineCentre(w.SourceBits), _ => null };
            PairActivations(codes, scales, q6 ? null : sums, tokenCount, cols, sumFactor, pairs, out pairCodes, out pairScales, out pairSums);
            if (perToken > 0)
            {
                pairOffsets = (int*)(pairs + pairedActivationBytes);
            }
        }

        int* offsets = null;      // Q6_Kx8: [tokenCount, cols / 16]
        float* groupSums = null;  // affine: [tokenCount, cols / GroupSize]
        if (q6)
        {
            offsets = (int*)(scratch + activationBytes);
            PrepareQ6Offsets(codes, (long)tokenCount * (cols / 16), offsets);
            if (pairOffsets != null)
            {
                PairValues(offsets, tokenCount, perToken, pairOffsets);
            }
        }
        else if (affine)
        {
            groupSums = (float*)(scratch + activationBytes);
            AffineActivationSums(x, tokenCount, cols, w.GroupSize, groupSums);
            if (pairOffsets != null)
            {
                PairValues((int*)groupSums, tokenCount, perToken, pairOffsets);   // float bits, paired
            }
        }

        int groups = (w.RowCount + GroupRows - 1) / GroupRows;
        // items of consecutive groups, one sequential stream each (~256 KiB, as the row kernel's Int8Tuning.Default),
        // at most an eighth of the groups so both threads of a small matrix share it
        long groupBytes = GroupRows * w.RowBytes;
        int itemGroups = (int)Math.Clamp(Math.Min((256L << 10) / groupBytes, groups / 8), 1, groups);
        bool fourStreams = tokenCount == 1 && w.DType is DType.Q8_0x8 or DType.Q4_0x8 or DType.Affine8x8 or DType.Affine4x8
            && isa != Isa.Scalar && FourStreamDecode;
        if (fourStreams)
        {
            // four streams of ≥ FourStreamBytes, shortened where the matrix would give fewer than two items per thread
            // (at 2 threads the 1.7B matrices keep their 64 KiB; on 16, a 128-group K or V matrix gets 32 items, not 8)
            long quarterGroups = Math.Min((FourStreamBytes + groupBytes - 1) / groupBytes, groups / (8L * pool.ThreadCount));
            itemGroups = 4 * (int)Math.Max(1, quarterGroups);
        }

        var job = new X8Job
        {
            Isa = isa,
            Format = w.DType,
            Weights = w.Data,
            GroupBytes = groupBytes,
            Codes = codes,
            Scales = scales,
            Sums = sums,
            PairCodes = pairCodes,
            PairScales = pairScales,
            PairSums = pairSums,
            PairOffsets = pairOffsets,
            Offsets = offsets,
            GroupSums = groupSums,
            BlocksPerGroup = affine ? w.GroupSize / BlockSize : 0,
            AffineCentre = affine ? AffineCentre(w.SourceBits) : 0,
            Y = y,
            TokenCount = tokenCount,
            RowCount = w.RowCount,
            ColCount = cols,
            Blocks = blocks,
            ItemGroups = itemGroups,
            FourStreams = fourStreams,
            Vnni = UseVnni && isa != Isa.Scalar,
            Accumulate = accumulate,
        };
        pool.Run(ref job, (groups + itemGroups - 1) / itemGroups);
    }

    /// <summary>
    /// Decode (one token) of Q8_0x8, Q4_0x8, Q6_Kx8 and the affine groups reads two 8-row groups per pass (the DotGroupPair*_256 kernels): the
    /// activation broadcasts serve both, and the two groups are independent chains. The bits are those of one group per
    /// pass. Q4_Kx8 keeps one: its pair (written as Q4_0's, with its mins) gained nothing from L2 and streamed 12% slower
    /// from DRAM in this A/B.
    /// False only for the benchmarks' A/B (<c>Qwen3Sharp.Bench quick 2 x8pair=MODEL</c>).
    /// </summary>
    internal static bool TwoGroupsPerPass = true;

    /// <summary>
    /// Whether Q6_Kx8 decode takes the pair walk (<see cref="TwoGroupsPerPass"/>): on AVX2 machines, where it was measured
    /// (Zen 3, from L2 1.11× one group). On AVX-512 ones one group per pass: two groups side by side are two short streams,
    /// which the Zen 5's prefetcher serves badly (<c>quick 1 pattern</c>: 18 KiB items as two streams 16.0 GB/s, as one
    /// 34.0), and from DRAM one group read 47.8 GB/s against the pair's 40.6 (<c>quick 2 x8pair=qwen3-1.7b-q4_k_m.gguf</c>,
    /// 2 threads, session 15). The bits are the same either way.
    /// </summary>
    internal static bool Q6PairWalk = !Vector512.IsHardwareAccelerated;

    /// <summary>
    /// Decode (one token) of Q8_0x8, Q4_0x8 and the MLX affine groups reads each work item as four streams side by side: items
    /// of 4 × ⌈<see cref="FourStreamBytes"/> / group bytes⌉ groups, each pass one group of each quarter
    /// (<see cref="DotGroupQuadQ8_0x8_256"/>, <see cref="DotGroupQuadQ4_0x8_256"/>, DotGroupQuadAffineX8_256), no software prefetch.
    /// One Q8_0 group's stream is 17 KiB for a 2048-column matrix, and streams that short lose much of what reading four at
    /// once gains (<c>Qwen3Sharp.Bench quick 2 pattern</c>); the quarters are 68 KiB there (104 KiB at 6144 columns).
    /// Measured against the pair walk (<see cref="TwoGroupsPerPass"/>) in README's session-12 block. The bits are those
    /// of one group per pass. The K-quants keep their walk: quads of Q4_Kx8 and Q6_Kx8 (tried, each group's steps as their
    /// kernels take them) ran 0.67–0.75× and 0.75–0.85× their walk in the same rounds, as those kernels are bound by their
    /// unpacking, not the memory. False only for the benchmarks' A/B (<c>quick 2 x8read=MODEL</c>).
    /// </summary>
    internal static bool FourStreamDecode = true;

    /// <summary>The shortest stream <see cref="FourStreamDecode"/> reads (tests shorten it to reach the path on small matrices).</summary>
    internal static long FourStreamBytes = 64 << 10;

    /// <summary>
    /// Tokens a group is multiplied with at once (their accumulators on the stack, ≤ 1,984 bytes): a prefill takes its
    /// tokens in tiles of this many, each tile over the group's codes again (from L1/L2), so the accumulators and the
    /// tile's activations stay in L1 whatever the prompt length; at 512 tokens in one tile the accumulators of a block
    /// pass spilled to L2 and Q8_0 prefill ran 0.81× the float32 panels.
    /// </summary>
    public const int TileTokens = 31;

    private struct X8Job : IPoolJob
    {
        public Isa Isa;
        public DType Format;      // Q4_0x8, Q4_Kx8, Q6_Kx8, Q8_0x8, Affine8x8 or Affine4x8
        public byte* Weights;     // [groups][GroupBytes]
        public long GroupBytes;
        public sbyte* Codes;      // [TokenCount, ColCount]
        public float* Scales;     // [TokenCount, Blocks]
        public int* Sums;         // [TokenCount, Blocks]
        public sbyte* PairCodes;  // the pair tiles (QuantMatMul.PairTiles.cs), else null: 2 * ColCount per pair, tile-major (PairActivations)
        public float* PairScales; // 2 * Blocks per pair, tile-major
        public int* PairSums;     // 2 * Blocks per pair, tile-major: Q4_0 8·Σ, affine centre·Σ, Q4_K and Q5_K the float scale·Σ
        public int* PairOffsets;  // Q6_Kx8: 2 * ColCount / 16 per pair, tile-major (PairValues of Offsets); affine: GroupSums' floats paired
        public int* Offsets;      // Q6_Kx8: [TokenCount, 2 * Blocks] (PrepareQ6Offsets)
        public float* GroupSums;  // Affine8x8/Affine4x8: [TokenCount, Blocks / BlocksPerGroup] (AffineActivationSums)
        public int BlocksPerGroup, AffineCentre;
        public float* Y;          // [TokenCount, RowCount]
        public int TokenCount, RowCount, ColCount, Blocks, ItemGroups;
        public bool FourStreams;  // decode: a whole item as four streams (FourStreamDecode)
        public bool Vnni;         // every group format through its AVX-VNNI form (UseVnni; same bits)
        public bool Accumulate;

        public readonly void Execute(int index, int worker)
        {
            int groups = (RowCount + GroupRows - 1) / GroupRows;
            int g0 = index * ItemGroups, g1 = Math.Min(g0 + ItemGroups, groups);
            // ≤ 2 KiB: per token (pair tiles: per token and the odd last one beside zeros) a sum and, for Q4_K, Q5_K and the affine
            // groups, a second accumulator
            Vector256<float>* acc = stackalloc Vector256<float>[Math.Max(4, 2 * Math.Min(TokenCount + 1, PairTileTokens))];
            if (FourStreams && g1 - g0 == ItemGroups)
            {
                // the item's four quarters side by side: pass q reads group q of each quarter (the last item, if short, below)
                int quarter = ItemGroups / 4;
                for (int q = 0; q < quarter; q++)
                {
                    int g = g0 + q;
                    byte* first = Weights + g * GroupBytes;
                    switch (Format)
                    {
                        case DType.Q8_0x8 when Vnni:
                            DotGroupQuadQ8_0x8Vnni(first, quarter * GroupBytes, Blocks, Codes, Scales, Sums, acc);
                            break;
                        case DType.Q8_0x8:
                            DotGroupQuadQ8_0x8_256(first, quarter * GroupBytes, Blocks, Codes, Scales, acc);
                            break;
                        case DType.Q4_0x8 when Vnni:
                            DotGroupQuadQ4_0x8Vnni(first, quarter * GroupBytes, Blocks, Codes, Scales, Sums, acc);
                            break;
                        case DType.Q4_0x8:
                            DotGroupQuadQ4_0x8_256(first, quarter * GroupBytes, Blocks, Codes, Scales, Sums, acc);
                            break;
                        default:
                            DotGroupQuadAffineX8_256(Format == DType.Affine8x8 ? 8 : 4, Vnni, AffineCentre, first, quarter * GroupBytes, Blocks, BlocksPerGroup,
                                Codes, Scales, Sums, GroupSums, acc);
                            break;
                    }

                    for (int j = 0; j < 4; j++)
                    {
                        int r = (g + j * quarter) * GroupRows;
                        StoreGroup(acc[j], Y + r, Math.Min(GroupRows, RowCount - r), Accumulate);
                    }
                }

                return;
            }

            // the pair tiles' generated code for this format, if any, and its arguments (set per group and tile)
            Jit.VnniPairKernels? generated = PairCodes != null ? GeneratedPairTiles(Format) : null;
            Jit.VnniPairArgs jitArgs = generated is null ? default
                : Jit.VnniPairArgs.Create(null, Format == DType.Q4_Kx8 ? Blocks / 8 : Format.IsAffine() ? Blocks / BlocksPerGroup : Blocks, null, null, null, (float*)acc);
            jitArgs.BlocksPerGroup = BlocksPerGroup;
            jitArgs.Centre = AffineCentre;
            float* rowSums = stackalloc float[GroupRows];
            bool k = Format == DType.Q4_Kx8, q8 = Format == DType.Q8_0x8, q6 = Format == DType.Q6_Kx8, q5 = Format == DType.Q5_Kx8;
            int affineBits = Format == DType.Affine8x8 ? 8 : Format == DType.Affine4x8 ? 4 : 0;
            int affineGroups = affineBits != 0 ? Blocks / BlocksPerGroup : 0;
            for (int g = g0; g < g1; g++)
            {
                byte* group = Weights + g * GroupBytes;
                int r = g * GroupRows, n = Math.Min(GroupRows, RowCount - r);
                if (TokenCount == 1 && Isa != Isa.Scalar && g + 1 < g1 && !k && !q5 && TwoGroupsPerPass && (!q6 || Q6PairWalk))
                {
                    // decode: two groups per pass (see DotGroupPairQ8_0x8_256); Q4_K's pair ran 12% slower (TwoGroupsPerPass)
                    Vector256<float> first, second;
                    byte* next = group + GroupBytes;
                    if (affineBits != 0)
                    {
                        DotGroupPairAffineX8_256(affineBits, Vnni, AffineCentre, group, next, Blocks, BlocksPerGroup, Codes, Scales, Sums, GroupSums,
                            out first, out second);
                    }
                    else if (q8 && Vnni)
                    {
                        DotGroupPairQ8_0x8Vnni(group, next, Blocks, Codes, Scales, Sums, out first, out second);
                    }
                    else if (q8)
                    {
                        DotGroupPairQ8_0x8_256(group, next, Blocks, Codes, Scales, out first, out second);
                    }
                    else if (q6 && Vnni)
                    {
                        DotGroupPairQ6_Kx8Vnni(group, next, Blocks / 8, Codes, Scales, Offsets, out first, out second);
                    }
                    else if (q6)
                    {
                        DotGroupPairQ6_Kx8_256(group, next, Blocks / 8, Codes, Scales, Offsets, out first, out second);
                    }
                    else if (Vnni)
                    {
                        DotGroupPairQ4_0x8Vnni(group, next, Blocks, Codes, Scales, Sums, out first, out second);
                    }
                    else
                    {
                        DotGroupPairQ4_0x8_256(group, next, Blocks, Codes, Scales, Sums, out first, out second);
                    }

                    StoreGroup(first, Y + r, n, Accumulate);
                    StoreGroup(second, Y + r + GroupRows, Math.Min(GroupRows, RowCount - r - GroupRows), Accumulate);
                    g++;
                    continue;
                }

                if (Isa == Isa.Scalar)
                {
                    for (int t = 0; t < TokenCount; t++)
                    {
                        sbyte* x = Codes + (long)t * ColCount;
                        float* xs = Scales + (long)t * Blocks;
                        int* xsum = Sums + (long)t * Blocks;
                        if (affineBits != 0)
                        {
                            DotGroupAffineX8Scalar(affineBits, AffineCentre, group, Blocks, BlocksPerGroup, x, xs, xsum, GroupSums + (long)t * affineGroups, rowSums);
                        }
                        else if (k)
                        {
                            DotGroupQ4_Kx8Scalar(group, Blocks / 8, x, xs, xsum, rowSums);
                        }
                        else if (q5)
                        {
                            DotGroupQ5_Kx8Scalar(group, Blocks / 8, x, xs, xsum, rowSums);
                        }
                        else if (q6)
                        {
                            DotGroupQ6_Kx8Scalar(group, Blocks / 8, x, xs, rowSums);
                        }
                        else if (q8)
                        {
                            DotGroupQ8_0x8Scalar(group, Blocks, x, xs, rowSums);
                        }
                        else
                        {
                            DotGroupQ4_0x8Scalar(group, Blocks, x, xs, xsum, rowSums);
                        }

                        StoreGroup(Vector256.Load(rowSums), Y + (long)t * RowCount + r, n, Accumulate);
                    }
                }
                else if (TokenCount == 1)
                {
                    StoreGroup(affineBits != 0 ? DotGroupAffineX8_256(affineBits, Vnni, AffineCentre, group, Blocks, BlocksPerGroup, Codes, Scales, Sums, GroupSums)
                        : k && Vnni ? DotGroupQ4_Kx8_256<CodeDotVnni>(group, Blocks / 8, Codes, Scales, Sums)
                        : k ? DotGroupQ4_Kx8_256<NibbleDotAvx2>(group, Blocks / 8, Codes, Scales, Sums)
                        : q5 && Vnni ? DotGroupQ5_Kx8_256<CodeDotVnni>(group, Blocks / 8, Codes, Scales, Sums)
                        : q5 ? DotGroupQ5_Kx8_256<Q5DotAvx2>(group, Blocks / 8, Codes, Scales, Sums)
                        : q6 && Vnni ? DotGroupQ6_Kx8Vnni(group, Blocks / 8, Codes, Scales, Offsets)
                        : q6 ? DotGroupQ6_Kx8_256(group, Blocks / 8, Codes, Scales, Offsets)
                        : q8 && Vnni ? DotGroupQ8_0x8Vnni(group, Blocks, Codes, Scales, Sums)
                        : q8 ? DotGroupQ8_0x8_256(group, Blocks, Codes, Scales)
                        : Vnni ? DotGroupQ4_0x8Vnni(group, Blocks, Codes, Scales, Sums)
                        : DotGroupQ4_0x8_256(group, Blocks, Codes, Scales, Sums), Y + r, n, Accumulate);
                }
                else if (PairCodes != null)
                {
                    PairTileGroup(group, r, n, (Vector512<float>*)acc, generated, &jitArgs);   // two tokens per 512-bit vector
                }
                else
                {
                    for (int t0 = 0; t0 < TokenCount; t0 += TileTokens)
                    {
                        int tile = Math.Min(TileTokens, TokenCount - t0);
                        sbyte* x = Codes + (long)t0 * ColCount;
                        float* xs = Scales + (long)t0 * Blocks;
                        int* xsum = Sums + (long)t0 * Blocks;
                        if (affineBits != 0)
                        {
                            DotGroupAffineX8N_256(affineBits, Vnni, AffineCentre, group, Blocks, BlocksPerGroup, x, xs, xsum, GroupSums + (long)t0 * affineGroups, ColCount, tile, acc);
                        }
                        else if (k && Vnni)
                        {
                            DotGroupQ4_Kx8N_256<CodeDotVnni>(group, Blocks / 8, x, xs, xsum, ColCount, tile, acc);
                        }
                        else if (k)
                        {
                            DotGroupQ4_Kx8N_256<NibbleDotAvx2>(group, Blocks / 8, x, xs, xsum, ColCount, tile, acc);
                        }
                        else if (q5 && Vnni)
                        {
                            DotGroupQ5_Kx8N_256<CodeDotVnni>(group, Blocks / 8, x, xs, xsum, ColCount, tile, acc);
                        }
                        else if (q5)
                        {
                            DotGroupQ5_Kx8N_256<Q5DotAvx2>(group, Blocks / 8, x, xs, xsum, ColCount, tile, acc);
                        }
                        else if (q6 && Vnni)
                        {
                            DotGroupQ6_Kx8NVnni(group, Blocks / 8, x, xs, Offsets + (long)t0 * (ColCount / 16), ColCount, tile, acc);
                        }
                        else if (q6)
                        {
                            DotGroupQ6_Kx8N_256(group, Blocks / 8, x, xs, Offsets + (long)t0 * (ColCount / 16), ColCount, tile, acc);
                        }
                        else if (q8 && Vnni)
                        {
                            DotGroupQ8_0x8NVnni(group, Blocks, x, xs, xsum, ColCount, tile, acc);
                        }
                        else if (q8)
                        {
                            DotGroupQ8_0x8N_256(group, Blocks, x, xs, ColCount, tile, acc);
                        }
                        else if (Vnni)
                        {
                            DotGroupQ4_0x8N_256<CodeDotVnni>(group, Blocks, x, xs, xsum, ColCount, tile, acc);
                        }
                        else
                        {
                            DotGroupQ4_0x8N_256<NibbleDotAvx2>(group, Blocks, x, xs, xsum, ColCount, tile, acc);
                        }

                        for (int t = 0; t < tile; t++)
                        {
                            StoreGroup(acc[t], Y + (long)(t0 + t) * RowCount + r, n, Accumulate);
                        }
                    }
                }
            }
        }

        /// <summary>
        /// One group against every token in the pair tiles (QuantMatMul.PairTiles.cs): per tile of
        /// <see cref="PairTileTokens"/> tokens the group's kernel for its format (<paramref name="generated"/> code where there
        /// is some, with <paramref name="jitArgs"/>), then each pair's two tokens' 8 rows out. Optimized from its first call:
        /// a prefill right after decode-only warm-up otherwise ran it at tier 0 until it tiered up.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private readonly void PairTileGroup(byte* group, int r, int n, Vector512<float>* pairAcc, Jit.VnniPairKernels? generated,
            Jit.VnniPairArgs* jitArgs)
        {
            int affineGroups = Format.IsAffine() ? Blocks / BlocksPerGroup : 0;
            for (int t0 = 0; t0 < TokenCount; t0 += PairTileTokens)
            {
                int pairs = (Math.Min(PairTileTokens, TokenCount - t0) + 1) / 2;
                long p0 = t0 / 2;
                sbyte* px = PairCodes + p0 * 2 * ColCount;
                float* ps = PairScales + p0 * Blocks * 2;
                int* pu = PairSums + p0 * Blocks * 2;
                float* pg = Format.IsAffine() ? (float*)PairOffsets + p0 * 2 * affineGroups : null;   // the affine groups' Σx pairs
                if (generated is not null)
                {
                    // Q8_0, Q4_0, Q4_K and MLX where AVX512_VNNI runs: generated code, 512-bit vpdpbusd (Jit/VnniPairKernels.cs)
                    jitArgs->Group = group;
                    jitArgs->X = px;
                    jitArgs->Xs = ps;
                    jitArgs->Xsum = pu;
                    jitArgs->Xg = pg;
                    generated.For(pairs)(jitArgs);
                }
                else
                {
                    switch (Format)
                    {
                        case DType.Affine4x8:
                            DotGroupAffine4x8Pairs_512(AffineCentre, group, Blocks, BlocksPerGroup, px, ps, pu, pg, pairs, pairAcc);
                            break;
                        case DType.Q4_Kx8:
                            DotGroupQ4_Kx8Pairs_512(group, Blocks / 8, px, ps, pu, pairs, pairAcc);
                            break;
                        case DType.Q5_Kx8:
                            DotGroupQ5_Kx8Pairs_512(group, Blocks / 8, px, ps, pu, pairs, pairAcc);
                            break;
                        case DType.Q6_Kx8:
                            DotGroupQ6_Kx8Pairs_512(group, Blocks / 8, px, ps, PairOffsets + p0 * 2 * (ColCount / 16), pairs, pairAcc);
                            break;
                        default:
                            DotGroupQ4_0x8Pairs_512(group, Blocks, px, ps, pu, pairs, pairAcc);
                            break;
                    }
                }

                for (int p = 0; p < pairs; p++)
                {
                    int t = t0 + 2 * p;
                    (Vector256<float> first, Vector256<float> second) = SplitPair(pairAcc[p]);
                    StoreGroup(first, Y + (long)t * RowCount + r, n, Accumulate);
                    if (t + 1 < TokenCount)
                    {
                        StoreGroup(second, Y + (long)(t + 1) * RowCount + r, n, Accumulate);
                    }
                }
            }
        }
    }

    /// <summary>A group's 8 sums into <paramref name="y"/> (only the first <paramref name="n"/> rows exist).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreGroup(Vector256<float> sums, float* y, int n, bool accumulate)
    {
        if (n == GroupRows)
        {
            (accumulate ? Vector256.Load(y) + sums : sums).Store(y);
            return;
        }

        for (int i = 0; i < n; i++)
        {
            Store(y + i, sums.GetElement(i), accumulate);
        }
    }

    /// <summary>
    /// How far ahead of the codes being read the group kernels prefetch (<c>prefetcht0</c>, two lines per 128-byte block;
    /// Q4_K also its scale lines per super-block): they consume their stream about twice as fast as the row kernels, and
    /// without it the hardware prefetchers fell behind. Measured (Qwen3Sharp.Bench quick 2 x8, Zen 3, load 7–16, 1.7B
    /// step matmuls from DRAM, against the row kernels): Q4_0 1.11× → 1.16× wall, Q4_K 0.87× → 1.59× wall. That was 2 KiB
    /// on the Zen 3, where it stays; AVX-512 machines prefetch 6 KiB ahead: on the Zen 5 (session 15, whole-model decode,
    /// the distance alternated run by run) Q4_K_M read 35.2–36.4 tok/s at 2 KiB, 39.1–39.5 at 4, 37.7–39.4 at 6 and
    /// 35.7–38.6 at 8 in the 49–50 GB/s windows, and 39.3–44.3 at 4 against 47.1–49.4 at 6 in the 83–86 GB/s ones; Q5_K_M
    /// 31.2–31.6 at 2 against 36.0–36.6 at 4 (83–85 GB/s). The four-stream walks (Q8_0, Q4_0, MLX decode) prefetch nothing.
    /// </summary>
    private static readonly int PrefetchBytes = Vector512.IsHardwareAccelerated ? 6 << 10 : 2 << 10;

    /// <summary>2^112: an fp16 bit pattern moved into float32's exponent/mantissa positions, times this, is its value.</summary>
    private static Vector256<float> HalfScale => Vector256.Create(BitConverter.Int32BitsToSingle((127 + 112) << 23));

    /// <summary>Eight fp16 scales (sign-extended by <c>vpmovsxwd</c>) to float32, exactly for finite values.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> WidenHalves(short* h, Vector256<int> mask, Vector256<float> scale)
        => ((Avx2.ConvertToVector256Int32(h) << 13) & mask).AsSingle() * scale;

    /// <summary>
    /// One block's or sub-block's exact integer dot, per row (lane): 8 unsigned code vectors against the 8 activation dwords
    /// at x, code vector c against dword c. The kernels that take it come in an AVX2 and an AVX-VNNI form with the same bits.
    /// </summary>
    internal interface ICodeDot
    {
        static abstract Vector256<int> Dot(Vector256<byte> c0, Vector256<byte> c1, Vector256<byte> c2, Vector256<byte> c3,
            Vector256<byte> c4, Vector256<byte> c5, Vector256<byte> c6, Vector256<byte> c7, int* x);
    }

    /// <summary>Codes ≤ 15 (nibbles): 8 <c>vpmaddubsw</c> summed in int16 (<see cref="GroupBlockPairs"/>), widened once.</summary>
    internal readonly struct NibbleDotAvx2 : ICodeDot
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<int> Dot(Vector256<byte> c0, Vector256<byte> c1, Vector256<byte> c2, Vector256<byte> c3,
            Vector256<byte> c4, Vector256<byte> c5, Vector256<byte> c6, Vector256<byte> c7, int* x)
            => Avx2.MultiplyAddAdjacent(GroupBlockPairs(c0, c1, c2, c3, c4, c5, c6, c7, x), Vector256.Create((short)1));
    }

    /// <summary>A block's 4 code vectors at <paramref name="q"/> as low and high nibbles (low against dword 2v, high against 2v + 1).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Nibbles(byte* q, Vector256<byte> m, out Vector256<byte> l0, out Vector256<byte> h0, out Vector256<byte> l1,
        out Vector256<byte> h1, out Vector256<byte> l2, out Vector256<byte> h2, out Vector256<byte> l3, out Vector256<byte> h3)
    {
        Vector256<byte> v0 = Vector256.Load(q), v1 = Vector256.Load(q + 32), v2 = Vector256.Load(q + 64), v3 = Vector256.Load(q + 96);
        l0 = v0 & m;
        h0 = Avx2.ShiftRightLogical(v0.AsUInt16(), 4).AsByte() & m;
        l1 = v1 & m;
        h1 = Avx2.ShiftRightLogical(v1.AsUInt16(), 4).AsByte() & m;
        l2 = v2 & m;
        h2 = Avx2.ShiftRightLogical(v2.AsUInt16(), 4).AsByte() & m;
        l3 = v3 & m;
        h3 = Avx2.ShiftRightLogical(v3.AsUInt16(), 4).AsByte() & m;
    }

    /// <summary>Σ over 8 activation dwords of <c>vpmaddubsw</c> with the unpacked codes of one block, as int16 pairs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<short> GroupBlockPairs(Vector256<byte> l0, Vector256<byte> h0, Vector256<byte> l1, Vector256<byte> h1,
        Vector256<byte> l2, Vector256<byte> h2, Vector256<byte> l3, Vector256<byte> h3, int* x)
        => (Avx2.MultiplyAddAdjacent(l0, Vector256.Create(x[0]).AsSByte()) + Avx2.MultiplyAddAdjacent(h0, Vector256.Create(x[1]).AsSByte()))
         + (Avx2.MultiplyAddAdjacent(l1, Vector256.Create(x[2]).AsSByte()) + Avx2.MultiplyAddAdjacent(h1, Vector256.Create(x[3]).AsSByte()))
         + ((Avx2.MultiplyAddAdjacent(l2, Vector256.Create(x[4]).AsSByte()) + Avx2.MultiplyAddAdjacent(h2, Vector256.Create(x[5]).AsSByte()))
         + (Avx2.MultiplyAddAdjacent(l3, Vector256.Create(x[6]).AsSByte()) + Avx2.MultiplyAddAdjacent(h3, Vector256.Create(x[7]).AsSByte())));

    /// <summary>
    /// One block of two Q4_0x8 groups at once: each one's int16 pair sums (as
    /// <see cref="GroupBlockPairs"/>; exact in any order) against the 8 activation dwords at <paramref name="x"/>, each
    /// dword broadcast once for both.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void BlockPairsTwice(byte* qa, byte* qb, int* x, Vector256<byte> m, out Vector256<short> pa, out Vector256<short> pb)
    {
        // written out: as a loop the JIT kept it rolled, with index arithmetic around every step
        Vector256<short> sa = Vector256<short>.Zero, sb = Vector256<short>.Zero;
        VectorPairsTwice(qa, qb, x, 0, m, ref sa, ref sb);
        VectorPairsTwice(qa, qb, x, 1, m, ref sa, ref sb);
        VectorPairsTwice(qa, qb, x, 2, m, ref sa, ref sb);
        VectorPairsTwice(qa, qb, x, 3, m, ref sa, ref sb);
        pa = sa;
        pb = sb;
    }

    /// <summary>Code vector <paramref name="v"/> of a block of two groups (low nibbles against dword 2v, high against 2v + 1) into their int16 pair sums.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void VectorPairsTwice(byte* qa, byte* qb, int* x, int v, Vector256<byte> m, ref Vector256<short> sa, ref Vector256<short> sb)
    {
        Vector256<sbyte> low = Vector256.Create(x[2 * v]).AsSByte(), high = Vector256.Create(x[2 * v + 1]).AsSByte();
        Vector256<byte> wa = Vector256.Load(qa + 32 * v), wb = Vector256.Load(qb + 32 * v);
        sa += Avx2.MultiplyAddAdjacent(wa & m, low) + Avx2.MultiplyAddAdjacent(Avx2.ShiftRightLogical(wa.AsUInt16(), 4).AsByte() & m, high);
        sb += Avx2.MultiplyAddAdjacent(wb & m, low) + Avx2.MultiplyAddAdjacent(Avx2.ShiftRightLogical(wb.AsUInt16(), 4).AsByte() & m, high);
    }

    /// <summary>
    /// Two Q4_0x8 groups against one token in one pass (as <see cref="DotGroupPairQ8_0x8_256"/>): each block's 8 activation
    /// broadcasts serve both, two independent chains; each lane has the bits <see cref="DotGroupQ4_0x8_256"/> gives it
    /// (the int16 pair sums stay below 2^15 and are exact in any order; the float steps are the same).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotGroupPairQ4_0x8_256(byte* ga, byte* gb, int blocks, sbyte* x, float* xs, int* xsum,
        out Vector256<float> ra, out Vector256<float> rb)
    {
        short* da = (short*)ga, db = (short*)gb;
        ga += GroupScaleBytes;
        gb += GroupScaleBytes;
        Vector256<byte> m = Vector256.Create((byte)0x0F);
        Vector256<short> ones = Vector256.Create((short)1);
        Vector256<int> halfMask = Vector256.Create(unchecked((int)0x8FFFE000));
        Vector256<float> halfScale = HalfScale;
        Vector256<float> acca = Vector256<float>.Zero, accb = Vector256<float>.Zero;
        for (int k = 0; k < blocks; k++, ga += Q4BlockBytes, gb += Q4BlockBytes, da += Q4BlockBytes / 2, db += Q4BlockBytes / 2, x += BlockSize)
        {
            SimdMath.Prefetch(ga + PrefetchBytes);
            SimdMath.Prefetch(ga + PrefetchBytes + 64);
            SimdMath.Prefetch(gb + PrefetchBytes);
            SimdMath.Prefetch(gb + PrefetchBytes + 64);
            BlockPairsTwice(ga, gb, (int*)x, m, out Vector256<short> pa, out Vector256<short> pb);
            Vector256<int> offset = Vector256.Create(xsum[k] << 3);
            Vector256<float> xsk = Vector256.Create(xs[k]);
            Vector256<int> dota = Avx2.MultiplyAddAdjacent(pa, ones) - offset;
            Vector256<int> dotb = Avx2.MultiplyAddAdjacent(pb, ones) - offset;
            acca = Fma.MultiplyAdd(Avx.ConvertToVector256Single(dota), WidenHalves(da, halfMask, halfScale) * xsk, acca);
            accb = Fma.MultiplyAdd(Avx.ConvertToVector256Single(dotb), WidenHalves(db, halfMask, halfScale) * xsk, accb);
        }

        ra = acca;
        rb = accb;
    }

    /// <summary>
    /// Four Q4_0x8 groups against one token in one pass, <paramref name="stride"/> bytes apart (the quarters of a
    /// <see cref="FourStreamDecode"/> item; two <see cref="BlockPairsTwice"/> per block, no software prefetch):
    /// <paramref name="result"/>[j] is group j's, with the bits <see cref="DotGroupQ4_0x8_256"/> gives it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotGroupQuadQ4_0x8_256(byte* g0, long stride, int blocks, sbyte* x, float* xs, int* xsum, Vector256<float>* result)
    {
        short* d0 = (short*)g0;
        long ds = stride / sizeof(short);
        g0 += GroupScaleBytes;
        byte* g1 = g0 + stride, g2 = g1 + stride, g3 = g2 + stride;
        Vector256<byte> m = Vector256.Create((byte)0x0F);
        Vector256<short> ones = Vector256.Create((short)1);
        Vector256<int> halfMask = Vector256.Create(unchecked((int)0x8FFFE000));
        Vector256<float> halfScale = HalfScale;
        Vector256<float> a0 = Vector256<float>.Zero, a1 = Vector256<float>.Zero, a2 = Vector256<float>.Zero, a3 = Vector256<float>.Zero;
        for (int k = 0; k < blocks; k++, g0 += Q4BlockBytes, g1 += Q4BlockBytes, g2 += Q4BlockBytes, g3 += Q4BlockBytes,
            d0 += Q4BlockBytes / 2, x += BlockSize)
        {
            BlockPairsTwice(g0, g1, (int*)x, m, out Vector256<short> p0, out Vector256<short> p1);
            BlockPairsTwice(g2, g3, (int*)x, m, out Vector256<short> p2, out Vector256<short> p3);
            Vector256<int> offset = Vector256.Create(xsum[k] << 3);
            Vector256<float> xsk = Vector256.Create(xs[k]);
            a0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(p0, ones) - offset), WidenHalves(d0, halfMask, halfScale) * xsk, a0);
            a1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(p1, ones) - offset), WidenHalves(d0 + ds, halfMask, halfScale) * xsk, a1);
            a2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(p2, ones) - offset), WidenHalves(d0 + 2 * ds, halfMask, halfScale) * xsk, a2);
            a3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(p3, ones) - offset), WidenHalves(d0 + 3 * ds, halfMask, halfScale) * xsk, a3);
        }

        result[0] = a0;
        result[1] = a1;
        result[2] = a2;
        result[3] = a3;
    }

    /// <summary>One group of 8 rows against one token: lane i is row i's dot product.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static Vector256<float> DotGroupQ4_0x8_256(byte* group, int blocks, sbyte* x, float* xs, int* xsum)
    {
        short* d = (short*)group;
        group += GroupScaleBytes;
        Vector256<byte> m = Vector256.Create((byte)0x0F);
        Vector256<short> ones = Vector256.Create((short)1);
        Vector256<int> halfMask = Vector256.Create(unchecked((int)0x8FFFE000));
        Vector256<float> halfScale = HalfScale;
        Vector256<float> acc = Vector256<float>.Zero;
        for (int k = 0; k < blocks; k++, group += Q4BlockBytes, d += Q4BlockBytes / 2, x += BlockSize)
        {
            SimdMath.Prefetch(group + PrefetchBytes);
            SimdMath.Prefetch(group + PrefetchBytes + 64);
            Vector256<byte> v0 = Vector256.Load(group), v1 = Vector256.Load(group + 32);
            Vector256<byte> v2 = Vector256.Load(group + 64), v3 = Vector256.Load(group + 96);
            Vector256<short> pairs = GroupBlockPairs(
                v0 & m, Avx2.ShiftRightLogical(v0.AsUInt16(), 4).AsByte() & m,
                v1 & m, Avx2.ShiftRightLogical(v1.AsUInt16(), 4).AsByte() & m,
                v2 & m, Avx2.ShiftRightLogical(v2.AsUInt16(), 4).AsByte() & m,
                v3 & m, Avx2.ShiftRightLogical(v3.AsUInt16(), 4).AsByte() & m, (int*)x);
            Vector256<int> dot = Avx2.MultiplyAddAdjacent(pairs, ones) - Vector256.Create(xsum[k] << 3);
            Vector256<float> scale = WidenHalves(d, halfMask, halfScale) * Vector256.Create(xs[k]);
            acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(dot), scale, acc);
        }

        return acc;
    }

    /// <summary>
    /// One group against <paramref name="tokenCount"/> tokens (activation rows <paramref name="cols"/> codes and
    /// <paramref name="blocks"/> scales apart): each block's codes unpacked once for every token; the same arithmetic
    /// per token as <see cref="DotGroupQ4_0x8_256"/>, so every token's result has the same bits as decoding it alone.
    /// <typeparamref name="TDot"/>: the block dot, <see cref="NibbleDotAvx2"/> or (AVX-VNNI, same bits) <see cref="CodeDotVnni"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotGroupQ4_0x8N_256<TDot>(byte* group, int blocks, sbyte* x, float* xs, int* xsum, int cols, int tokenCount,
        Vector256<float>* acc)
        where TDot : struct, ICodeDot
    {
        short* d = (short*)group;
        group += GroupScaleBytes;
        Vector256<byte> m = Vector256.Create((byte)0x0F);
        Vector256<int> halfMask = Vector256.Create(unchecked((int)0x8FFFE000));
        Vector256<float> halfScale = HalfScale;
        for (int t = 0; t < tokenCount; t++)
        {
            acc[t] = Vector256<float>.Zero;
        }

        for (int k = 0; k < blocks; k++, group += Q4BlockBytes, d += Q4BlockBytes / 2)
        {
            SimdMath.Prefetch(group + PrefetchBytes);
            SimdMath.Prefetch(group + PrefetchBytes + 64);
            Vector256<byte> v0 = Vector256.Load(group), v1 = Vector256.Load(group + 32);
            Vector256<byte> v2 = Vector256.Load(group + 64), v3 = Vector256.Load(group + 96);
            Vector256<byte> l0 = v0 & m, h0 = Avx2.ShiftRightLogical(v0.AsUInt16(), 4).AsByte() & m;
            Vector256<byte> l1 = v1 & m, h1 = Avx2.ShiftRightLogical(v1.AsUInt16(), 4).AsByte() & m;
            Vector256<byte> l2 = v2 & m, h2 = Avx2.ShiftRightLogical(v2.AsUInt16(), 4).AsByte() & m;
            Vector256<byte> l3 = v3 & m, h3 = Avx2.ShiftRightLogical(v3.AsUInt16(), 4).AsByte() & m;
            Vector256<float> dw = WidenHalves(d, halfMask, halfScale);
            for (int t = 0; t < tokenCount; t++)
            {
                long o = (long)t * blocks + k;
                int* xt = (int*)(x + (long)t * cols + (long)k * BlockSize);
                Vector256<int> dot = TDot.Dot(l0, h0, l1, h1, l2, h2, l3, h3, xt) - Vector256.Create(xsum[o] << 3);
                acc[t] = Fma.MultiplyAdd(Avx.ConvertToVector256Single(dot), dw * Vector256.Create(xs[o]), acc[t]);
            }
        }
    }

    /// <summary>
    /// The scalar twin of <see cref="DotGroupQ4_0x8_256"/>, bit for bit: per row and block the exact integer dot less
    /// 8·Σ(activation codes), then one fused multiply-add with (weight scale · activation scale).
    /// </summary>
    internal static void DotGroupQ4_0x8Scalar(byte* group, int blocks, sbyte* x, float* xs, int* xsum, float* destination)
    {
        float* half = HalfTable.Values;
        for (int i = 0; i < GroupRows; i++)
        {
            float acc = 0;
            for (int k = 0; k < blocks; k++)
            {
                ushort* d = (ushort*)(group + (long)k * Q4BlockBytes);
                byte* codes = (byte*)d + GroupScaleBytes;
                sbyte* xk = x + (long)k * BlockSize;
                int dot = 0;
                for (int e = 0; e < BlockSize; e++)
                {
                    dot += CodeQ4_0x8(codes, i, e) * xk[e];
                }

                dot -= xsum[k] << 3;
                acc = MathF.FusedMultiplyAdd(dot, half[d[i]] * xs[k], acc);
            }

            destination[i] = acc;
        }
    }

    // ------------------------------------------------------------------ Q4_K in 8-row groups

    /// <summary>Bytes of one super-block of a <see cref="DType.Q4_Kx8"/> group: codes, scales, mins, d, dmin.</summary>
    private const int KGroupBytes = 8 * GroupBlockBytes + 2 * 64 + 2 * 16;

    private const int KScalesOffset = 8 * GroupBlockBytes, KMinsOffset = KScalesOffset + 64, KdOffset = KMinsOffset + 64, KdMinOffset = KdOffset + 16;

    /// <summary>Bytes of a <see cref="DType.Q4_Kx8"/> matrix (the last group padded to 8 rows).</summary>
    public static long RepackedBytesQ4_Kx8(int rows, int cols) => (long)((rows + GroupRows - 1) / GroupRows) * (cols / KBlockSize) * KGroupBytes;

    /// <summary>False when some super-block's d or dmin is an fp16 infinity or NaN (see <see cref="CanRepackQ4_0x8"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // runs once per matrix at load: no tier-0 code
    public static bool CanRepackQ4_Kx8(byte* source, int rows, int cols)
    {
        long blockCount = (long)rows * (cols / KBlockSize);
        for (long b = 0; b < blockCount; b++)
        {
            ushort d = *(ushort*)(source + b * 144), dmin = *(ushort*)(source + b * 144 + 2);
            if ((d & 0x7C00) == 0x7C00 || (dmin & 0x7C00) == 0x7C00)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// A Q4_K matrix [rows, cols] into <see cref="DType.Q4_Kx8"/> at <paramref name="destination"/>
    /// (<see cref="RepackedBytesQ4_Kx8"/> bytes). Chunk c of a Q4_K super-block holds sub-block 2c in the low nibbles of
    /// its 32 bytes and 2c + 1 in the high ones; each sub-block's codes go out as <see cref="RepackQ4_0x8"/> lays out a block.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // runs once per matrix at load: no tier-0 code
    public static void RepackQ4_Kx8(byte* source, int rows, int cols, byte* destination)
    {
        int superBlocks = cols / KBlockSize;
        long rowBytes = (long)superBlocks * 144;
        int groups = (rows + GroupRows - 1) / GroupRows;
        for (int g = 0; g < groups; g++)
        {
            for (int i = 0; i < GroupRows; i++)
            {
                int r = g * GroupRows + i;
                byte* block = source + r * rowBytes;
                byte* dst = destination + (long)g * superBlocks * KGroupBytes;
                for (int k = 0; k < superBlocks; k++, block += 144, dst += KGroupBytes)
                {
                    bool pad = r >= rows;
                    ((ushort*)(dst + KdOffset))[i] = pad ? (ushort)0 : *(ushort*)block;
                    ((ushort*)(dst + KdMinOffset))[i] = pad ? (ushort)0 : *(ushort*)(block + 2);
                    for (int s = 0; s < 8; s++)
                    {
                        (int sc, int m) = pad ? (0, 0) : Reference.QuantScalar.ScaleMin(block + 4, s);
                        dst[KScalesOffset + s * GroupRows + i] = (byte)sc;
                        dst[KMinsOffset + s * GroupRows + i] = (byte)m;
                        uint* q = (uint*)(dst + s * GroupBlockBytes) + i;
                        if (pad)
                        {
                            q[0] = q[8] = q[16] = q[24] = 0;
                            continue;
                        }

                        // sub-block element e is byte 32(s/2) + e's low (s even) or high (s odd) nibble
                        byte* qs = block + 16 + 32 * (s >> 1);
                        bool high = (s & 1) != 0;
                        for (int v = 0; v < 4; v++)
                        {
                            ulong u = *(ulong*)(qs + 8 * v);
                            q[8 * v] = Pack((uint)u, (uint)(u >> 32), high);
                        }
                    }
                }
            }
        }

        static uint Pack(uint first, uint second, bool high) => high
            ? ((first >> 4) & 0x0F0F0F0Fu) | (second & 0xF0F0F0F0u)
            : (first & 0x0F0F0F0Fu) | ((second & 0x0F0F0F0Fu) << 4);
    }

    /// <summary>Element (<paramref name="row"/>, <paramref name="col"/>) of a <see cref="DType.Q4_Kx8"/> matrix (slow path).</summary>
    public static float ElementQ4_Kx8(byte* data, int cols, int row, int col)
    {
        var values = stackalloc float[KBlockSize];
        int i = row % GroupRows, k = col / KBlockSize;
        byte* sb = data + ((long)(row / GroupRows) * (cols / KBlockSize) + k) * KGroupBytes;
        DequantizeSuperBlockQ4_Kx8(sb, i, values);
        return values[col % KBlockSize];
    }

    private static void DequantizeRowQ4_Kx8(byte* data, int cols, int row, float* destination)
    {
        int superBlocks = cols / KBlockSize, i = row % GroupRows;
        byte* sb = data + (long)(row / GroupRows) * superBlocks * KGroupBytes;
        for (int k = 0; k < superBlocks; k++, sb += KGroupBytes, destination += KBlockSize)
        {
            DequantizeSuperBlockQ4_Kx8(sb, i, destination);
        }
    }

    /// <summary>Row <paramref name="i"/>'s 256 elements of one group super-block, as the Q4_K dequantization computes them: (d·sc)·q − (dmin·m).</summary>
    private static void DequantizeSuperBlockQ4_Kx8(byte* sb, int i, float* destination)
    {
        float d = HalfToSingle(((ushort*)(sb + KdOffset))[i]), dmin = HalfToSingle(((ushort*)(sb + KdMinOffset))[i]);
        uint* gathered = stackalloc uint[8];
        for (int s = 0; s < 8; s++)
        {
            float ds = d * sb[KScalesOffset + s * GroupRows + i], dm = dmin * sb[KMinsOffset + s * GroupRows + i];
            GatherQ4Codes(sb + s * GroupBlockBytes, i, gathered);
            ScaleCodes((byte*)gathered, BlockSize, ds, 0, dm, destination + 32 * s);
        }
    }

    /// <summary>
    /// One group of 8 Q4_K rows against one token: per sub-block the 8 rows' exact integer dots (as
    /// <see cref="DotGroupQ4_0x8_256"/>, without an offset) times (d·sc)·d_x; per super-block the mins term
    /// dmin·Σ_s m_s·(d_x·Σx_q) taken off in one FMA.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static Vector256<float> DotGroupQ4_Kx8_256<TDot>(byte* group, int superBlocks, sbyte* x, float* xs, int* xsum)
        where TDot : struct, ICodeDot
    {
        Vector256<byte> m = Vector256.Create((byte)0x0F);
        Vector256<int> halfMask = Vector256.Create(unchecked((int)0x8FFFE000));
        Vector256<float> halfScale = HalfScale;
        Vector256<float> acc = Vector256<float>.Zero;
        for (int k = 0; k < superBlocks; k++, group += KGroupBytes)
        {
            Vector256<float> d = WidenHalves((short*)(group + KdOffset), halfMask, halfScale);
            Vector256<float> mins = Vector256<float>.Zero;
            SimdMath.Prefetch(group + PrefetchBytes + KScalesOffset);
            SimdMath.Prefetch(group + PrefetchBytes + KScalesOffset + 64);
            SimdMath.Prefetch(group + PrefetchBytes + KScalesOffset + 128);
            for (int s = 0; s < 8; s++, x += BlockSize, xs++, xsum++)
            {
                byte* q = group + s * GroupBlockBytes;
                SimdMath.Prefetch(q + PrefetchBytes);
                SimdMath.Prefetch(q + PrefetchBytes + 64);
                Nibbles(q, m, out var l0, out var h0, out var l1, out var h1, out var l2, out var h2, out var l3, out var h3);
                Vector256<int> dot = TDot.Dot(l0, h0, l1, h1, l2, h2, l3, h3, (int*)x);
                Vector256<float> sc = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(group + KScalesOffset + s * GroupRows));
                Vector256<float> mc = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(group + KMinsOffset + s * GroupRows));
                acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(dot), d * sc * Vector256.Create(*xs), acc);
                mins = Fma.MultiplyAdd(mc, Vector256.Create(*xs * *xsum), mins);
            }

            acc = Fma.MultiplyAddNegated(WidenHalves((short*)(group + KdMinOffset), halfMask, halfScale), mins, acc);
        }

        return acc;
    }

    /// <summary>
    /// One group of Q4_K rows against <paramref name="tokenCount"/> tokens: each sub-block's codes unpacked once; per
    /// token the arithmetic of <see cref="DotGroupQ4_Kx8_256{TDot}"/> in the same order (the same bits as decoding it alone).
    /// <paramref name="acc"/> holds 2·tokenCount vectors: the sums, then the mins accumulators.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotGroupQ4_Kx8N_256<TDot>(byte* group, int superBlocks, sbyte* x, float* xs, int* xsum, int cols, int tokenCount,
        Vector256<float>* acc)
        where TDot : struct, ICodeDot
    {
        Vector256<byte> m = Vector256.Create((byte)0x0F);
        Vector256<int> halfMask = Vector256.Create(unchecked((int)0x8FFFE000));
        Vector256<float> halfScale = HalfScale;
        int blocks = cols / BlockSize;
        Vector256<float>* mins = acc + tokenCount;
        for (int t = 0; t < tokenCount; t++)
        {
            acc[t] = Vector256<float>.Zero;
        }

        for (int k = 0; k < superBlocks; k++, group += KGroupBytes)
        {
            Vector256<float> d = WidenHalves((short*)(group + KdOffset), halfMask, halfScale);
            for (int t = 0; t < tokenCount; t++)
            {
                mins[t] = Vector256<float>.Zero;
            }

            SimdMath.Prefetch(group + PrefetchBytes + KScalesOffset);
            SimdMath.Prefetch(group + PrefetchBytes + KScalesOffset + 64);
            SimdMath.Prefetch(group + PrefetchBytes + KScalesOffset + 128);
            for (int s = 0; s < 8; s++)
            {
                byte* q = group + s * GroupBlockBytes;
                SimdMath.Prefetch(q + PrefetchBytes);
                SimdMath.Prefetch(q + PrefetchBytes + 64);
                Nibbles(q, m, out var l0, out var h0, out var l1, out var h1, out var l2, out var h2, out var l3, out var h3);
                Vector256<float> dsc = d * Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(group + KScalesOffset + s * GroupRows));
                Vector256<float> mc = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(group + KMinsOffset + s * GroupRows));
                int b = 8 * k + s;
                for (int t = 0; t < tokenCount; t++)
                {
                    long o = (long)t * blocks + b;
                    Vector256<int> dot = TDot.Dot(l0, h0, l1, h1, l2, h2, l3, h3, (int*)(x + (long)t * cols + (long)b * BlockSize));
                    acc[t] = Fma.MultiplyAdd(Avx.ConvertToVector256Single(dot), dsc * Vector256.Create(xs[o]), acc[t]);
                    mins[t] = Fma.MultiplyAdd(mc, Vector256.Create(xs[o] * xsum[o]), mins[t]);
                }
            }

            Vector256<float> dmin = WidenHalves((short*)(group + KdMinOffset), halfMask, halfScale);
            for (int t = 0; t < tokenCount; t++)
            {
                acc[t] = Fma.MultiplyAddNegated(dmin, mins[t], acc[t]);
            }
        }
    }

    /// <summary>The scalar twin of <see cref="DotGroupQ4_Kx8_256{TDot}"/>, bit for bit.</summary>
    internal static void DotGroupQ4_Kx8Scalar(byte* group, int superBlocks, sbyte* x, float* xs, int* xsum, float* destination)
    {
        float* half = HalfTable.Values;
        for (int i = 0; i < GroupRows; i++)
        {
            float acc = 0;
            byte* sb = group;
            for (int k = 0; k < superBlocks; k++, sb += KGroupBytes)
            {
                float d = half[((ushort*)(sb + KdOffset))[i]], mins = 0;
                for (int s = 0; s < 8; s++)
                {
                    int b = 8 * k + s;
                    sbyte* xb = x + (long)b * BlockSize;
                    int dot = 0;
                    for (int e = 0; e < BlockSize; e++)
                    {
                        dot += CodeQ4_0x8(sb + s * GroupBlockBytes, i, e) * xb[e];
                    }

                    acc = MathF.FusedMultiplyAdd(dot, d * sb[KScalesOffset + s * GroupRows + i] * xs[b], acc);
                    mins = MathF.FusedMultiplyAdd(sb[KMinsOffset + s * GroupRows + i], xs[b] * xsum[b], mins);
                }

                acc = MathF.FusedMultiplyAdd(-half[((ushort*)(sb + KdMinOffset))[i]], mins, acc);
            }

            destination[i] = acc;
        }
    }
}

using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Kernels;

/// <summary>
/// Prefill (and batched decode) of <see cref="Tensors.DType.Q4_0x8"/>, <see cref="Tensors.DType.Q4_Kx8"/>,
/// <see cref="Tensors.DType.Q5_Kx8"/>, <see cref="Tensors.DType.Q6_Kx8"/> and <see cref="Tensors.DType.Affine4x8"/> (MLX 2–4-bit)
/// on 512-bit vectors: two tokens per vector. The 256-bit token tile
/// (<see cref="DotGroupQ4_0x8N_256{TDot}"/>) holds one token's 8 rows per vector, and .NET 10 has no 512-bit
/// <c>vpdpbusd</c> outside AVX10, which AMD's AVX-512 machines lack. Here lane 2r holds row r against token t and lane
/// 2r + 1 row r against token t + 1: each code vector of a block is widened once per block (<c>vpermd</c> duplicating
/// every row's dword, then the nibble unpack), and per token pair and block 8 <c>vpbroadcastq</c> of the pair's
/// interleaved activation dwords (<see cref="PairActivations"/>, tile-major: a tile's pairs of one block in one run) meet
/// them in 8 <c>vpmaddubsw</c> summed in int16 (exact, as in <see cref="NibbleDotAvx2"/>), one <c>vpmaddwd</c> widening and
/// one FMA for 16 results: about half the vector operations per token of the 256-bit tiles, AVX-VNNI included. Every
/// (row, token) takes the same integer dot and the same float steps (8·Σx off, × (weight scale · activation scale), one
/// FMA per block) as in the 256-bit tile, so the bits are those of each token's decode product.
/// <para>
/// Where the CPU has AVX512_VNNI, Q8_0x8, Q4_0x8, Q4_Kx8 and the MLX groups (Affine8x8 too, which has no managed pair
/// tile) take the same tiles as generated code instead (<see cref="Jit.VnniPairKernels"/>: 512-bit <c>vpdpbusd</c>, the
/// tile's accumulators in registers), with the same bits; <see cref="GeneratedPairTiles"/> says which.
/// </para>
/// </summary>
public static unsafe partial class QuantMatMul
{
    /// <summary>
    /// True where Q4_0x8, K-quant and MLX 4-bit group products of several tokens take the token-pair tiles (AVX-512 F and
    /// BW with 512-bit vectors accelerated; Q8_0x8 and MLX 5–8-bit only as generated code). <c>DOTNET_EnableAVX512=0</c>
    /// turns them off, for an A/B against the 256-bit tiles.
    /// </summary>
    internal static readonly bool PairTiles = Avx512BW.IsSupported && Vector512.IsHardwareAccelerated;

    /// <summary>
    /// The generated Q8_0x8 pair tiles (<see cref="Jit.VnniPairKernels"/>: 512-bit <c>vpdpbusd</c>) where the CPU has
    /// AVX512_VNNI and the system lets the process map executable memory, else null (Q8_0x8 then keeps the 256-bit
    /// tiles). Null too when <c>QWEN3_JIT_PAIRS=0</c> (<see cref="JitPairsVariable"/>: the A/B against the managed tiles,
    /// and CI's run of the kernel tests without them).
    /// </summary>
    internal static Jit.VnniPairKernels? Q8PairJit => Q8PairJitOnce.Value;

    /// <summary>The generated Q4_0x8 pair tiles, as <see cref="Q8PairJit"/> (else Q4_0x8 takes <see cref="DotGroupQ4_0x8Pairs_512"/>).</summary>
    internal static Jit.VnniPairKernels? Q4PairJit => Q4PairJitOnce.Value;

    /// <summary>The generated Q4_Kx8 pair tiles, as <see cref="Q8PairJit"/> (else Q4_Kx8 takes <see cref="DotGroupQ4_Kx8Pairs_512"/>).</summary>
    internal static Jit.VnniPairKernels? Q4KPairJit => Q4KPairJitOnce.Value;

    /// <summary>The generated MLX 5–8-bit pair tiles (Affine8x8), as <see cref="Q8PairJit"/> (else they take the 256-bit VNNI tiles).</summary>
    internal static Jit.VnniPairKernels? Affine8PairJit => Affine8PairJitOnce.Value;

    /// <summary>The generated MLX 2–4-bit pair tiles (Affine4x8), as <see cref="Q8PairJit"/> (else <see cref="DotGroupAffine4x8Pairs_512"/>).</summary>
    internal static Jit.VnniPairKernels? Affine4PairJit => Affine4PairJitOnce.Value;

    // generated at first use (after every static field of the class, PrefetchBytes among them, is set)
    private static readonly Lazy<Jit.VnniPairKernels?> Q8PairJitOnce = new(() => CreatePairJit(Jit.VnniPairFormat.Q8_0));
    private static readonly Lazy<Jit.VnniPairKernels?> Q4PairJitOnce = new(() => CreatePairJit(Jit.VnniPairFormat.Q4_0));
    private static readonly Lazy<Jit.VnniPairKernels?> Q4KPairJitOnce = new(() => CreatePairJit(Jit.VnniPairFormat.Q4_K));
    private static readonly Lazy<Jit.VnniPairKernels?> Affine8PairJitOnce = new(() => CreatePairJit(Jit.VnniPairFormat.Affine8));
    private static readonly Lazy<Jit.VnniPairKernels?> Affine4PairJitOnce = new(() => CreatePairJit(Jit.VnniPairFormat.Affine4));

    private static Jit.VnniPairKernels? CreatePairJit(Jit.VnniPairFormat format)
    {
        if (!Jit.VnniPairKernels.IsSupported || !(Avx512BW.IsSupported && Vector512.IsHardwareAccelerated)
            || Environment.GetEnvironmentVariable(JitPairsVariable) == "0")
        {
            return null;
        }

        try
        {
            return new Jit.VnniPairKernels(format, PrefetchBytes);
        }
        catch (InvalidOperationException)
        {
            return null;   // mmap/mprotect refused (e.g. a policy against executable anonymous memory): the managed tiles
        }
    }

    /// <summary>The environment variable that, set to 0, keeps the generated pair tiles off (the managed ones run).</summary>
    public const string JitPairsVariable = "QWEN3_JIT_PAIRS";

    /// <summary>
    /// How products of several tokens with <paramref name="format"/> (an 8-row group layout) run on this CPU, for
    /// <c>qwen3 bench</c>: "generated 32-token pair tiles" (AVX512_VNNI code), "32-token pair tiles" (512-bit, managed) or
    /// "31-token tiles" (256-bit).
    /// </summary>
    public static string ProductTiles(DType format)
    {
        return !UsesPairTiles(Best, format) ? $"{TileTokens}-token tiles"
            : GeneratedPairTiles(format) is not null ? $"generated {PairTileTokens}-token pair tiles"
            : $"{PairTileTokens}-token pair tiles";
    }

    /// <summary>
    /// Whether products of several tokens with <paramref name="format"/> take the pair tiles under <paramref name="isa"/>:
    /// the 4–6-bit formats as managed or generated code, Q8_0x8 and MLX 5–8-bit only as generated code (their managed
    /// tiles are the 256-bit ones).
    /// </summary>
    internal static bool UsesPairTiles(Isa isa, DType format) => isa == Isa.Avx512 && PairTiles
        && (format is DType.Q4_0x8 or DType.Q4_Kx8 or DType.Q5_Kx8 or DType.Q6_Kx8 or DType.Affine4x8 || GeneratedPairTiles(format) is not null);

    /// <summary>The generated pair tiles for <paramref name="format"/> on this machine, or null (the managed ones run).</summary>
    internal static Jit.VnniPairKernels? GeneratedPairTiles(DType format) => format switch
    {
        DType.Q8_0x8 => Q8PairJit, DType.Q4_0x8 => Q4PairJit, DType.Q4_Kx8 => Q4KPairJit,
        DType.Affine8x8 => Affine8PairJit, DType.Affine4x8 => Affine4PairJit, _ => null,
    };

    /// <summary>Tokens per tile of the pair path: 16 pairs, their accumulators 1 KiB.</summary>
    internal const int PairTileTokens = 32;

    /// <summary>Bytes <see cref="PairActivations"/> writes for <paramref name="tokenCount"/> tokens of <paramref name="cols"/> columns.</summary>
    internal static long PairActivationBytes(int tokenCount, int cols)
    {
        long pairs = (tokenCount + 1) / 2;
        return pairs * 2 * cols + pairs * (cols / BlockSize) * 2 * (sizeof(float) + sizeof(int));
    }

    /// <summary>
    /// Tokens 2p and 2p + 1 of the quantized activations as pair p (the last token, if alone, beside zeros), tile-major:
    /// per tile of <see cref="PairTileTokens"/> tokens, per block, per pair of the tile (so a tile's pairs of one block
    /// are adjacent). Codes: per block and pair the two tokens' 8 dwords interleaved (t, t + 1, t, t + 1, …: one 64-byte
    /// line, each qword a <c>vpbroadcastq</c> for one code vector); scales 2 floats; code sums 2 ints (none
    /// where <paramref name="sums"/> is null), each times <paramref name="sumFactor"/> (the codes' offset: Q4_0's 8, an
    /// affine group's centre), or where that is null the float scale · sum (the K-quants' mins, as their 256-bit tiles
    /// compute <c>xs[o] * xsum[o]</c>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // once per product of several tokens: no tier-0 phase
    internal static void PairActivations(sbyte* codes, float* scales, int* sums, int tokenCount, int cols, int? sumFactor, byte* destination,
        out sbyte* pairCodes, out float* pairScales, out int* pairSums)
    {
        int blocks = cols / BlockSize, pairs = (tokenCount + 1) / 2;
        pairCodes = (sbyte*)destination;
        pairScales = (float*)(destination + (long)pairs * 2 * cols);
        pairSums = (int*)(pairScales + (long)pairs * blocks * 2);
        for (int p = 0; p < pairs; p++)
        {
            int t = 2 * p;
            bool second = t + 1 < tokenCount;
            (long tile, int count, int at) = PairSlot(p, pairs);
            sbyte* a = codes + (long)t * cols, b = a + cols, o = pairCodes + tile * blocks * 2 * BlockSize;
            float* s = pairScales + tile * blocks * 2;
            int* u = pairSums + tile * blocks * 2;
            for (int k = 0; k < blocks; k++)
            {
                long slot = (long)k * count + at;   // block k of the tile, then its pairs
                Vector256<int> va = Vector256.Load((int*)(a + k * BlockSize));
                Vector256<int> vb = second ? Vector256.Load((int*)(b + k * BlockSize)) : Vector256<int>.Zero;
                Vector256<int> low = Avx2.UnpackLow(va, vb), high = Avx2.UnpackHigh(va, vb);   // a0 b0 a1 b1 | a4 b4 a5 b5, a2 b2 a3 b3 | a6 b6 a7 b7
                Avx2.Permute2x128(low, high, 0x20).Store((int*)(o + slot * 2 * BlockSize));
                Avx2.Permute2x128(low, high, 0x31).Store((int*)(o + slot * 2 * BlockSize + 32));
                s[2 * slot] = scales[(long)t * blocks + k];
                s[2 * slot + 1] = second ? scales[(long)(t + 1) * blocks + k] : 0f;
                if (sums != null)
                {
                    u[2 * slot] = Sum(t, k);
                    u[2 * slot + 1] = second ? Sum(t + 1, k) : 0;
                }
            }
        }

        int Sum(int t, int k) => sumFactor is int factor ? sums[(long)t * blocks + k] * factor
            : BitConverter.SingleToInt32Bits(scales[(long)t * blocks + k] * sums[(long)t * blocks + k]);
    }

    /// <summary>
    /// Where pair <paramref name="p"/> of <paramref name="pairs"/> lies in the tile-major layout: its tile's first pair
    /// (tiles of <see cref="PairTileTokens"/> / 2 pairs, so a tile's data starts where that pair's would in pair-major
    /// order), the tile's pair count and the pair's place in it.
    /// </summary>
    private static (long TileFirstPair, int Count, int At) PairSlot(int p, int pairs)
    {
        const int tilePairs = PairTileTokens / 2;
        int first = p / tilePairs * tilePairs;
        return (first, Math.Min(tilePairs, pairs - first), p - first);
    }

    /// <summary>
    /// A per-token int array [tokenCount, perToken] as pairs, tile-major as <see cref="PairActivations"/> (per tile, per
    /// value, per pair: token 2p's value, then 2p + 1's, or 0 past the last token): Q6_K's group offsets
    /// (<see cref="PrepareQ6Offsets"/>) and the affine groups' activation sums, one <c>vpbroadcastq</c> per value and pair.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void PairValues(int* values, int tokenCount, int perToken, int* destination)
    {
        int pairs = (tokenCount + 1) / 2;
        for (int p = 0; p < pairs; p++)
        {
            (long tile, int count, int at) = PairSlot(p, pairs);
            int* d = destination + tile * perToken * 2;
            int* first = values + (long)2 * p * perToken, second = first + perToken;
            bool hasSecond = 2 * p + 1 < tokenCount;
            for (int i = 0; i < perToken; i++)
            {
                long slot = (long)i * count + at;
                d[2 * slot] = first[i];
                d[2 * slot + 1] = hasSecond ? second[i] : 0;
            }
        }
    }

    /// <summary>Lane i of a code or scale vector of 8 rows, widened to 16 lanes: row i / 2 in lanes 2r and 2r + 1.</summary>
    private static Vector512<int> PairDuplicate => Vector512.Create(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);

    /// <summary>The 16 lanes of a pair's accumulator as the first token's 8 rows, then the second's.</summary>
    private static Vector512<int> PairSplit => Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);

    /// <summary>A block's code vector v (lane r: 4 code bytes of row r) with each row's dword in two adjacent lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<byte> PairCodes(byte* codes) => Duplicated(Vector256.Load(codes));

    /// <summary><c>vpmaddubsw</c> of a (duplicated) vector of unsigned codes against the pair's activation qword at <paramref name="x"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<short> PairDot(Vector512<byte> codes, long* x) => Avx512BW.MultiplyAddAdjacent(codes, Vector512.Create(*x).AsSByte());

    /// <summary>A block's 4 code vectors at <paramref name="q"/>, duplicated, as low and high nibbles (low against dword 2v, high against 2v + 1).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PairNibbleCodes(byte* q, Vector512<byte> m, out Vector512<byte> l0, out Vector512<byte> h0, out Vector512<byte> l1,
        out Vector512<byte> h1, out Vector512<byte> l2, out Vector512<byte> h2, out Vector512<byte> l3, out Vector512<byte> h3)
    {
        Vector512<byte> v0 = PairCodes(q), v1 = PairCodes(q + 32), v2 = PairCodes(q + 64), v3 = PairCodes(q + 96);
        l0 = v0 & m;
        h0 = Avx512BW.ShiftRightLogical(v0.AsUInt16(), 4).AsByte() & m;
        l1 = v1 & m;
        h1 = Avx512BW.ShiftRightLogical(v1.AsUInt16(), 4).AsByte() & m;
        l2 = v2 & m;
        h2 = Avx512BW.ShiftRightLogical(v2.AsUInt16(), 4).AsByte() & m;
        l3 = v3 & m;
        h3 = Avx512BW.ShiftRightLogical(v3.AsUInt16(), 4).AsByte() & m;
    }

    /// <summary>A block's nibble dot with the pair's 8 activation qwords at <paramref name="xp"/>, as int16 pair sums (exact: |Σ| ≤ 8·2·15·128 &lt; 2^15).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<short> PairNibbleSum(Vector512<byte> l0, Vector512<byte> h0, Vector512<byte> l1, Vector512<byte> h1,
        Vector512<byte> l2, Vector512<byte> h2, Vector512<byte> l3, Vector512<byte> h3, long* xp)
        => (PairDot(l0, xp) + PairDot(h0, xp + 1)) + (PairDot(l1, xp + 2) + PairDot(h1, xp + 3))
         + ((PairDot(l2, xp + 4) + PairDot(h2, xp + 5)) + (PairDot(l3, xp + 6) + PairDot(h3, xp + 7)));

    /// <summary>
    /// One Q4_0x8 group against <paramref name="pairCount"/> token pairs (<see cref="PairActivations"/> with a sum shift
    /// of 3): into <paramref name="acc"/>[p] lane 2r row r against token 2p, lane 2r + 1 against token 2p + 1 (split them
    /// with <see cref="SplitPair"/>). Each lane has the bits <see cref="DotGroupQ4_0x8N_256{TDot}"/> gives it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotGroupQ4_0x8Pairs_512(byte* group, int blocks, sbyte* x, float* xs, int* xsum, int pairCount,
        Vector512<float>* acc)
    {
        short* d = (short*)group;
        group += GroupScaleBytes;
        Vector512<byte> m = Vector512.Create((byte)0x0F);
        Vector512<short> ones = Vector512.Create((short)1);
        Vector256<int> halfMask = Vector256.Create(unchecked((int)0x8FFFE000));
        Vector256<float> halfScale = HalfScale;
        for (int p = 0; p < pairCount; p++)
        {
            acc[p] = Vector512<float>.Zero;
        }

        for (int k = 0; k < blocks; k++, group += Q4BlockBytes, d += Q4BlockBytes / 2)
        {
            SimdMath.Prefetch(group + PrefetchBytes);
            SimdMath.Prefetch(group + PrefetchBytes + 64);
            PairNibbleCodes(group, m, out var l0, out var h0, out var l1, out var h1, out var l2, out var h2, out var l3, out var h3);
            Vector512<float> dw = Duplicated(WidenHalves(d, halfMask, halfScale));
            for (int p = 0; p < pairCount; p++)
            {
                long o = (long)k * pairCount + p;   // block k's pair p
                long* xp = (long*)(x + o * 2 * BlockSize);
                Vector512<short> pairs = PairNibbleSum(l0, h0, l1, h1, l2, h2, l3, h3, xp);
                Vector512<int> dot = Avx512BW.MultiplyAddAdjacent(pairs, ones) - Vector512.Create(*(long*)(xsum + 2 * o)).AsInt32();
                acc[p] = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(dot), dw * Vector512.Create(*(double*)(xs + 2 * o)).AsSingle(), acc[p]);
            }
        }
    }

    /// <summary>
    /// One Q4_Kx8 group against <paramref name="pairCount"/> token pairs (<see cref="PairActivations"/> with scaled sums),
    /// as <see cref="DotGroupQ4_0x8Pairs_512"/> per sub-block; <paramref name="acc"/> holds 2·pairCount vectors (the sums,
    /// then the mins). Each lane has the bits <see cref="DotGroupQ4_Kx8N_256{TDot}"/> gives it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotGroupQ4_Kx8Pairs_512(byte* group, int superBlocks, sbyte* x, float* xs, int* xsum, int pairCount,
        Vector512<float>* acc)
    {
        Vector512<byte> m = Vector512.Create((byte)0x0F);
        Vector512<short> ones = Vector512.Create((short)1);
        Vector256<int> halfMask = Vector256.Create(unchecked((int)0x8FFFE000));
        Vector256<float> halfScale = HalfScale;
        Vector512<float>* mins = acc + pairCount;
        for (int p = 0; p < pairCount; p++)
        {
            acc[p] = Vector512<float>.Zero;
        }

        for (int k = 0; k < superBlocks; k++, group += KGroupBytes)
        {
            Vector512<float> d = Duplicated(WidenHalves((short*)(group + KdOffset), halfMask, halfScale));
            for (int p = 0; p < pairCount; p++)
            {
                mins[p] = Vector512<float>.Zero;
            }

            SimdMath.Prefetch(group + PrefetchBytes + KScalesOffset);
            SimdMath.Prefetch(group + PrefetchBytes + KScalesOffset + 64);
            SimdMath.Prefetch(group + PrefetchBytes + KScalesOffset + 128);
            for (int s = 0; s < 8; s++)
            {
                byte* q = group + s * GroupBlockBytes;
                SimdMath.Prefetch(q + PrefetchBytes);
                SimdMath.Prefetch(q + PrefetchBytes + 64);
                PairNibbleCodes(q, m, out var l0, out var h0, out var l1, out var h1, out var l2, out var h2, out var l3, out var h3);
                Vector512<float> dsc = d * Duplicated(Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(group + KScalesOffset + s * GroupRows)));
                Vector512<float> mc = Duplicated(Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(group + KMinsOffset + s * GroupRows)));
                int b = 8 * k + s;
                for (int p = 0; p < pairCount; p++)
                {
                    long o = (long)b * pairCount + p;   // sub-block b's pair p
                    long* xp = (long*)(x + o * 2 * BlockSize);
                    Vector512<short> pairs = PairNibbleSum(l0, h0, l1, h1, l2, h2, l3, h3, xp);
                    Vector512<int> dot = Avx512BW.MultiplyAddAdjacent(pairs, ones);
                    acc[p] = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(dot), dsc * Vector512.Create(*(double*)(xs + 2 * o)).AsSingle(), acc[p]);
                    mins[p] = Avx512F.FusedMultiplyAdd(mc, Vector512.Create(*(double*)(xsum + 2 * o)).AsSingle(), mins[p]);
                }
            }

            Vector512<float> dmin = Duplicated(WidenHalves((short*)(group + KdMinOffset), halfMask, halfScale));
            for (int p = 0; p < pairCount; p++)
            {
                acc[p] = Avx512F.FusedMultiplyAddNegated(dmin, mins[p], acc[p]);
            }
        }
    }

    /// <summary>
    /// One Q5_Kx8 group against <paramref name="pairCount"/> token pairs (<see cref="PairActivations"/> with scaled sums):
    /// <see cref="DotGroupQ4_Kx8Pairs_512"/> with 5-bit codes (<see cref="Q5Codes"/> on duplicated vectors, four
    /// <c>vpmaddubsw</c> per int16 sum as <see cref="Q5DotAvx2"/>). Each lane has the bits <see cref="DotGroupQ5_Kx8N_256{TDot}"/> gives it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotGroupQ5_Kx8Pairs_512(byte* group, int superBlocks, sbyte* x, float* xs, int* xsum, int pairCount,
        Vector512<float>* acc)
    {
        Vector512<short> ones = Vector512.Create((short)1);
        Vector256<int> halfMask = Vector256.Create(unchecked((int)0x8FFFE000));
        Vector256<float> halfScale = HalfScale;
        Vector512<float>* mins = acc + pairCount;
        for (int p = 0; p < pairCount; p++)
        {
            acc[p] = Vector512<float>.Zero;
        }

        for (int k = 0; k < superBlocks; k++, group += K5GroupBytes)
        {
            Vector512<float> d = Duplicated(WidenHalves((short*)(group + K5dOffset), halfMask, halfScale));
            for (int p = 0; p < pairCount; p++)
            {
                mins[p] = Vector512<float>.Zero;
            }

            for (int s = 0; s < 8; s++)
            {
                byte* q = group + s * GroupBlockBytes;
                SimdMath.Prefetch(q + PrefetchBytes);
                SimdMath.Prefetch(q + PrefetchBytes + 64);
                Q5CodePairs(q, group + K5HighOffset + s * 32, out var c0, out var c1, out var c2, out var c3, out var c4, out var c5, out var c6, out var c7);
                Vector512<float> dsc = d * Duplicated(Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(group + K5ScalesOffset + s * GroupRows)));
                Vector512<float> mc = Duplicated(Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(group + K5MinsOffset + s * GroupRows)));
                int b = 8 * k + s;
                for (int p = 0; p < pairCount; p++)
                {
                    long o = (long)b * pairCount + p;   // sub-block b's pair p
                    long* xp = (long*)(x + o * 2 * BlockSize);
                    Vector512<short> first = (PairDot(c0, xp) + PairDot(c1, xp + 1)) + (PairDot(c2, xp + 2) + PairDot(c3, xp + 3));
                    Vector512<short> second = (PairDot(c4, xp + 4) + PairDot(c5, xp + 5)) + (PairDot(c6, xp + 6) + PairDot(c7, xp + 7));
                    Vector512<int> dot = Avx512BW.MultiplyAddAdjacent(first, ones) + Avx512BW.MultiplyAddAdjacent(second, ones);
                    acc[p] = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(dot), dsc * Vector512.Create(*(double*)(xs + 2 * o)).AsSingle(), acc[p]);
                    mins[p] = Avx512F.FusedMultiplyAdd(mc, Vector512.Create(*(double*)(xsum + 2 * o)).AsSingle(), mins[p]);
                }
            }

            Vector512<float> dmin = Duplicated(WidenHalves((short*)(group + K5dMinOffset), halfMask, halfScale));
            for (int p = 0; p < pairCount; p++)
            {
                acc[p] = Avx512F.FusedMultiplyAddNegated(dmin, mins[p], acc[p]);
            }
        }
    }

    /// <summary><see cref="Q5Codes"/> on duplicated vectors: a sub-block's 8 five-bit code vectors, each row's dword in two lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q5CodePairs(byte* q, byte* hb, out Vector512<byte> c0, out Vector512<byte> c1, out Vector512<byte> c2, out Vector512<byte> c3,
        out Vector512<byte> c4, out Vector512<byte> c5, out Vector512<byte> c6, out Vector512<byte> c7)
    {
        Vector512<byte> m = Vector512.Create((byte)0x0F), b4 = Vector512.Create((byte)0x10);
        Vector512<byte> b5 = Vector512.Create((byte)0x20), b6 = Vector512.Create((byte)0x40), b7 = Vector512.Create((byte)0x80);
        Vector512<byte> h1 = PairCodes(hb), h0 = Avx512BW.ShiftLeftLogical(h1.AsUInt16(), 4).AsByte();
        Vector512<byte> v0 = PairCodes(q), v1 = PairCodes(q + 32), v2 = PairCodes(q + 64), v3 = PairCodes(q + 96);
        c0 = (v0 & m) | Avx512BW.Min(h0 & b4, b4);
        c1 = (Avx512BW.ShiftRightLogical(v0.AsUInt16(), 4).AsByte() & m) | Avx512BW.Min(h0 & b5, b4);
        c2 = (v1 & m) | Avx512BW.Min(h0 & b6, b4);
        c3 = (Avx512BW.ShiftRightLogical(v1.AsUInt16(), 4).AsByte() & m) | Avx512BW.Min(h0 & b7, b4);
        c4 = (v2 & m) | Avx512BW.Min(h1 & b4, b4);
        c5 = (Avx512BW.ShiftRightLogical(v2.AsUInt16(), 4).AsByte() & m) | Avx512BW.Min(h1 & b5, b4);
        c6 = (v3 & m) | Avx512BW.Min(h1 & b6, b4);
        c7 = (Avx512BW.ShiftRightLogical(v3.AsUInt16(), 4).AsByte() & m) | Avx512BW.Min(h1 & b7, b4);
    }

    /// <summary>
    /// One group of MLX 4-bit affine rows (<see cref="Tensors.DType.Affine4x8"/>) against <paramref name="pairCount"/> token
    /// pairs (<see cref="PairActivations"/> with the centre as the sum factor; <paramref name="xg"/> the pairs' affine-group
    /// activation sums, <see cref="PairValues"/>): per block the nibble dot of <see cref="DotGroupQ4_0x8Pairs_512"/> into the
    /// affine group's part, then per affine group the scale and bias steps of the 256-bit tile; <paramref name="acc"/> holds
    /// 2·pairCount vectors (the sums, then the parts). Each lane has the bits <c>DotGroupAffineX8N_256</c> gives it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotGroupAffine4x8Pairs_512(int centre, byte* group, int blocks, int blocksPerGroup, sbyte* x, float* xs, int* xsum, float* xg,
        int pairCount, Vector512<float>* acc)
    {
        int affineGroups = blocks / blocksPerGroup;
        Vector256<float> zv = Vector256.Create((float)centre);
        Vector512<byte> m = Vector512.Create((byte)0x0F);
        Vector512<short> ones = Vector512.Create((short)1);
        Vector512<float>* part = acc + pairCount;
        for (int p = 0; p < pairCount; p++)
        {
            acc[p] = Vector512<float>.Zero;
        }

        for (int a = 0, k = 0; a < affineGroups; a++)
        {
            ushort* scales = (ushort*)group, biases = scales + GroupRows;     // then the codes
            group += AffineTableBytes;
            for (int p = 0; p < pairCount; p++)
            {
                part[p] = Vector512<float>.Zero;
            }

            for (int end = k + blocksPerGroup; k < end; k++, group += GroupBlockBytes)
            {
                SimdMath.Prefetch(group + PrefetchBytes);
                SimdMath.Prefetch(group + PrefetchBytes + 64);
                PairNibbleCodes(group, m, out var l0, out var h0, out var l1, out var h1, out var l2, out var h2, out var l3, out var h3);
                for (int p = 0; p < pairCount; p++)
                {
                    long o = (long)k * pairCount + p;   // block k's pair p
                    long* xp = (long*)(x + o * 2 * BlockSize);
                    Vector512<short> pairs = PairNibbleSum(l0, h0, l1, h1, l2, h2, l3, h3, xp);
                    Vector512<int> dot = Avx512BW.MultiplyAddAdjacent(pairs, ones) - Vector512.Create(*(long*)(xsum + 2 * o)).AsInt32();
                    part[p] = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(dot), Vector512.Create(*(double*)(xs + 2 * o)).AsSingle(), part[p]);
                }
            }

            Vector256<float> sg = WidenBf16(scales);
            Vector512<float> sg2 = Duplicated(sg), sh2 = Duplicated(Fma.MultiplyAdd(sg, zv, WidenBf16(biases)));
            for (int p = 0; p < pairCount; p++)
            {
                Vector512<float> r = Avx512F.FusedMultiplyAdd(sg2, part[p], acc[p]);
                acc[p] = Avx512F.FusedMultiplyAdd(sh2, Vector512.Create(*(double*)(xg + 2 * ((long)a * pairCount + p))).AsSingle(), r);
            }
        }
    }

    /// <summary>A duplicated vector (<see cref="PairCodes"/>) of a 256-bit one already in a register.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<T> Duplicated<T>(Vector256<T> v) => Avx512F.PermuteVar16x32(v.AsInt32().ToVector512Unsafe(), PairDuplicate).As<int, T>();

    /// <summary><see cref="UnpackQ6"/> on duplicated vectors.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void UnpackQ6Pairs(Vector512<byte> a0, Vector512<byte> a1, Vector512<byte> b,
        out Vector512<byte> u0, out Vector512<byte> u1, out Vector512<byte> u2, out Vector512<byte> u3)
    {
        Vector512<byte> code = Vector512.Create((byte)0x3F), m = Vector512.Create((byte)0x0F), top = Vector512.Create((byte)0x30);
        u0 = a0 & code;
        u1 = (b & m) | (Avx512BW.ShiftRightLogical(a0.AsUInt16(), 2).AsByte() & top);
        u2 = a1 & code;
        u3 = (Avx512BW.ShiftRightLogical(b.AsUInt16(), 4).AsByte() & m) | (Avx512BW.ShiftRightLogical(a1.AsUInt16(), 2).AsByte() & top);
    }

    /// <summary>
    /// One Q6_Kx8 group against <paramref name="pairCount"/> token pairs (<see cref="PairActivations"/> without sums, and
    /// <paramref name="offsets"/> the pairs' group offsets, <see cref="PairValues"/>): the arithmetic of
    /// <see cref="DotGroupQ6_Kx8N_256"/> per lane (int16 pair sums less the offsets, one <c>vpmaddwd</c> per 16-element
    /// group against its scales, one FMA), so each lane has its bits.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotGroupQ6_Kx8Pairs_512(byte* group, int superBlocks, sbyte* x, float* xs, int* offsets, int pairCount,
        Vector512<float>* acc)
    {
        Vector256<int> halfMask = Vector256.Create(unchecked((int)0x8FFFE000));
        Vector256<float> halfScale = HalfScale;
        for (int p = 0; p < pairCount; p++)
        {
            acc[p] = Vector512<float>.Zero;
        }

        for (int k = 0; k < superBlocks; k++, group += Q6GroupBytes)
        {
            Vector512<float> d = Duplicated(WidenHalves((short*)(group + Q6dOffset), halfMask, halfScale));
            PrefetchQ6Tail(group);
            for (int s = 0; s < 8; s++)
            {
                PrefetchQ6SubBlock(group, s);
                byte* q = group + s * Q6SubBlockBytes;
                UnpackQ6Pairs(PairCodes(q), PairCodes(q + 32), PairCodes(q + 128), out var u0, out var u1, out var u2, out var u3);
                UnpackQ6Pairs(PairCodes(q + 64), PairCodes(q + 96), PairCodes(q + 160), out var u4, out var u5, out var u6, out var u7);
                Q6Scales(group + Q6ScalesOffset + 16 * s, out var s0, out var s1);
                Vector512<short> scales0 = Duplicated(s0), scales1 = Duplicated(s1);
                int b = 8 * k + s;
                for (int p = 0; p < pairCount; p++)
                {
                    long* xp = (long*)(x + ((long)b * pairCount + p) * 2 * BlockSize);
                    int* op = offsets + ((long)2 * b * pairCount + p) * 2;   // group 2b's pair, then 2b + 1's 2·pairCount ints on
                    // int16 adds wrap: the unsigned sums may pass 2^15, the sums less the offsets do not
                    Vector512<short> p0 = (PairDot(u0, xp) + PairDot(u1, xp + 1)) + (PairDot(u2, xp + 2) + PairDot(u3, xp + 3))
                        - Vector512.Create(*(long*)op).AsInt16();
                    Vector512<short> p1 = (PairDot(u4, xp + 4) + PairDot(u5, xp + 5)) + (PairDot(u6, xp + 6) + PairDot(u7, xp + 7))
                        - Vector512.Create(*(long*)(op + 2 * pairCount)).AsInt16();
                    Vector512<int> dot = Avx512BW.MultiplyAddAdjacent(p0, scales0) + Avx512BW.MultiplyAddAdjacent(p1, scales1);
                    acc[p] = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(dot), d * Vector512.Create(*(double*)(xs + 2 * ((long)b * pairCount + p))).AsSingle(), acc[p]);
                }
            }
        }
    }

    /// <summary>A pair accumulator as the first token's 8 row sums and the second's.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static (Vector256<float> First, Vector256<float> Second) SplitPair(Vector512<float> acc)
    {
        Vector512<float> split = Avx512F.PermuteVar16x32(acc, PairSplit);
        return (split.GetLower(), split.GetUpper());
    }
}

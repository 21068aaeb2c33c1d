using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Kernels;

/// <summary>
/// The integer-activation path for Q8_0 and Q4_0 (llama.cpp's <c>vec_dot_q8_0_q8_0</c> / <c>vec_dot_q4_0_q8_0</c>
/// scheme, written from the idea): each token's activation row is quantized once per product to 8-bit blocks of 32
/// (float32 scale d = amax/127, codes round-to-nearest-even of x/d, and the block's code sum), then every weight block
/// is dotted with it in integers: <c>vpmaddubsw</c> (unsigned × signed bytes → pairs of int16; Q8_0 weights are made
/// unsigned by the sign trick, |w| against sign(w)·x, Q4_0's nibbles are unsigned already) and <c>vpmaddwd</c> with ones
/// (→ int32), one int→float conversion and one FMA with the product of the two scales per block. No pair sum saturates:
/// 2·128·127 &lt; 2^15 (Q8_0) and 2·15·127 (Q4_0). Q4_0's offset of 8 is taken off in integers (8·Σcodes per block).
/// A 32-byte block costs ~6 vector instructions instead of the float path's 4 widenings, 4 conversions and 4 FMAs, so
/// decode moves from compute bound toward the bandwidth bound. The price is the activation's rounding (relative error
/// ≤ 1/254 of the block's largest element); the KL divergence against the BF16 model is in the README.
/// 256-bit only: on AVX-512 machines (Zen 4 splits 512-bit operations in two) the AVX2 kernels run; the scalar twin
/// serves machines without AVX2.
/// </summary>
public static unsafe partial class QuantMatMul
{
    /// <summary>
    /// Every fp16 bit pattern's float32 value (256 KiB, llama.cpp's <c>ggml_table_f32_f16</c> idea): the block scale in
    /// two instructions (movzx, load) instead of <see cref="HalfToSingle"/>'s ten, which were half the int8 block's work.
    /// A model's scales span a few hundred patterns, so the lines touched stay in L1/L2.
    /// </summary>
    internal static class HalfTable
    {
        internal static readonly float* Values = Create();

        private static float* Create()
        {
            var table = (float*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc(65536 * sizeof(float), 64);   // lives for the process
            for (int h = 0; h < 65536; h++)
            {
                table[h] = HalfToSingle((ushort)h);
            }

            return table;
        }
    }

    /// <summary>True for the block formats with an integer-activation kernel.</summary>
    public static bool HasInt8Kernel(DType format) => format is DType.Q8_0 or DType.Q8_0x8 or DType.Q4_0 or DType.Q4_0x8 or DType.Q4_Kx8 or DType.Q5_Kx8 or DType.Q6_Kx8 or DType.Q4_K or DType.Q5_K or DType.Q6_K
        or DType.Affine8x8 or DType.Affine4x8;

    /// <summary>Bytes of quantized activations for <paramref name="tokenCount"/> rows of <paramref name="cols"/> elements.</summary>
    internal static long Q8ActivationBytes(int tokenCount, int cols) => (long)tokenCount * (cols + cols / BlockSize * 2 * sizeof(float));

    /// <summary>
    /// Quantizes <paramref name="x"/> [tokenCount, cols] into <paramref name="scratch"/>: codes [tokenCount, cols] (int8),
    /// then scales [tokenCount, cols/32] (float32), then code sums [tokenCount, cols/32] (int32).
    /// </summary>
    internal static void QuantizeActivations(Isa isa, float* x, int tokenCount, int cols, byte* scratch,
        out sbyte* codes, out float* scales, out int* sums)
    {
        int blocks = cols / BlockSize;
        codes = (sbyte*)scratch;
        scales = (float*)(scratch + (long)tokenCount * cols);
        sums = (int*)(scales + (long)tokenCount * blocks);
        for (int t = 0; t < tokenCount; t++)
        {
            float* xt = x + (long)t * cols;
            sbyte* ct = codes + (long)t * cols;
            float* st = scales + (long)t * blocks;
            int* ut = sums + (long)t * blocks;
            if (isa != Isa.Scalar)
            {
                QuantizeQ8Avx2(xt, blocks, ct, st, ut);
            }
            else
            {
                QuantizeQ8Scalar(xt, blocks, ct, st, ut);
            }
        }
    }

    /// <summary>The scalar twin of <see cref="QuantizeQ8Avx2"/>, bit for bit: d = amax/127, q = round-to-even(x·(1/d)).</summary>
    internal static void QuantizeQ8Scalar(float* x, int blocks, sbyte* codes, float* scales, int* sums)
    {
        for (int b = 0; b < blocks; b++, x += BlockSize, codes += BlockSize)
        {
            float amax = 0;
            for (int j = 0; j < BlockSize; j++)
            {
                amax = MathF.Max(amax, MathF.Abs(x[j]));
            }

            float d = amax / 127f;
            float id = d != 0 ? 1f / d : 0f;
            int sum = 0;
            for (int j = 0; j < BlockSize; j++)
            {
                int q = (int)MathF.Round(x[j] * id);   // ties to even, as vroundps with the default rounding mode
                codes[j] = (sbyte)q;
                sum += q;
            }

            scales[b] = d;
            sums[b] = sum;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void QuantizeQ8Avx2(float* x, int blocks, sbyte* codes, float* scales, int* sums)
    {
        Vector256<float> signBit = Vector256.Create(-0.0f);
        Vector256<int> order = Vector256.Create(0, 4, 1, 5, 2, 6, 3, 7);
        for (int b = 0; b < blocks; b++, x += BlockSize, codes += BlockSize)
        {
            Vector256<float> v0 = Vector256.Load(x), v1 = Vector256.Load(x + 8), v2 = Vector256.Load(x + 16), v3 = Vector256.Load(x + 24);
            Vector256<float> m = Avx.Max(Avx.Max(Avx.AndNot(signBit, v0), Avx.AndNot(signBit, v1)),
                Avx.Max(Avx.AndNot(signBit, v2), Avx.AndNot(signBit, v3)));
            Vector128<float> h = Sse.Max(m.GetLower(), m.GetUpper());
            h = Sse.Max(h, Sse.MoveHighToLow(h, h));
            h = Sse.MaxScalar(h, Sse.Shuffle(h, h, 1));
            float amax = h.ToScalar();
            float d = amax / 127f;
            float id = d != 0 ? 1f / d : 0f;
            Vector256<float> vid = Vector256.Create(id);
            Vector256<int> i0 = Avx.ConvertToVector256Int32(Avx.RoundToNearestInteger(v0 * vid));
            Vector256<int> i1 = Avx.ConvertToVector256Int32(Avx.RoundToNearestInteger(v1 * vid));
            Vector256<int> i2 = Avx.ConvertToVector256Int32(Avx.RoundToNearestInteger(v2 * vid));
            Vector256<int> i3 = Avx.ConvertToVector256Int32(Avx.RoundToNearestInteger(v3 * vid));
            sums[b] = Vector256.Sum((i0 + i1) + (i2 + i3));
            // int32 → int16 → int8 packs work per 128-bit lane; the permutation puts the eight 4-byte groups back in order
            Vector256<sbyte> packed = Avx2.PackSignedSaturate(Avx2.PackSignedSaturate(i0, i1), Avx2.PackSignedSaturate(i2, i3));
            Avx2.PermuteVar8x32(packed.AsInt32(), order).AsSByte().Store(codes);
            scales[b] = d;
        }
    }

    /// <summary>One weight block format against 8-bit activations: the unsigned operand of vpmaddubsw and the sign to give the activations.</summary>
    internal interface IInt8Format
    {
        static abstract int BlockBytes { get; }

        /// <summary>Q4_0: the codes stand for code − 8, taken off as 8·Σ(activation codes).</summary>
        static abstract bool Offset8 { get; }

        /// <remarks><paramref name="shift"/> and <paramref name="mask"/> are <see cref="NibbleShift"/> and <see cref="NibbleMask"/>,
        /// passed in from a local outside the loop so they stay in registers (inlined as constants they became two
        /// 256-bit loads per block, and the block loop is bound by loads).</remarks>
        static abstract void Load(byte* block, Vector256<uint> shift, Vector256<uint> mask, out Vector256<byte> unsignedWeights, out Vector256<sbyte> sign);

        static abstract Vector256<sbyte> Signed(Vector256<sbyte> x, Vector256<sbyte> sign);
    }

    private static Vector256<uint> NibbleShift => Vector256.Create(0u, 0, 0, 0, 4, 4, 4, 4);

    private static Vector256<uint> NibbleMask => Vector256.Create(0x0F0F0F0Fu);

    internal struct Q8I : IInt8Format
    {
        public static int BlockBytes => 34;

        public static bool Offset8 => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Load(byte* block, Vector256<uint> shift, Vector256<uint> mask, out Vector256<byte> unsignedWeights, out Vector256<sbyte> sign)
        {
            sign = Vector256.Load((sbyte*)block + 2);
            unsignedWeights = Avx2.Abs(sign);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<sbyte> Signed(Vector256<sbyte> x, Vector256<sbyte> sign) => Avx2.Sign(x, sign);
    }

    internal struct Q4I : IInt8Format
    {
        public static int BlockBytes => 18;

        public static bool Offset8 => true;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Load(byte* block, Vector256<uint> shift, Vector256<uint> mask, out Vector256<byte> unsignedWeights, out Vector256<sbyte> sign)
        {
            // elements 0..15 are the low nibbles, 16..31 the high ones: the 16 bytes in both lanes (one load), the upper
            // lane shifted right by 4 (vpsrlvd), both masked
            Vector256<uint> raw = Avx2.BroadcastVector128ToVector256((uint*)(block + 2));
            unsignedWeights = (Avx2.ShiftRightLogicalVariable(raw, shift) & mask).AsByte();
            sign = default;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<sbyte> Signed(Vector256<sbyte> x, Vector256<sbyte> sign) => x;
    }

    /// <summary>Σ over one block of weight·activation codes, as eight int32 partial sums converted to float32 (exact: |Σ| ≤ 32·128·127 &lt; 2^24).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> BlockDot<TF>(Vector256<byte> u, Vector256<sbyte> sign, sbyte* x, int sum) where TF : IInt8Format
    {
        Vector256<short> pairs = Avx2.MultiplyAddAdjacent(u, TF.Signed(Vector256.Load(x), sign));
        Vector256<int> quads = Avx2.MultiplyAddAdjacent(pairs, Vector256.Create((short)1));
        if (TF.Offset8)
        {
            quads -= Vector256.CreateScalar(sum << 3);
        }

        return Avx.ConvertToVector256Single(quads);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float DotI1_256<TF>(byte* row, sbyte* x, float* xs, int* xsum, int blocks) where TF : IInt8Format
    {
        float* half = HalfTable.Values;
        Vector256<uint> shift = NibbleShift, mask = NibbleMask;
        Vector256<float> a = Vector256<float>.Zero, b = Vector256<float>.Zero;
        int k = 0;
        for (; k + 2 <= blocks; k += 2, row += 2 * TF.BlockBytes, x += 2 * BlockSize)
        {
            TF.Load(row, shift, mask, out Vector256<byte> u0, out Vector256<sbyte> s0);
            TF.Load(row + TF.BlockBytes, shift, mask, out Vector256<byte> u1, out Vector256<sbyte> s1);
            a = Fma.MultiplyAdd(BlockDot<TF>(u0, s0, x, xsum[k]), Vector256.Create(half[*(ushort*)row] * xs[k]), a);
            b = Fma.MultiplyAdd(BlockDot<TF>(u1, s1, x + BlockSize, xsum[k + 1]), Vector256.Create(half[*(ushort*)(row + TF.BlockBytes)] * xs[k + 1]), b);
        }

        if (k < blocks)
        {
            TF.Load(row, shift, mask, out Vector256<byte> u0, out Vector256<sbyte> s0);
            a = Fma.MultiplyAdd(BlockDot<TF>(u0, s0, x, xsum[k]), Vector256.Create(half[*(ushort*)row] * xs[k]), a);
        }

        return Vector256.Sum(a + b);
    }

    /// <summary>Four tokens (activation rows <paramref name="cols"/> codes and <paramref name="blocks"/> scales apart) against one weight row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotI4_256<TF>(byte* row, sbyte* x, float* xs, int* xsum, int cols, int blocks, float* y, int ys, bool accumulate)
        where TF : IInt8Format
    {
        float* half = HalfTable.Values;
        Vector256<uint> shift = NibbleShift, mask = NibbleMask;
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        sbyte* x1 = x + cols, x2 = x + 2L * cols, x3 = x + 3L * cols;
        for (int k = 0; k < blocks; k++, row += TF.BlockBytes)
        {
            TF.Load(row, shift, mask, out Vector256<byte> u, out Vector256<sbyte> s);
            float d = half[*(ushort*)row];
            long o = (long)k * BlockSize;
            a0 = Fma.MultiplyAdd(BlockDot<TF>(u, s, x + o, xsum[k]), Vector256.Create(d * xs[k]), a0);
            a1 = Fma.MultiplyAdd(BlockDot<TF>(u, s, x1 + o, xsum[blocks + k]), Vector256.Create(d * xs[blocks + k]), a1);
            a2 = Fma.MultiplyAdd(BlockDot<TF>(u, s, x2 + o, xsum[2 * blocks + k]), Vector256.Create(d * xs[2 * blocks + k]), a2);
            a3 = Fma.MultiplyAdd(BlockDot<TF>(u, s, x3 + o, xsum[3 * blocks + k]), Vector256.Create(d * xs[3 * blocks + k]), a3);
        }

        Store(y, Vector256.Sum(a0), accumulate);
        Store(y + ys, Vector256.Sum(a1), accumulate);
        Store(y + 2L * ys, Vector256.Sum(a2), accumulate);
        Store(y + 3L * ys, Vector256.Sum(a3), accumulate);
    }

    /// <summary>The scalar twin: the same integer block dots, float32 accumulation of (d_w·d_x)·dot.</summary>
    internal static float DotIScalar(byte* row, DType format, sbyte* x, float* xs, int* xsum, int blocks)
    {
        float total = 0;
        for (int k = 0; k < blocks; k++, x += BlockSize)
        {
            int dot = 0;
            byte* q = row + 2;
            if (format == DType.Q8_0)
            {
                for (int j = 0; j < BlockSize; j++)
                {
                    dot += ((sbyte*)q)[j] * x[j];
                }
            }
            else
            {
                for (int j = 0; j < 16; j++)
                {
                    dot += (q[j] & 0xF) * x[j] + (q[j] >> 4) * x[j + 16];
                }

                dot -= 8 * xsum[k];
            }

            total += Scale(row) * xs[k] * dot;
            row += format == DType.Q8_0 ? 34 : 18;
        }

        return total;
    }

    /// <summary>
    /// How the int8 product walks the weights. <see cref="ItemBytes"/>: a work item's size in weight bytes (at least 4
    /// rows, at most an eighth of the rows so both threads of a small matrix share it); 0 means the first kernel's
    /// 16-row items. <see cref="RowSide"/>: below 4 tokens, the one-row kernel
    /// <see cref="DotRow_256{TF}"/> with the prepared Q4_0 offsets (else <see cref="DotI1_256{TF}"/>).
    /// </summary>
    /// <remarks>
    /// Measured with <c>Qwen3Sharp.Bench quick 2 int8</c> (Zen 3, 2 threads, DRAM-streamed, 1.7B shapes): items of
    /// 256 KiB instead of 16 rows (Q4_0: 18 KiB) let the hardware prefetchers run along a long sequential stream per
    /// thread (Q4_0 output head 1.31–1.56×). Four rows at a time sharing the activation loads was faster from L2
    /// (Q4_0 +15%) but slower from DRAM (0.8–0.98×: four interleaved streams), so rows go one at a time.
    /// </remarks>
    internal readonly record struct Int8Tuning(int ItemBytes, bool RowSide)
    {
        /// <summary>The production choice.</summary>
        public static Int8Tuning Default => new(256 << 10, RowSide: true);

        /// <summary>The first int8 kernel's walk: 16-row items, <see cref="DotI1_256{TF}"/> (the A/B baseline).</summary>
        public static Int8Tuning Legacy => new(0, RowSide: false);

        public int ItemRows(long rowBytes, int rowCount)
        {
            if (ItemBytes <= 0)
            {
                return ChunkRows;
            }

            long rows = Math.Min(ItemBytes / rowBytes, rowCount / 8);
            return (int)Math.Clamp(rows, 4, 1 << 20);
        }
    }

    private static void RunInt8(Isa isa, WorkerPool pool, float* x, int tokenCount, in WeightView w, float* y, bool accumulate)
        => RunInt8(isa, pool, x, tokenCount, w, y, accumulate, Int8Tuning.Default);

    internal static void RunInt8(Isa isa, WorkerPool pool, float* x, int tokenCount, in WeightView w, float* y, bool accumulate, Int8Tuning tuning,
        bool batchInvariant = false)
    {
        int cols = w.ColCount, blocks = cols / BlockSize;
        long activationBytes = (Q8ActivationBytes(tokenCount, cols) + 63) & ~63L;
        bool oneRow = tuning.RowSide && isa != Isa.Scalar && (tokenCount < 4 || batchInvariant);   // batch invariant: the decode kernel for every token
        bool offsets = oneRow && w.DType == DType.Q4_0;
        byte* scratch = (byte*)pool.SharedScratch(activationBytes + (offsets ? (long)tokenCount * blocks * 32 : 0));
        QuantizeActivations(isa, x, tokenCount, cols, scratch, out sbyte* codes, out float* scales, out int* sums);
        Vector256<int>* sideOffsets = null;
        if (offsets)
        {
            sideOffsets = (Vector256<int>*)(scratch + activationBytes);
            PrepareOffsets(codes, (long)tokenCount * blocks, sideOffsets);
        }

        int itemRows = tuning.ItemRows(w.RowBytes, w.RowCount);
        var job = new Int8Job
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
            ItemRows = itemRows,
            OneRow = oneRow,
            Offsets = sideOffsets,
            Accumulate = accumulate,
            OneTokenAtATime = batchInvariant,
        };
        pool.Run(ref job, (w.RowCount + itemRows - 1) / itemRows);
    }

    /// <summary>
    /// Per activation block, Q4_0's offset as <see cref="DotRow_256{TF}"/> subtracts it: 8·Σ codes of each group of
    /// four, lane for lane as <c>vpmaddwd</c> leaves the dot product (the same integers as 8·Σ codes on one lane), so
    /// it costs each row one <c>vpsubd</c> instead of a load, a shift, a move to a vector and a subtraction.
    /// </summary>
    internal static void PrepareOffsets(sbyte* codes, long blockCount, Vector256<int>* offsets)
    {
        Vector256<byte> eight = Vector256.Create((byte)8);
        Vector256<short> ones = Vector256.Create((short)1);
        for (long b = 0; b < blockCount; b++, codes += BlockSize)
        {
            offsets[b] = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(eight, Vector256.Load(codes)), ones);
        }
    }

    /// <summary>
    /// One row against one token (decode), one sequential stream, two accumulators: per block the weight load and
    /// unpack, <c>vpmaddubsw</c>, <c>vpmaddwd</c>, (Q4_0) one <c>vpsubd</c> of the prepared offsets
    /// (<see cref="PrepareOffsets"/>), the conversion, the two scales' product and one FMA.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float DotRow_256<TF>(byte* row, sbyte* x, float* xs, Vector256<int>* offsets, int blocks) where TF : IInt8Format
    {
        float* half = HalfTable.Values;
        Vector256<uint> shift = NibbleShift, mask = NibbleMask;
        Vector256<short> ones = Vector256.Create((short)1);
        Vector256<float> a = Vector256<float>.Zero, b = Vector256<float>.Zero;
        int k = 0;
        for (; k + 2 <= blocks; k += 2, row += 2 * TF.BlockBytes, x += 2 * BlockSize)
        {
            TF.Load(row, shift, mask, out Vector256<byte> u0, out Vector256<sbyte> s0);
            TF.Load(row + TF.BlockBytes, shift, mask, out Vector256<byte> u1, out Vector256<sbyte> s1);
            Vector256<int> q0 = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u0, TF.Signed(Vector256.Load(x), s0)), ones);
            Vector256<int> q1 = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u1, TF.Signed(Vector256.Load(x + BlockSize), s1)), ones);
            if (TF.Offset8)
            {
                q0 -= offsets[k];
                q1 -= offsets[k + 1];
            }

            a = Fma.MultiplyAdd(Avx.ConvertToVector256Single(q0), Vector256.Create(half[*(ushort*)row] * xs[k]), a);
            b = Fma.MultiplyAdd(Avx.ConvertToVector256Single(q1), Vector256.Create(half[*(ushort*)(row + TF.BlockBytes)] * xs[k + 1]), b);
        }

        if (k < blocks)
        {
            TF.Load(row, shift, mask, out Vector256<byte> u0, out Vector256<sbyte> s0);
            Vector256<int> q0 = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(u0, TF.Signed(Vector256.Load(x), s0)), ones);
            if (TF.Offset8)
            {
                q0 -= offsets[k];
            }

            a = Fma.MultiplyAdd(Avx.ConvertToVector256Single(q0), Vector256.Create(half[*(ushort*)row] * xs[k]), a);
        }

        return Vector256.Sum(a + b);
    }

    private struct Int8Job : IPoolJob
    {
        public Isa Isa;
        public DType Format;
        public byte* Weights;     // [RowCount, ColCount / 32 blocks]
        public long RowBytes;
        public sbyte* Codes;      // [TokenCount, ColCount]
        public float* Scales;     // [TokenCount, ColCount / 32]
        public int* Sums;         // [TokenCount, ColCount / 32]
        public float* Y;          // [TokenCount, RowCount]
        public Vector256<int>* Offsets;   // [TokenCount, ColCount / 32] (Q4_0 with OneRow): see PrepareOffsets
        public int TokenCount, RowCount, ColCount, ItemRows;
        public bool OneRow, Accumulate, OneTokenAtATime;

        public readonly void Execute(int index, int worker)
        {
            int r0 = index * ItemRows, r1 = Math.Min(r0 + ItemRows, RowCount);
            int blocks = ColCount / BlockSize;
            for (int r = r0; r < r1; r++)
            {
                byte* row = Weights + r * RowBytes;
                int t = 0;
                if (Isa != Isa.Scalar && !OneTokenAtATime)
                {
                    for (; t + 4 <= TokenCount; t += 4)
                    {
                        sbyte* x = Codes + (long)t * ColCount;
                        float* xs = Scales + (long)t * blocks;
                        int* xsum = Sums + (long)t * blocks;
                        float* y = Y + (long)t * RowCount + r;
                        if (Format == DType.Q8_0)
                        {
                            DotI4_256<Q8I>(row, x, xs, xsum, ColCount, blocks, y, RowCount, Accumulate);
                        }
                        else
                        {
                            DotI4_256<Q4I>(row, x, xs, xsum, ColCount, blocks, y, RowCount, Accumulate);
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
                        (Isa.Scalar, _) => DotIScalar(row, Format, x, xs, xsum, blocks),
                        (_, DType.Q8_0) when OneRow => DotRow_256<Q8I>(row, x, xs, null, blocks),
                        (_, _) when OneRow => DotRow_256<Q4I>(row, x, xs, Offsets + (long)t * blocks, blocks),
                        (_, DType.Q8_0) => DotI1_256<Q8I>(row, x, xs, xsum, blocks),
                        _ => DotI1_256<Q4I>(row, x, xs, xsum, blocks),
                    };
                    Store(Y + (long)t * RowCount + r, s, Accumulate);
                }
            }
        }
    }
}

using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Kernels;

/// <summary>
/// <c>y = x · Wᵀ</c> for MLX affine-quantized weights (<see cref="DType.Affine"/>: w = scale·code + bias per group),
/// reached through <see cref="MatMul"/>'s entry points. Activations stay float32. Per group the product is
/// <c>scale·Σ(code·x) + bias·Σx</c>: codes are widened to float32 in registers (vpmovzxbd + vcvtdq2ps; 4-bit codes
/// split into low and high nibbles), FMA'd with the activation into a fresh per-group vector, which is then
/// FMA'd with the broadcast scale into the row's accumulator; the group sums Σx are computed once per call and
/// shared by every row. Up to four tokens share each widened chunk (decode, batched decode and prefill use the
/// same kernel). Rows are split across the pool in chunks.
/// </summary>
/// <remarks>
/// 4-bit codes hold element 2k in the low nibble of byte k and 2k+1 in the high one; rather than interleave the
/// nibbles, the activation is permuted once per call: per 32 elements, the 16 even ones then the 16 odd ones
/// (the order both the 512-bit and the 256-bit loads produce).
/// </remarks>
public static unsafe class AffineMatMul
{
    private const int Chunk = 32;
    private const int ChunkRows = 16;

    /// <summary>
    /// From this many tokens on, <see cref="MatMul"/> runs affine products through its prefill panels on rows
    /// dequantized to float32 (<see cref="DequantizeRows"/>) instead of this kernel: measured on Zen 4 (2 threads,
    /// 128 tokens, 6144×2048, per CPU-second) this kernel reached 70-100 GFLOP/s against the panels' ~200.
    /// </summary>
    internal const int PanelTokens = 32;

    /// <summary>The product with affine <paramref name="w"/> on the best instruction set available.</summary>
    public static void Run(WorkerPool pool, ReadOnlySpan<float> x, int tokenCount, in WeightView w, Span<float> destination, bool accumulate)
        => Run(QuantMatMul.Best, pool, x, tokenCount, w, destination, accumulate);

    /// <summary>As above; with <paramref name="batchInvariant"/> every token takes the one-token kernel (no 4-token tiles), so its sums do not depend on the token count.</summary>
    public static void Run(WorkerPool pool, ReadOnlySpan<float> x, int tokenCount, in WeightView w, Span<float> destination, bool accumulate,
        bool batchInvariant)
        => Run(QuantMatMul.Best, pool, x, tokenCount, w, destination, accumulate, batchInvariant);

    /// <summary>One instruction set's implementation (tests call each that the machine supports).</summary>
    internal static void Run(QuantMatMul.Isa isa, WorkerPool pool, ReadOnlySpan<float> x, int tokenCount, in WeightView w,
        Span<float> destination, bool accumulate, bool batchInvariant = false)
    {
        ArgumentNullException.ThrowIfNull(pool);
        ArgumentOutOfRangeException.ThrowIfNegative(tokenCount);
        if (w.DType != DType.Affine)
        {
            throw new ArgumentException($"{w.DType} is not the affine format.", nameof(w));
        }

        int rows = w.RowCount, cols = w.ColCount;
        if (x.Length < (long)tokenCount * cols || destination.Length < (long)tokenCount * rows)
        {
            throw new ArgumentException($"x needs {(long)tokenCount * cols} elements (has {x.Length}), destination {(long)tokenCount * rows} (has {destination.Length}).");
        }

        if (tokenCount == 0 || rows == 0)
        {
            return;
        }

        int groups = cols / w.GroupSize;
        fixed (float* px = x, py = destination)
        {
            // Per token: the activation (permuted for 4-bit SIMD loads) then its group sums.
            long stride = cols + groups;
            float* prepared = (float*)pool.SharedScratch(tokenCount * stride * sizeof(float));
            Layout layout = LayoutFor(isa, w.Bits, w.GroupSize);
            for (int t = 0; t < tokenCount; t++)
            {
                Prepare(px + (long)t * cols, cols, w.GroupSize, layout, prepared + t * stride);
            }

            var job = new Job
            {
                Isa = isa,
                W = w,
                X = prepared,
                XStride = stride,
                Y = py,
                TokenCount = tokenCount,
                Accumulate = accumulate,
                OneTokenAtATime = batchInvariant,
            };
            pool.Run(ref job, (rows + ChunkRows - 1) / ChunkRows);
        }
    }

    /// <summary>The order the activation is given to a kernel in (matching the order its code loads produce).</summary>
    internal enum Layout
    {
        /// <summary>As is (scalar; 8-bit codes widened with vpmovzxbd).</summary>
        Natural,

        /// <summary>Per 32 elements the 16 even ones, then the 16 odd ones (4-bit codes: low nibbles, high nibbles).</summary>
        EvenOdd,

        /// <summary>Per 64 elements those at 4j, then 4j+1, 4j+2, 4j+3 (8-bit codes taken as bytes 0..3 of 32-bit lanes).</summary>
        Stride4,
    }

    internal static Layout LayoutFor(QuantMatMul.Isa isa, int bits, int groupSize) => (isa, bits) switch
    {
        (QuantMatMul.Isa.Scalar, _) => Layout.Natural,
        (_, 4) => Layout.EvenOdd,
        (QuantMatMul.Isa.Avx512, _) when groupSize % 64 == 0 => Layout.Stride4,
        _ => Layout.Natural,
    };

    /// <summary>x [cols] into its kernel layout (<see cref="Layout"/>) followed by its group sums.</summary>
    private static void Prepare(float* x, int cols, int groupSize, Layout layout, float* destination)
    {
        float* sums = destination + cols;
        for (int g = 0; g < cols / groupSize; g++)
        {
            float s = 0;
            for (int j = 0; j < groupSize; j++)
            {
                s += x[g * groupSize + j];
            }

            sums[g] = s;
        }

        if (layout == Layout.Natural)
        {
            new ReadOnlySpan<float>(x, cols).CopyTo(new Span<float>(destination, cols));
            return;
        }

        if (layout == Layout.Stride4)
        {
            for (int c = 0; c < cols; c += 64)
            {
                for (int j = 0; j < 16; j++)
                {
                    for (int k = 0; k < 4; k++)
                    {
                        destination[c + k * 16 + j] = x[c + 4 * j + k];
                    }
                }
            }

            return;
        }

        for (int c = 0; c < cols; c += Chunk)
        {
            for (int j = 0; j < Chunk / 2; j++)
            {
                destination[c + j] = x[c + 2 * j];
                destination[c + Chunk / 2 + j] = x[c + 2 * j + 1];
            }
        }
    }

    private struct Job : IPoolJob
    {
        public QuantMatMul.Isa Isa;
        public WeightView W;
        public float* X;          // [TokenCount, XStride]: prepared activation, then group sums
        public long XStride;
        public float* Y;          // [TokenCount, RowCount]
        public int TokenCount;
        public bool Accumulate, OneTokenAtATime;   // batch invariant: every token through the one-token kernel

        public readonly void Execute(int index, int worker)
        {
            switch (W.Bits, W.GroupDType)
            {
                case (8, DType.BF16): Rows<C8, GBf16>(index); break;
                case (8, DType.F16): Rows<C8, GF16>(index); break;
                case (8, _): Rows<C8, GF32>(index); break;
                case (_, DType.BF16): Rows<C4, GBf16>(index); break;
                case (_, DType.F16): Rows<C4, GF16>(index); break;
                default: Rows<C4, GF32>(index); break;
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private readonly void Rows<TC, TG>(int index) where TC : ICodes where TG : IGroupType
        {
            int rowCount = W.RowCount, cols = W.ColCount, gs = W.GroupSize, groups = cols / gs;
            int r0 = index * ChunkRows, r1 = Math.Min(r0 + ChunkRows, rowCount);
            long rowBytes = W.RowBytes;
            for (int r = r0; r < r1; r++)
            {
                byte* row = W.Data + r * rowBytes;
                byte* scales = W.Scales + (long)r * groups * TG.Bytes;
                byte* biases = W.Biases + (long)r * groups * TG.Bytes;
                if (r + 1 < r1)
                {
                    SimdMath.Prefetch(row + rowBytes);
                    SimdMath.Prefetch(scales + groups * TG.Bytes);
                    SimdMath.Prefetch(biases + groups * TG.Bytes);
                }

                int t = 0;
                if (Isa != QuantMatMul.Isa.Scalar && !OneTokenAtATime)
                {
                    for (; t + 4 <= TokenCount; t += 4)
                    {
                        float* x = X + t * XStride;
                        float* y = Y + (long)t * rowCount + r;
                        if (Isa == QuantMatMul.Isa.Avx512 && typeof(TC) == typeof(C8) && gs % 64 == 0)
                        {
                            Dot4_512x8<TG>(row, scales, biases, gs, groups, x, XStride, y, rowCount, Accumulate);
                        }
                        else if (Isa == QuantMatMul.Isa.Avx512)
                        {
                            Dot4_512<TC, TG>(row, scales, biases, gs, groups, x, XStride, y, rowCount, Accumulate);
                        }
                        else
                        {
                            Dot4_256<TC, TG>(row, scales, biases, gs, groups, x, XStride, y, rowCount, Accumulate);
                        }
                    }
                }

                for (; t < TokenCount; t++)
                {
                    float* x = X + t * XStride;
                    float s = Isa switch
                    {
                        QuantMatMul.Isa.Avx512 when typeof(TC) == typeof(C8) && gs % 64 == 0 => Dot1_512x8<TG>(row, scales, biases, gs, groups, x),
                        QuantMatMul.Isa.Avx512 => Dot1_512<TC, TG>(row, scales, biases, gs, groups, x),
                        QuantMatMul.Isa.Avx2 => Dot1_256<TC, TG>(row, scales, biases, gs, groups, x),
                        _ => DotScalar(row, W.Bits, scales, biases, W.GroupDType, gs, x, cols),
                    };
                    float* y = Y + (long)t * rowCount + r;
                    *y = Accumulate ? *y + s : s;
                }
            }
        }
    }

    /// <summary>The element type of the scale and bias tables.</summary>
    internal interface IGroupType
    {
        static abstract int Bytes { get; }

        static abstract float Load(byte* p, int i);
    }

    internal struct GBf16 : IGroupType
    {
        public static int Bytes => 2;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Load(byte* p, int i) => BitConverter.Int32BitsToSingle(((ushort*)p)[i] << 16);
    }

    internal struct GF16 : IGroupType
    {
        public static int Bytes => 2;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Load(byte* p, int i) => (float)((Half*)p)[i];
    }

    internal struct GF32 : IGroupType
    {
        public static int Bytes => 4;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Load(byte* p, int i) => ((float*)p)[i];
    }

    /// <summary>One code width's widening of 32 elements to float32, in the order the prepared activation has.</summary>
    internal interface ICodes
    {
        /// <summary>Bytes of 32 codes.</summary>
        static abstract int ChunkBytes { get; }

        static abstract void Load512(byte* p, out Vector512<float> w0, out Vector512<float> w1);

        static abstract void Load256(byte* p, out Vector256<float> w0, out Vector256<float> w1, out Vector256<float> w2, out Vector256<float> w3);
    }

    internal struct C8 : ICodes
    {
        public static int ChunkBytes => 32;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Load512(byte* p, out Vector512<float> w0, out Vector512<float> w1)
        {
            w0 = Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load(p)));
            w1 = Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load(p + 16)));
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Load256(byte* p, out Vector256<float> w0, out Vector256<float> w1, out Vector256<float> w2, out Vector256<float> w3)
        {
            w0 = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(p));
            w1 = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(p + 8));
            w2 = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(p + 16));
            w3 = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(p + 24));
        }
    }

    internal struct C4 : ICodes
    {
        public static int ChunkBytes => 16;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Load512(byte* p, out Vector512<float> w0, out Vector512<float> w1)
        {
            Vector512<int> v = Avx512F.ConvertToVector512Int32(Vector128.Load(p));
            w0 = Avx512F.ConvertToVector512Single(v & Vector512.Create(0xF));            // elements 0, 2, .. 30
            w1 = Avx512F.ConvertToVector512Single(Vector512.ShiftRightLogical(v, 4));    // elements 1, 3, .. 31
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Load256(byte* p, out Vector256<float> w0, out Vector256<float> w1, out Vector256<float> w2, out Vector256<float> w3)
        {
            Vector256<int> a = Avx2.ConvertToVector256Int32(p);
            Vector256<int> b = Avx2.ConvertToVector256Int32(p + 8);
            Vector256<int> mask = Vector256.Create(0xF);
            w0 = Avx.ConvertToVector256Single(a & mask);                               // 0, 2, .. 14
            w1 = Avx.ConvertToVector256Single(b & mask);                               // 16, .. 30
            w2 = Avx.ConvertToVector256Single(Vector256.ShiftRightLogical(a, 4));      // 1, .. 15
            w3 = Avx.ConvertToVector256Single(Vector256.ShiftRightLogical(b, 4));      // 17, .. 31
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float Dot1_512<TC, TG>(byte* row, byte* scales, byte* biases, int gs, int groups, float* x)
        where TC : ICodes where TG : IGroupType
    {
        Vector512<float> acc = Vector512<float>.Zero;
        float* sums = x + gs * groups;
        float bias = 0;
        for (int g = 0; g < groups; g++)
        {
            Vector512<float> a = Vector512<float>.Zero, b = Vector512<float>.Zero;
            for (int c = 0; c < gs; c += Chunk, row += TC.ChunkBytes, x += Chunk)
            {
                TC.Load512(row, out Vector512<float> w0, out Vector512<float> w1);
                a = Avx512F.FusedMultiplyAdd(w0, Vector512.Load(x), a);
                b = Avx512F.FusedMultiplyAdd(w1, Vector512.Load(x + 16), b);
            }

            acc = Avx512F.FusedMultiplyAdd(a + b, Vector512.Create(TG.Load(scales, g)), acc);
            bias += TG.Load(biases, g) * sums[g];
        }

        return Vector512.Sum(acc) + bias;
    }

    /// <summary>
    /// 64 8-bit codes as four vectors: byte k of each 32-bit lane (elements 4j+k), by shifts and masks instead of
    /// vpmovzxbd (which competes for the shuffle pipes); the activation is in <see cref="Layout.Stride4"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Load64(byte* p, out Vector512<float> w0, out Vector512<float> w1, out Vector512<float> w2, out Vector512<float> w3)
    {
        Vector512<uint> v = Vector512.Load((uint*)p);
        Vector512<uint> m = Vector512.Create(0xFFu);
        w0 = Avx512F.ConvertToVector512Single((v & m).AsInt32());
        w1 = Avx512F.ConvertToVector512Single((Vector512.ShiftRightLogical(v, 8) & m).AsInt32());
        w2 = Avx512F.ConvertToVector512Single((Vector512.ShiftRightLogical(v, 16) & m).AsInt32());
        w3 = Avx512F.ConvertToVector512Single(Vector512.ShiftRightLogical(v, 24).AsInt32());
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float Dot1_512x8<TG>(byte* row, byte* scales, byte* biases, int gs, int groups, float* x)
        where TG : IGroupType
    {
        Vector512<float> acc = Vector512<float>.Zero;
        float* sums = x + gs * groups;
        float bias = 0;
        for (int g = 0; g < groups; g++)
        {
            Vector512<float> a = Vector512<float>.Zero, b = Vector512<float>.Zero;
            for (int c = 0; c < gs; c += 64, row += 64, x += 64)
            {
                Load64(row, out Vector512<float> w0, out Vector512<float> w1, out Vector512<float> w2, out Vector512<float> w3);
                a = Avx512F.FusedMultiplyAdd(w0, Vector512.Load(x), a);
                b = Avx512F.FusedMultiplyAdd(w1, Vector512.Load(x + 16), b);
                a = Avx512F.FusedMultiplyAdd(w2, Vector512.Load(x + 32), a);
                b = Avx512F.FusedMultiplyAdd(w3, Vector512.Load(x + 48), b);
            }

            acc = Avx512F.FusedMultiplyAdd(a + b, Vector512.Create(TG.Load(scales, g)), acc);
            bias += TG.Load(biases, g) * sums[g];
        }

        return Vector512.Sum(acc) + bias;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Dot4_512x8<TG>(byte* row, byte* scales, byte* biases, int gs, int groups, float* x, long xs,
        float* y, int ys, bool accumulate)
        where TG : IGroupType
    {
        Vector512<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        float* sums = x + gs * groups;
        float bias0 = 0, bias1 = 0, bias2 = 0, bias3 = 0;
        int c = 0;
        for (int g = 0; g < groups; g++)
        {
            Vector512<float> p0 = default, p1 = default, p2 = default, p3 = default;
            for (int end = c + gs; c < end; c += 64, row += 64)
            {
                Load64(row, out Vector512<float> w0, out Vector512<float> w1, out Vector512<float> w2, out Vector512<float> w3);
                p0 = Part4(w0, w1, w2, w3, x + c, p0);
                p1 = Part4(w0, w1, w2, w3, x + xs + c, p1);
                p2 = Part4(w0, w1, w2, w3, x + 2 * xs + c, p2);
                p3 = Part4(w0, w1, w2, w3, x + 3 * xs + c, p3);
            }

            Vector512<float> s = Vector512.Create(TG.Load(scales, g));
            acc0 = Avx512F.FusedMultiplyAdd(p0, s, acc0);
            acc1 = Avx512F.FusedMultiplyAdd(p1, s, acc1);
            acc2 = Avx512F.FusedMultiplyAdd(p2, s, acc2);
            acc3 = Avx512F.FusedMultiplyAdd(p3, s, acc3);
            float b = TG.Load(biases, g);
            bias0 += b * sums[g];
            bias1 += b * sums[xs + g];
            bias2 += b * sums[2 * xs + g];
            bias3 += b * sums[3 * xs + g];
        }

        Store(y, Vector512.Sum(acc0) + bias0, accumulate);
        Store(y + ys, Vector512.Sum(acc1) + bias1, accumulate);
        Store(y + 2L * ys, Vector512.Sum(acc2) + bias2, accumulate);
        Store(y + 3L * ys, Vector512.Sum(acc3) + bias3, accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Part4(Vector512<float> w0, Vector512<float> w1, Vector512<float> w2, Vector512<float> w3, float* x, Vector512<float> p)
        => Avx512F.FusedMultiplyAdd(w0, Vector512.Load(x), Avx512F.FusedMultiplyAdd(w1, Vector512.Load(x + 16),
            Avx512F.FusedMultiplyAdd(w2, Vector512.Load(x + 32), Avx512F.FusedMultiplyAdd(w3, Vector512.Load(x + 48), p))));

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Dot4_512<TC, TG>(byte* row, byte* scales, byte* biases, int gs, int groups, float* x, long xs,
        float* y, int ys, bool accumulate)
        where TC : ICodes where TG : IGroupType
    {
        Vector512<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        float* sums = x + gs * groups;
        float bias0 = 0, bias1 = 0, bias2 = 0, bias3 = 0;
        int c = 0;
        for (int g = 0; g < groups; g++)
        {
            Vector512<float> p0 = default, p1 = default, p2 = default, p3 = default;
            for (int end = c + gs; c < end; c += Chunk, row += TC.ChunkBytes)
            {
                TC.Load512(row, out Vector512<float> w0, out Vector512<float> w1);
                p0 = Avx512F.FusedMultiplyAdd(w1, Vector512.Load(x + c + 16), Avx512F.FusedMultiplyAdd(w0, Vector512.Load(x + c), p0));
                p1 = Avx512F.FusedMultiplyAdd(w1, Vector512.Load(x + xs + c + 16), Avx512F.FusedMultiplyAdd(w0, Vector512.Load(x + xs + c), p1));
                p2 = Avx512F.FusedMultiplyAdd(w1, Vector512.Load(x + 2 * xs + c + 16), Avx512F.FusedMultiplyAdd(w0, Vector512.Load(x + 2 * xs + c), p2));
                p3 = Avx512F.FusedMultiplyAdd(w1, Vector512.Load(x + 3 * xs + c + 16), Avx512F.FusedMultiplyAdd(w0, Vector512.Load(x + 3 * xs + c), p3));
            }

            Vector512<float> s = Vector512.Create(TG.Load(scales, g));
            acc0 = Avx512F.FusedMultiplyAdd(p0, s, acc0);
            acc1 = Avx512F.FusedMultiplyAdd(p1, s, acc1);
            acc2 = Avx512F.FusedMultiplyAdd(p2, s, acc2);
            acc3 = Avx512F.FusedMultiplyAdd(p3, s, acc3);
            float b = TG.Load(biases, g);
            bias0 += b * sums[g];
            bias1 += b * sums[xs + g];
            bias2 += b * sums[2 * xs + g];
            bias3 += b * sums[3 * xs + g];
        }

        Store(y, Vector512.Sum(acc0) + bias0, accumulate);
        Store(y + ys, Vector512.Sum(acc1) + bias1, accumulate);
        Store(y + 2L * ys, Vector512.Sum(acc2) + bias2, accumulate);
        Store(y + 3L * ys, Vector512.Sum(acc3) + bias3, accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float Dot1_256<TC, TG>(byte* row, byte* scales, byte* biases, int gs, int groups, float* x)
        where TC : ICodes where TG : IGroupType
    {
        Vector256<float> acc = Vector256<float>.Zero;
        float* sums = x + gs * groups;
        float bias = 0;
        for (int g = 0; g < groups; g++)
        {
            Vector256<float> a = Vector256<float>.Zero, b = Vector256<float>.Zero;
            for (int c = 0; c < gs; c += Chunk, row += TC.ChunkBytes, x += Chunk)
            {
                TC.Load256(row, out Vector256<float> w0, out Vector256<float> w1, out Vector256<float> w2, out Vector256<float> w3);
                a = Fma.MultiplyAdd(w0, Vector256.Load(x), a);
                b = Fma.MultiplyAdd(w1, Vector256.Load(x + 8), b);
                a = Fma.MultiplyAdd(w2, Vector256.Load(x + 16), a);
                b = Fma.MultiplyAdd(w3, Vector256.Load(x + 24), b);
            }

            acc = Fma.MultiplyAdd(a + b, Vector256.Create(TG.Load(scales, g)), acc);
            bias += TG.Load(biases, g) * sums[g];
        }

        return Vector256.Sum(acc) + bias;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Dot4_256<TC, TG>(byte* row, byte* scales, byte* biases, int gs, int groups, float* x, long xs,
        float* y, int ys, bool accumulate)
        where TC : ICodes where TG : IGroupType
    {
        Vector256<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        float* sums = x + gs * groups;
        float bias0 = 0, bias1 = 0, bias2 = 0, bias3 = 0;
        int c = 0;
        for (int g = 0; g < groups; g++)
        {
            Vector256<float> p0 = default, p1 = default, p2 = default, p3 = default;
            for (int end = c + gs; c < end; c += Chunk, row += TC.ChunkBytes)
            {
                TC.Load256(row, out Vector256<float> w0, out Vector256<float> w1, out Vector256<float> w2, out Vector256<float> w3);
                p0 = Part(w0, w1, w2, w3, x + c, p0);
                p1 = Part(w0, w1, w2, w3, x + xs + c, p1);
                p2 = Part(w0, w1, w2, w3, x + 2 * xs + c, p2);
                p3 = Part(w0, w1, w2, w3, x + 3 * xs + c, p3);
            }

            Vector256<float> s = Vector256.Create(TG.Load(scales, g));
            acc0 = Fma.MultiplyAdd(p0, s, acc0);
            acc1 = Fma.MultiplyAdd(p1, s, acc1);
            acc2 = Fma.MultiplyAdd(p2, s, acc2);
            acc3 = Fma.MultiplyAdd(p3, s, acc3);
            float b = TG.Load(biases, g);
            bias0 += b * sums[g];
            bias1 += b * sums[xs + g];
            bias2 += b * sums[2 * xs + g];
            bias3 += b * sums[3 * xs + g];
        }

        Store(y, Vector256.Sum(acc0) + bias0, accumulate);
        Store(y + ys, Vector256.Sum(acc1) + bias1, accumulate);
        Store(y + 2L * ys, Vector256.Sum(acc2) + bias2, accumulate);
        Store(y + 3L * ys, Vector256.Sum(acc3) + bias3, accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Part(Vector256<float> w0, Vector256<float> w1, Vector256<float> w2, Vector256<float> w3, float* x, Vector256<float> p)
        => Fma.MultiplyAdd(w0, Vector256.Load(x), Fma.MultiplyAdd(w1, Vector256.Load(x + 8),
            Fma.MultiplyAdd(w2, Vector256.Load(x + 16), Fma.MultiplyAdd(w3, Vector256.Load(x + 24), p))));

    /// <summary>The scalar twin: natural-order activation, per group scale·Σ(code·x) + bias·Σx.</summary>
    internal static float DotScalar(byte* row, int bits, byte* scales, byte* biases, DType groupDType, int gs, float* x, int cols)
    {
        float total = 0;
        for (int g = 0; g < cols / gs; g++)
        {
            float s = 0, sx = 0;
            for (int j = g * gs; j < (g + 1) * gs; j++)
            {
                s += Code(row, bits, j) * x[j];
                sx += x[j];
            }

            total += WeightView.Load(scales, groupDType, g) * s + WeightView.Load(biases, groupDType, g) * sx;
        }

        return total;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Code(byte* row, int bits, int j) => bits == 8 ? row[j] : (row[j >> 1] >> ((j & 1) * 4)) & 0xF;

    /// <summary>Row <paramref name="row"/> of an affine matrix to float32 (the embedding lookup of a quantized table).</summary>
    public static void DequantizeRow(in WeightView w, int row, float* destination)
    {
        byte* codes = w.Row(row);
        int gs = w.GroupSize;
        for (int g = 0; g < w.ColCount / gs; g++)
        {
            (float scale, float bias) = w.GroupParams(row, g);
            for (int j = g * gs; j < (g + 1) * gs; j++)
            {
                destination[j] = scale * Code(codes, w.Bits, j) + bias;
            }
        }
    }

    /// <summary>Rows [r0, r0 + rows) of affine <paramref name="w"/> to float32 [rows, ColCount] (natural order).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DequantizeRows(in WeightView w, int r0, int rows, float* destination)
    {
        int cols = w.ColCount, gs = w.GroupSize, groups = cols / gs;
        if (!Avx512F.IsSupported || !Avx512BW.IsSupported)
        {
            for (int i = 0; i < rows; i++)
            {
                DequantizeRow(w, r0 + i, destination + (long)i * cols);
            }

            return;
        }

        // 4-bit: the low nibbles are elements 0, 2, .., the high ones 1, 3, ..: interleave them back
        Vector512<int> first = Vector512.Create(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        Vector512<int> second = Vector512.Create(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        for (int i = 0; i < rows; i++)
        {
            byte* codes = w.Row(r0 + i);
            float* d = destination + (long)i * cols;
            for (int g = 0; g < groups; g++)
            {
                (float scale, float bias) = w.GroupParams(r0 + i, g);
                Vector512<float> s = Vector512.Create(scale), b = Vector512.Create(bias);
                for (int c = g * gs; c < (g + 1) * gs; c += Chunk)
                {
                    Vector512<float> lo, hi;
                    if (w.Bits == 8)
                    {
                        C8.Load512(codes + c, out lo, out hi);
                    }
                    else
                    {
                        Vector512<int> v = Avx512F.ConvertToVector512Int32(Vector128.Load(codes + c / 2));
                        Vector512<int> even = v & Vector512.Create(0xF), odd = Vector512.ShiftRightLogical(v, 4);
                        lo = Avx512F.ConvertToVector512Single(Avx512F.PermuteVar16x32x2(even, first, odd));
                        hi = Avx512F.ConvertToVector512Single(Avx512F.PermuteVar16x32x2(even, second, odd));
                    }

                    Avx512F.FusedMultiplyAdd(lo, s, b).Store(d + c);
                    Avx512F.FusedMultiplyAdd(hi, s, b).Store(d + c + 16);
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* y, float value, bool accumulate) => *y = accumulate ? *y + value : value;
}

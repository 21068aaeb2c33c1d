using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Kernels;

/// <summary>
/// <c>y = x · Wᵀ</c> for weights in GGML block formats (Q8_0, Q4_0, and the K-quants Q4_K, Q5_K, Q6_K), reached
/// through <see cref="MatMul"/>'s entry points. Activations stay float32: each 32-element block is widened to
/// float32 in registers (vpmovsxbd / vpmovzxbd + vcvtdq2ps), scaled by its fp16 scale once, and FMA'd with up to four
/// tokens' activations, so one kernel serves decode (one token), batched decode and prefill (tokens in groups of
/// four; the row's blocks are re-read from L1 for each group). K-quant super-blocks go 64 elements at a time
/// (<see cref="IKFormat"/>): the codes are unpacked in registers and turned into weights with their sub-block's
/// scale and min (one FMA), then FMA'd with the activations the same way. Rows are split across the pool in chunks.
/// </summary>
public static unsafe partial class QuantMatMul
{
    internal const int BlockSize = 32;
    private const int ChunkRows = 16;

    internal enum Isa
    {
        Scalar,
        Avx2,
        Avx512,
    }

    internal static Isa Best =>
        Avx512F.IsSupported && Avx512BW.IsSupported ? Isa.Avx512 : Avx2.IsSupported && Fma.IsSupported ? Isa.Avx2 : Isa.Scalar;

    /// <summary>The product with <paramref name="w"/> of a block format, on the best instruction set available.</summary>
    /// <remarks>Q8_0, Q4_0 and the K-quants take the integer-activation kernels (QuantMatMul.Int8.cs, QuantMatMul.KQuantsInt8.cs) unless
    /// <see cref="KernelSelection.QuantDecode"/> says <see cref="QuantDecodeKernel.Float"/>.</remarks>
    public static void Run(WorkerPool pool, ReadOnlySpan<float> x, int tokenCount, in WeightView w, Span<float> destination, bool accumulate)
        => Run(Best, pool, x, tokenCount, w, destination, accumulate, KernelSelection.QuantDecode);

    /// <summary>One instruction set's float-activation implementation (tests call each that the machine supports).</summary>
    internal static void Run(Isa isa, WorkerPool pool, ReadOnlySpan<float> x, int tokenCount, in WeightView w,
        Span<float> destination, bool accumulate)
        => Run(isa, pool, x, tokenCount, w, destination, accumulate, QuantDecodeKernel.Float);

    /// <summary>One instruction set's implementation with an explicit activation path (tests and the A/B bench).</summary>
    /// <remarks>
    /// With <paramref name="batchInvariant"/> each token's sums take the one-token kernels' order at every token count
    /// (the row-layout formats drop their 4-token tiles; the 8-row groups already do); the weights of a row still come
    /// from L1 for every token after the first.
    /// </remarks>
    internal static void Run(Isa isa, WorkerPool pool, ReadOnlySpan<float> x, int tokenCount, in WeightView w,
        Span<float> destination, bool accumulate, QuantDecodeKernel kernel, bool batchInvariant = false)
    {
        ArgumentNullException.ThrowIfNull(pool);
        ArgumentOutOfRangeException.ThrowIfNegative(tokenCount);
        if (!w.DType.IsBlockQuantized())
        {
            throw new ArgumentException($"{w.DType} is not a block format.", nameof(w));
        }

        if (w.ColCount % w.DType.BlockSize() != 0)
        {
            throw new ArgumentException($"{w.DType} rows must be a multiple of {w.DType.BlockSize()} columns; this one has {w.ColCount}.", nameof(w));
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

        fixed (float* px = x, py = destination)
        {
            if (w.DType.RowGroup() > 1)
            {
                RunX8(isa, pool, px, tokenCount, w, py, accumulate);   // QuantMatMul.Q4x8.cs: int8 activations only
                return;
            }

            if (kernel == QuantDecodeKernel.Int8 && HasInt8Kernel(w.DType))
            {
                if (w.DType.IsKQuant())
                {
                    RunInt8K(isa, pool, px, tokenCount, w, py, accumulate, batchInvariant);   // QuantMatMul.KQuantsInt8.cs
                }
                else
                {
                    RunInt8(isa, pool, px, tokenCount, w, py, accumulate, Int8Tuning.Default, batchInvariant);
                }

                return;
            }

            var job = new Job
            {
                Isa = isa,
                Format = w.DType,
                Weights = w.Data,
                RowBytes = w.RowBytes,
                X = px,
                Y = py,
                TokenCount = tokenCount,
                RowCount = rows,
                ColCount = cols,
                Accumulate = accumulate,
                OneTokenAtATime = batchInvariant,
            };
            pool.Run(ref job, (rows + ChunkRows - 1) / ChunkRows);
        }
    }

    private struct Job : IPoolJob
    {
        public Isa Isa;
        public DType Format;
        public byte* Weights;     // [RowCount, ColCount / 32 blocks]
        public long RowBytes;
        public float* X;          // [TokenCount, ColCount]
        public float* Y;          // [TokenCount, RowCount]
        public int TokenCount, RowCount, ColCount;
        public bool Accumulate, OneTokenAtATime;

        public readonly void Execute(int index, int worker)
        {
            int r0 = index * ChunkRows, r1 = Math.Min(r0 + ChunkRows, RowCount);
            for (int r = r0; r < r1; r++)
            {
                byte* row = Weights + r * RowBytes;
                if (r + 1 < r1)
                {
                    SimdMath.Prefetch(row + RowBytes);
                }

                int t = 0;
                for (; t + 4 <= TokenCount && !OneTokenAtATime; t += 4)
                {
                    Row4(row, t, r);
                }

                for (; t < TokenCount; t++)
                {
                    Row1(row, t, r);
                }
            }
        }

        private readonly void Row1(byte* row, int t, int r)
        {
            float* x = X + (long)t * ColCount;
            float s = (Isa, Format) switch
            {
                (Isa.Avx512, DType.Q8_0) => Dot1_512<Q8>(row, x, ColCount),
                (Isa.Avx512, DType.Q4_0) => Dot1_512<Q4>(row, x, ColCount),
                (Isa.Avx512, DType.Q4_K) => DotK1_512<Q4K>(row, x, ColCount),
                (Isa.Avx512, DType.Q5_K) => DotK1_512<Q5K>(row, x, ColCount),
                (Isa.Avx512, DType.Q6_K) => DotK1_512<Q6K>(row, x, ColCount),
                (Isa.Avx2, DType.Q8_0) => Dot1_256<Q8>(row, x, ColCount),
                (Isa.Avx2, DType.Q4_0) => Dot1_256<Q4>(row, x, ColCount),
                (Isa.Avx2, DType.Q4_K) => DotK1_256<Q4K>(row, x, ColCount),
                (Isa.Avx2, DType.Q5_K) => DotK1_256<Q5K>(row, x, ColCount),
                (Isa.Avx2, DType.Q6_K) => DotK1_256<Q6K>(row, x, ColCount),
                _ => DotScalar(row, Format, x, ColCount),
            };
            float* y = Y + (long)t * RowCount + r;
            *y = Accumulate ? *y + s : s;
        }

        private readonly void Row4(byte* row, int t, int r)
        {
            float* x = X + (long)t * ColCount;
            float* y = Y + (long)t * RowCount + r;
            switch (Isa, Format)
            {
                case (Isa.Avx512, DType.Q8_0): Dot4_512<Q8>(row, x, ColCount, y, RowCount, Accumulate); break;
                case (Isa.Avx512, DType.Q4_0): Dot4_512<Q4>(row, x, ColCount, y, RowCount, Accumulate); break;
                case (Isa.Avx512, DType.Q4_K): DotK4_512<Q4K>(row, x, ColCount, y, RowCount, Accumulate); break;
                case (Isa.Avx512, DType.Q5_K): DotK4_512<Q5K>(row, x, ColCount, y, RowCount, Accumulate); break;
                case (Isa.Avx512, DType.Q6_K): DotK4_512<Q6K>(row, x, ColCount, y, RowCount, Accumulate); break;
                case (Isa.Avx2, DType.Q8_0): Dot4_256<Q8>(row, x, ColCount, y, RowCount, Accumulate); break;
                case (Isa.Avx2, DType.Q4_0): Dot4_256<Q4>(row, x, ColCount, y, RowCount, Accumulate); break;
                case (Isa.Avx2, DType.Q4_K): DotK4_256<Q4K>(row, x, ColCount, y, RowCount, Accumulate); break;
                case (Isa.Avx2, DType.Q5_K): DotK4_256<Q5K>(row, x, ColCount, y, RowCount, Accumulate); break;
                case (Isa.Avx2, DType.Q6_K): DotK4_256<Q6K>(row, x, ColCount, y, RowCount, Accumulate); break;
                default:
                    for (int k = 0; k < 4; k++)
                    {
                        Row1(row, t + k, r);
                    }

                    break;
            }
        }
    }

    /// <summary>One block format's widening to float32 (unscaled codes; the caller multiplies by the block scale).</summary>
    internal interface IBlockFormat
    {
        static abstract int BlockBytes { get; }

        static abstract void Load512(byte* block, out Vector512<float> w0, out Vector512<float> w1);

        static abstract void Load256(byte* block, out Vector256<float> w0, out Vector256<float> w1, out Vector256<float> w2, out Vector256<float> w3);
    }

    internal struct Q8 : IBlockFormat
    {
        public static int BlockBytes => 34;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Load512(byte* block, out Vector512<float> w0, out Vector512<float> w1)
        {
            w0 = Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)block + 2)));
            w1 = Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)block + 18)));
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Load256(byte* block, out Vector256<float> w0, out Vector256<float> w1, out Vector256<float> w2, out Vector256<float> w3)
        {
            w0 = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32((sbyte*)block + 2));
            w1 = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32((sbyte*)block + 10));
            w2 = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32((sbyte*)block + 18));
            w3 = Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32((sbyte*)block + 26));
        }
    }

    internal struct Q4 : IBlockFormat
    {
        public static int BlockBytes => 18;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Load512(byte* block, out Vector512<float> w0, out Vector512<float> w1)
        {
            Vector512<int> v = Avx512F.ConvertToVector512Int32(Vector128.Load(block + 2));   // zero-extended
            Vector512<int> eight = Vector512.Create(8);
            w0 = Avx512F.ConvertToVector512Single((v & Vector512.Create(0xF)) - eight);      // elements 0..15
            w1 = Avx512F.ConvertToVector512Single(Vector512.ShiftRightLogical(v, 4) - eight); // elements 16..31
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Load256(byte* block, out Vector256<float> w0, out Vector256<float> w1, out Vector256<float> w2, out Vector256<float> w3)
        {
            Vector256<int> a = Avx2.ConvertToVector256Int32(block + 2);
            Vector256<int> b = Avx2.ConvertToVector256Int32(block + 10);
            Vector256<int> mask = Vector256.Create(0xF), eight = Vector256.Create(8);
            w0 = Avx.ConvertToVector256Single((a & mask) - eight);
            w1 = Avx.ConvertToVector256Single((b & mask) - eight);
            w2 = Avx.ConvertToVector256Single(Vector256.ShiftRightLogical(a, 4) - eight);
            w3 = Avx.ConvertToVector256Single(Vector256.ShiftRightLogical(b, 4) - eight);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Scale(byte* block) => HalfToSingle(*(ushort*)block);   // no call in the block loop (see HalfToSingle)

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float Dot1_512<TB>(byte* row, float* x, int cols) where TB : IBlockFormat
    {
        Vector512<float> a = Vector512<float>.Zero, b = Vector512<float>.Zero;
        for (int c = 0; c < cols; c += BlockSize, row += TB.BlockBytes)
        {
            TB.Load512(row, out Vector512<float> w0, out Vector512<float> w1);
            Vector512<float> d = Vector512.Create(Scale(row));
            a = Avx512F.FusedMultiplyAdd(w0 * d, Vector512.Load(x + c), a);
            b = Avx512F.FusedMultiplyAdd(w1 * d, Vector512.Load(x + c + 16), b);
        }

        return Vector512.Sum(a + b);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Dot4_512<TB>(byte* row, float* x, int cols, float* y, int ys, bool accumulate) where TB : IBlockFormat
    {
        Vector512<float> a0 = default, b0 = default, a1 = default, b1 = default, a2 = default, b2 = default, a3 = default, b3 = default;
        for (int c = 0; c < cols; c += BlockSize, row += TB.BlockBytes)
        {
            TB.Load512(row, out Vector512<float> w0, out Vector512<float> w1);
            Vector512<float> d = Vector512.Create(Scale(row));
            w0 *= d;
            w1 *= d;
            a0 = Avx512F.FusedMultiplyAdd(w0, Vector512.Load(x + c), a0);
            b0 = Avx512F.FusedMultiplyAdd(w1, Vector512.Load(x + c + 16), b0);
            a1 = Avx512F.FusedMultiplyAdd(w0, Vector512.Load(x + cols + c), a1);
            b1 = Avx512F.FusedMultiplyAdd(w1, Vector512.Load(x + cols + c + 16), b1);
            a2 = Avx512F.FusedMultiplyAdd(w0, Vector512.Load(x + 2L * cols + c), a2);
            b2 = Avx512F.FusedMultiplyAdd(w1, Vector512.Load(x + 2L * cols + c + 16), b2);
            a3 = Avx512F.FusedMultiplyAdd(w0, Vector512.Load(x + 3L * cols + c), a3);
            b3 = Avx512F.FusedMultiplyAdd(w1, Vector512.Load(x + 3L * cols + c + 16), b3);
        }

        Store(y, Vector512.Sum(a0 + b0), accumulate);
        Store(y + ys, Vector512.Sum(a1 + b1), accumulate);
        Store(y + 2L * ys, Vector512.Sum(a2 + b2), accumulate);
        Store(y + 3L * ys, Vector512.Sum(a3 + b3), accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float Dot1_256<TB>(byte* row, float* x, int cols) where TB : IBlockFormat
    {
        Vector256<float> a = Vector256<float>.Zero, b = Vector256<float>.Zero;
        for (int c = 0; c < cols; c += BlockSize, row += TB.BlockBytes)
        {
            TB.Load256(row, out Vector256<float> w0, out Vector256<float> w1, out Vector256<float> w2, out Vector256<float> w3);
            Vector256<float> d = Vector256.Create(Scale(row));
            a = Fma.MultiplyAdd(w0 * d, Vector256.Load(x + c), a);
            b = Fma.MultiplyAdd(w1 * d, Vector256.Load(x + c + 8), b);
            a = Fma.MultiplyAdd(w2 * d, Vector256.Load(x + c + 16), a);
            b = Fma.MultiplyAdd(w3 * d, Vector256.Load(x + c + 24), b);
        }

        return Vector256.Sum(a + b);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Dot4_256<TB>(byte* row, float* x, int cols, float* y, int ys, bool accumulate) where TB : IBlockFormat
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int c = 0; c < cols; c += BlockSize, row += TB.BlockBytes)
        {
            TB.Load256(row, out Vector256<float> w0, out Vector256<float> w1, out Vector256<float> w2, out Vector256<float> w3);
            Vector256<float> d = Vector256.Create(Scale(row));
            w0 *= d;
            w1 *= d;
            w2 *= d;
            w3 *= d;
            for (int k = 0; k < 4; k++)
            {
                float* xk = x + (long)k * cols + c;
                Vector256<float> s = Fma.MultiplyAdd(w0, Vector256.Load(xk), Fma.MultiplyAdd(w1, Vector256.Load(xk + 8),
                    Fma.MultiplyAdd(w2, Vector256.Load(xk + 16), w3 * Vector256.Load(xk + 24))));
                switch (k)
                {
                    case 0: a0 += s; break;
                    case 1: a1 += s; break;
                    case 2: a2 += s; break;
                    default: a3 += s; break;
                }
            }
        }

        Store(y, Vector256.Sum(a0), accumulate);
        Store(y + ys, Vector256.Sum(a1), accumulate);
        Store(y + 2L * ys, Vector256.Sum(a2), accumulate);
        Store(y + 3L * ys, Vector256.Sum(a3), accumulate);
    }

    internal static float DotScalar(byte* row, DType format, float* x, int cols)
    {
        if (format.IsKQuant())
        {
            return DotScalarK(row, format, x, cols);
        }

        float total = 0;
        for (int c = 0; c < cols; c += BlockSize)
        {
            float d = Scale(row), s = 0;
            byte* q = row + 2;
            if (format == DType.Q8_0)
            {
                for (int j = 0; j < BlockSize; j++)
                {
                    s += ((sbyte*)q)[j] * x[c + j];
                }

                row += 34;
            }
            else
            {
                for (int j = 0; j < 16; j++)
                {
                    s += ((q[j] & 0xF) - 8) * x[c + j] + ((q[j] >> 4) - 8) * x[c + j + 16];
                }

                row += 18;
            }

            total += d * s;
        }

        return total;
    }

    /// <summary>A row (or part of one) to float32: the embedding lookup of a quantized table.</summary>
    public static void DequantizeRow(byte* row, DType format, int cols, float* destination)
    {
        if (format.IsKQuant())
        {
            for (int c = 0; c < cols; c += KBlockSize, row += format.BlockBytes())
            {
                DequantizeSuperBlock(row, format, destination + c);
            }

            return;
        }

        for (int c = 0; c < cols; c += BlockSize)
        {
            float d = Scale(row);
            byte* q = row + 2;
            if (format == DType.Q8_0)
            {
                for (int j = 0; j < BlockSize; j++)
                {
                    destination[c + j] = d * ((sbyte*)q)[j];
                }

                row += 34;
            }
            else
            {
                for (int j = 0; j < 16; j++)
                {
                    destination[c + j] = d * ((q[j] & 0xF) - 8);
                    destination[c + j + 16] = d * ((q[j] >> 4) - 8);
                }

                row += 18;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* y, float value, bool accumulate) => *y = accumulate ? *y + value : value;
}

using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Kernels;

/// <summary>Products of activations with a stored weight matrix (<c>y = x · Wᵀ</c>).</summary>
/// <remarks>
/// Two paths, both parallel over output rows on the pool:
/// <list type="bullet">
/// <item>Decode (tokenCount 1, BF16): memory bound. Four rows stream at once, each bf16 vector split into its
/// even and odd elements by a shift and a mask against an activation permuted to match (see <see cref="ISimd{TV}"/>),
/// two accumulators per row.</item>
/// <item>Prefill (tokenCount ≥ 2 vectors): compute bound, an outer-product kernel without horizontal sums.
/// The activation is packed once per call into panels of 2·Count tokens, column-major
/// (<c>[panel][col][2·Count]</c>); a work item converts <see cref="PanelRowBlock"/> weight rows to float32
/// once into the worker's scratch and runs every panel through a register tile of 6 rows × 2 vectors of
/// tokens (12 accumulators; 12 rows × 2 vectors = 24 with Vector512), each step one weight broadcast per row
/// and two activation loads. Columns go in blocks of <see cref="PanelColumnBlock"/> (one block up to 4096:
/// measured here, splitting 2048-column products into 1024-column blocks cost 10-20%).</item>
/// <item>Small BF16 batches (2 ≤ tokenCount &lt; 2 vectors, batched decode): the decode kernel with tokens in
/// pairs, still streaming bf16 once (converting to float32 first cost more than the products here).</item>
/// <item>BF16 batches of 2 vectors..<see cref="TiledMaxTokens"/>−1 tokens under <see cref="BatchKernel.Hybrid"/> (the
/// default with AVX2), or from <see cref="TiledMinTokens"/> under <see cref="BatchKernel.Tiled"/>: register tiles in
/// dot-product form, each bf16 vector converted once per group of 3–5 tokens and used against all of them
/// (MatMul.Batch.cs), in place of the panels (and of the pair kernel).</item>
/// <item>Small F16/F32 batches and F16/F32 decode: a work item is a block of
/// <see cref="RowBlock"/> rows; A work item is a block of <see cref="RowBlock"/> rows;
/// it converts <see cref="ColumnBlock"/> columns of them to float32 once into the worker's scratch and reuses
/// them for every token through a register tile of 4 tokens × 4 rows (Vector512: 16 accumulators) or
/// 2 × 4 (narrower vectors), partial sums added into the destination per column block.</item>
/// </list>
/// <item>MLX affine weights (<see cref="AffineMatMul"/>): decode and batches under
/// <see cref="AffineMatMul.PanelTokens"/> tokens there; larger batches here through the prefill panels, each
/// row block dequantized to float32 once (<see cref="AffineMatMul.DequantizeRows"/>).</item>
/// <item>GGML block formats (<see cref="QuantMatMul"/>): likewise, below <see cref="QuantPanelTokens"/> tokens there,
/// from it on through the panels with each row block dequantized once (<see cref="QuantMatMul.DequantizeRow"/>) — except
/// the 8-row group formats, which stay there at every token count (<see cref="KernelSelection.QuantPrefill"/>).</item>
/// Accumulation is float32 throughout. <c>destination</c> must not overlap <c>x</c>. The kernels use the pool's
/// scratch memory, so one pool serves one calling thread at a time.
/// </remarks>
public static unsafe partial class MatMul
{
    internal const int RowBlock = 16;
    internal const int DecodeRowBlock = 64;
    internal const int ColumnBlock = 1024;
    internal const int PanelRowBlock = 48;

    /// <summary>
    /// From this many tokens on, GGML block formats (Q8_0, Q4_0, K-quants) go through the prefill panels, each row block
    /// dequantized to float32 once and reused by every token, instead of the matrix-vector kernels in groups of tokens:
    /// measured on Qwen3-1.7B shapes (Zen 4, 2 threads, quiet), a 512-token Q8_0 prefill ran at 20–25 tok/s through the
    /// matvec kernels against BF16's 74 through the panels.
    /// </summary>
    internal const int QuantPanelTokens = 32;
    internal const int PanelColumnBlock = 4096;

    /// <summary>
    /// Whether prefill products with <paramref name="dtype"/> stay on the int8 path (<see cref="KernelSelection.QuantPrefill"/>):
    /// the 8-row group formats where the AVX2 kernels run (their scalar twins would be slower than the panels).
    /// </summary>
    public static bool PrefillsInt8(DType dtype)
        => dtype.RowGroup() > 1 && KernelSelection.QuantPrefill == QuantPrefillKernel.Int8 && QuantMatMul.Best != QuantMatMul.Isa.Scalar;

    /// <summary>
    /// <paramref name="x"/> [tokenCount, w.ColCount] times <paramref name="w"/>ᵀ into
    /// <paramref name="destination"/> [tokenCount, w.RowCount]. tokenCount 1 is the decode matvec.
    /// </summary>
    public static void Multiply(WorkerPool pool, ReadOnlySpan<float> x, int tokenCount, in WeightView w, Span<float> destination)
        => Dispatch(pool, x, tokenCount, w, destination, accumulate: false, KernelSelection.Prefill);

    /// <summary>As <see cref="Multiply(WorkerPool, ReadOnlySpan{float}, int, in WeightView, Span{float})"/> with an explicit BF16 prefill kernel.</summary>
    public static void Multiply(WorkerPool pool, ReadOnlySpan<float> x, int tokenCount, in WeightView w, Span<float> destination,
        PrefillKernel prefill)
        => Dispatch(pool, x, tokenCount, w, destination, accumulate: false, prefill);

    /// <summary>As <see cref="Multiply(WorkerPool, ReadOnlySpan{float}, int, in WeightView, Span{float})"/> with explicit BF16 prefill and quantized decode kernels.</summary>
    public static void Multiply(WorkerPool pool, ReadOnlySpan<float> x, int tokenCount, in WeightView w, Span<float> destination,
        PrefillKernel prefill, QuantDecodeKernel quantDecode)
        => Dispatch(pool, x, tokenCount, w, destination, accumulate: false, prefill, quantDecode);

    /// <summary>
    /// As <see cref="Multiply(WorkerPool, ReadOnlySpan{float}, int, in WeightView, Span{float}, PrefillKernel, QuantDecodeKernel)"/>;
    /// with <paramref name="batchInvariant"/> every token's row is summed in the one order its decode (one-token)
    /// product uses, whatever the token count (see <see cref="SmallBatchBf16.Invariant"/>).
    /// </summary>
    public static void Multiply(WorkerPool pool, ReadOnlySpan<float> x, int tokenCount, in WeightView w, Span<float> destination,
        PrefillKernel prefill, QuantDecodeKernel quantDecode, bool batchInvariant)
        => Dispatch(pool, x, tokenCount, w, destination, accumulate: false, prefill, quantDecode, batchInvariant);

    /// <summary>As <see cref="Multiply(WorkerPool, ReadOnlySpan{float}, int, in WeightView, Span{float})"/> but adds into <paramref name="destination"/> (fused residual).</summary>
    public static void MultiplyAdd(WorkerPool pool, ReadOnlySpan<float> x, int tokenCount, in WeightView w, Span<float> destination)
        => Dispatch(pool, x, tokenCount, w, destination, accumulate: true, KernelSelection.Prefill);

    /// <summary>As <see cref="MultiplyAdd(WorkerPool, ReadOnlySpan{float}, int, in WeightView, Span{float})"/> with an explicit BF16 prefill kernel.</summary>
    public static void MultiplyAdd(WorkerPool pool, ReadOnlySpan<float> x, int tokenCount, in WeightView w, Span<float> destination,
        PrefillKernel prefill)
        => Dispatch(pool, x, tokenCount, w, destination, accumulate: true, prefill);

    /// <summary>As <see cref="MultiplyAdd(WorkerPool, ReadOnlySpan{float}, int, in WeightView, Span{float})"/> with explicit BF16 prefill and quantized decode kernels.</summary>
    public static void MultiplyAdd(WorkerPool pool, ReadOnlySpan<float> x, int tokenCount, in WeightView w, Span<float> destination,
        PrefillKernel prefill, QuantDecodeKernel quantDecode)
        => Dispatch(pool, x, tokenCount, w, destination, accumulate: true, prefill, quantDecode);

    /// <summary>As <see cref="MultiplyAdd(WorkerPool, ReadOnlySpan{float}, int, in WeightView, Span{float}, PrefillKernel, QuantDecodeKernel)"/>, batch invariant on request (see <see cref="Multiply(WorkerPool, ReadOnlySpan{float}, int, in WeightView, Span{float}, PrefillKernel, QuantDecodeKernel, bool)"/>).</summary>
    public static void MultiplyAdd(WorkerPool pool, ReadOnlySpan<float> x, int tokenCount, in WeightView w, Span<float> destination,
        PrefillKernel prefill, QuantDecodeKernel quantDecode, bool batchInvariant)
        => Dispatch(pool, x, tokenCount, w, destination, accumulate: true, prefill, quantDecode, batchInvariant);

    private static void Dispatch(WorkerPool pool, ReadOnlySpan<float> x, int tokenCount, in WeightView w, Span<float> destination,
        bool accumulate, PrefillKernel prefill)
        => Dispatch(pool, x, tokenCount, w, destination, accumulate, prefill, KernelSelection.QuantDecode);

    private static void Dispatch(WorkerPool pool, ReadOnlySpan<float> x, int tokenCount, in WeightView w, Span<float> destination,
        bool accumulate, PrefillKernel prefill, QuantDecodeKernel quantDecode, bool batchInvariant = false)
    {
        // Batch invariant: the block formats and MLX affine keep their matrix-vector kernels (each token's sum in the
        // decode order) at every token count, BF16 skips the JIT panels, and the float paths take SmallBatchBf16.Invariant.
        if (w.DType.IsBlockQuantized() && (tokenCount < QuantPanelTokens || batchInvariant || PrefillsInt8(w.DType)))
        {
            QuantMatMul.Run(QuantMatMul.Best, pool, x, tokenCount, w, destination, accumulate, quantDecode, batchInvariant);   // Q8_0, Q4_0, K-quants: Kernels/QuantMatMul.cs
            return;
        }

        if (w.DType == DType.Affine && (tokenCount < AffineMatMul.PanelTokens || batchInvariant))
        {
            AffineMatMul.Run(pool, x, tokenCount, w, destination, accumulate, batchInvariant);  // MLX affine: Kernels/AffineMatMul.cs
            return;
        }

        if (w.DType == DType.BF16 && tokenCount >= Bf16Prefill.MinTokens && prefill == PrefillKernel.JitBf16 && !batchInvariant)
        {
            Bf16Prefill.Run(pool, Bf16Prefill.Shared, x, tokenCount, w, destination, accumulate);   // Kernels/Bf16Prefill.cs
            return;
        }

        if (Vector512.IsHardwareAccelerated && w.ColCount >= Vector512<float>.Count * 2)
        {
            Run<Vector512<float>, Simd512>(pool, x, tokenCount, w, destination, accumulate, batchInvariant);
        }
        else if (Vector256.IsHardwareAccelerated && w.ColCount >= Vector256<float>.Count * 2)
        {
            Run<Vector256<float>, Simd256>(pool, x, tokenCount, w, destination, accumulate, batchInvariant);
        }
        else if (Vector128.IsHardwareAccelerated && w.ColCount >= Vector128<float>.Count * 2)
        {
            Run<Vector128<float>, Simd128>(pool, x, tokenCount, w, destination, accumulate, batchInvariant);
        }
        else
        {
            Run<float, SimdScalar>(pool, x, tokenCount, w, destination, accumulate, batchInvariant);
        }
    }

    /// <summary>One ISA's implementation (tests call each directly).</summary>
    internal static void Run<TV, TS>(WorkerPool pool, ReadOnlySpan<float> x, int tokenCount, in WeightView w,
        Span<float> destination, bool accumulate, bool batchInvariant = false)
        where TV : unmanaged where TS : ISimd<TV>
    {
        if (batchInvariant)
        {
            Run<TV, TS>(pool, x, tokenCount, w, destination, accumulate, DecodeKernel.FourRows, SmallBatchBf16.Invariant);
        }
        else
        {
            Run<TV, TS>(pool, x, tokenCount, w, destination, accumulate, KernelSelection.Decode, SmallBatchFor<TV, TS>(KernelSelection.Batch, tokenCount));
        }
    }

    /// <summary>The small-batch path <paramref name="kernel"/> gives <paramref name="tokenCount"/> tokens (BF16 only; see <see cref="BatchKernel"/>).</summary>
    internal static SmallBatchBf16 SmallBatchFor<TV, TS>(BatchKernel kernel, int tokenCount)
        where TV : unmanaged where TS : ISimd<TV>
        => tokenCount < TiledMaxTokens && kernel switch
        {
            BatchKernel.Tiled => tokenCount >= TiledMinTokens,
            BatchKernel.Hybrid => tokenCount >= 2 * TS.Count,
            _ => false,
        } ? SmallBatchBf16.Tiled : SmallBatchBf16.Stream;

    /// <summary>As above with an explicit decode kernel variant and small-batch path (tests and the A/B benches).</summary>
    internal static void Run<TV, TS>(WorkerPool pool, ReadOnlySpan<float> x, int tokenCount, in WeightView w,
        Span<float> destination, bool accumulate, DecodeKernel decodeKernel, SmallBatchBf16 smallBatch = SmallBatchBf16.Stream)
        where TV : unmanaged where TS : ISimd<TV>
    {
        ArgumentNullException.ThrowIfNull(pool);
        ArgumentOutOfRangeException.ThrowIfNegative(tokenCount);
        int rows = w.RowCount, cols = w.ColCount;
        if (x.Length < (long)tokenCount * cols)
        {
            ThrowLength(nameof(x), x.Length, (long)tokenCount * cols);
        }

        if (destination.Length < (long)tokenCount * rows)
        {
            ThrowLength(nameof(destination), destination.Length, (long)tokenCount * rows);
        }

        if (tokenCount == 0 || rows == 0)
        {
            return;
        }

        if (cols == 0)
        {
            if (!accumulate)
            {
                destination[..(tokenCount * rows)].Clear();
            }

            return;
        }

        if (w.DType.IsFloatGroups())
        {
            RunFloatGroups(pool, x, tokenCount, w, destination, accumulate);   // 8-row groups, every token count: MatMul.FloatGroups.cs
            return;
        }

        bool invariant = smallBatch == SmallBatchBf16.Invariant;
        fixed (float* px = x, py = destination)
        {
            if (w.DType == DType.BF16 && tokenCount < 2 * TS.Count && (tokenCount == 1 || smallBatch == SmallBatchBf16.Stream))
            {
                float* permuted = PermuteTokensForBf16<TV, TS>(pool, px, tokenCount, cols);

                // Decode: 64-row items (a 256 KiB contiguous stream for 2048 columns) when every thread still gets 4;
                // measured here over all qwen3-1.7b matrices, best of 12 interleaved sweeps: 16-row items 165.8 ms,
                // 32 rows 156.4 ms, 64 rows 151.4 ms (-9%), 128 rows 142.6 ms but worse medians (tail imbalance).
                int chunkRows = tokenCount == 1 && rows >= DecodeRowBlock * 4 * pool.ThreadCount ? DecodeRowBlock
                    : rows >= RowBlock * 4 * pool.ThreadCount ? RowBlock : 4;
                var job = new DecodeBf16Job<TV, TS>
                {
                    Weights = (ushort*)w.Data,
                    X = permuted,
                    Y = py,
                    TokenCount = tokenCount,
                    RowCount = rows,
                    ColCount = cols,
                    ChunkRows = chunkRows,
                    Accumulate = accumulate,
                    Kernel = invariant ? DecodeKernel.FourRows : decodeKernel,
                };
                pool.Run(ref job, (rows + chunkRows - 1) / chunkRows);
            }
            else if (w.DType == DType.BF16 && invariant)
            {
                float* permuted = PermuteTokensForBf16<TV, TS>(pool, px, tokenCount, cols);

                int chunkRows = TiledRowBlock;
                pool.EnsureWorkerScratch(2L * chunkRows * tokenCount * sizeof(TV));
                var job = new InvariantBf16Job<TV, TS>
                {
                    Weights = (ushort*)w.Data,
                    X = permuted,
                    Y = py,
                    TokenCount = tokenCount,
                    RowCount = rows,
                    ColCount = cols,
                    ChunkRows = chunkRows,
                    Accumulate = accumulate,
                    Scratch = pool.WorkerScratchTable,
                };
                pool.Run(ref job, (rows + chunkRows - 1) / chunkRows);
            }
            else if (w.DType == DType.BF16 && smallBatch == SmallBatchBf16.Tiled)
            {
                float* permuted = PermuteTokensForBf16<TV, TS>(pool, px, tokenCount, cols);

                int chunkRows = TiledRowBlock;
                pool.EnsureWorkerScratch((long)chunkRows * tokenCount * sizeof(TV));
                var job = new TiledBf16Job<TV, TS>
                {
                    Weights = (ushort*)w.Data,
                    X = permuted,
                    Y = py,
                    TokenCount = tokenCount,
                    RowCount = rows,
                    ColCount = cols,
                    ChunkRows = chunkRows,
                    Accumulate = accumulate,
                    Scratch = pool.WorkerScratchTable,
                };
                pool.Run(ref job, (rows + chunkRows - 1) / chunkRows);
            }
            else if (!invariant && (tokenCount >= 2 * TS.Count || w.DType == DType.BF16))
            {
                int panelTokens = 2 * TS.Count;
                int panelCount = (tokenCount + panelTokens - 1) / panelTokens;
                float* packed = (float*)pool.SharedScratch((long)panelCount * panelTokens * cols * sizeof(float));
                var pack = new PackJob { X = px, Packed = packed, TokenCount = tokenCount, ColCount = cols, PanelTokens = panelTokens };
                pool.Run(ref pack, panelCount);
                long weightFloats = w.DType == DType.F32 ? 0 : (long)PanelRowBlock * cols;
                pool.EnsureWorkerScratch((weightFloats + 64) * sizeof(float));

                var job = new PanelJob<TV, TS>
                {
                    Source = w,
                    Weights = w.Data,
                    DType = w.DType,
                    Packed = packed,
                    Y = py,
                    TokenCount = tokenCount,
                    RowCount = rows,
                    ColCount = cols,
                    Accumulate = accumulate,
                    Scratch = pool.WorkerScratchTable,
                };
                pool.Run(ref job, (rows + PanelRowBlock - 1) / PanelRowBlock);
            }
            else
            {
                if (w.DType != DType.F32)
                {
                    pool.EnsureWorkerScratch((long)RowBlock * ColumnBlock * sizeof(float));
                }

                var job = new TiledJob<TV, TS>
                {
                    Weights = w.Data,
                    DType = w.DType,
                    X = px,
                    Y = py,
                    TokenCount = tokenCount,
                    RowCount = rows,
                    ColCount = cols,
                    Accumulate = accumulate,
                    OneTokenAtATime = invariant,
                    Scratch = pool.WorkerScratchTable,
                };
                pool.Run(ref job, (rows + RowBlock - 1) / RowBlock);
            }
        }
    }

    /// <summary>
    /// Which path BF16 batches of 2..2·Count−1 tokens take: the streaming pair kernel (production), or the prefill
    /// panels with the batch zero-padded to one panel (kept for the A/B bench and the tests).
    /// </summary>
    internal enum SmallBatchBf16
    {
        Stream,
        Panel,
        Tiled,

        /// <summary>
        /// Batch invariant, at every token count (not only small batches) and for every float dtype: a token's sums
        /// take the order of its one-token product. BF16: the four-row decode kernel for one token, its order in
        /// 2 × 2 tiles (MatMul.Invariant.cs) for more; F32/F16: the row-block tiles one token at a time (the
        /// decode's 1 × 4 tile), never the panels.
        /// </summary>
        Invariant,
    }

    /// <summary>Every token's activations permuted for the bf16 pair loads, in the pool's shared scratch [tokenCount, cols].</summary>
    private static float* PermuteTokensForBf16<TV, TS>(WorkerPool pool, float* x, int tokenCount, int cols)
        where TV : unmanaged where TS : ISimd<TV>
    {
        float* permuted = (float*)pool.SharedScratch((long)tokenCount * cols * sizeof(float));
        for (int t = 0; t < tokenCount; t++)
        {
            PermuteForBf16<TV, TS>(x + (long)t * cols, cols, permuted + (long)t * cols);
        }

        return permuted;
    }

    internal static void ThrowLength(string name, int actual, long required)
        => throw new ArgumentException($"{name} has {actual} elements; the product needs at least {required}.", name);

    /// <summary>
    /// x [cols] to the order the bf16 pair loads produce: per block of 2·Count, the even elements then the odd
    /// ones; a tail shorter than a block stays in natural order.
    /// </summary>
    internal static void PermuteForBf16<TV, TS>(float* x, int cols, float* destination)
        where TV : unmanaged where TS : ISimd<TV>
    {
        int lanes = TS.Count, block = 2 * lanes;
        int main = cols - cols % block;
        int b = 0;
        if (typeof(TV) == typeof(Vector256<float>) && Avx2.IsSupported)
        {
            for (; b < main; b += block)
            {
                Vector256<float> lo = Avx.LoadVector256(x + b), hi = Avx.LoadVector256(x + b + 8);
                // [lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6], then the middle 64-bit lanes swapped: lo's evens, hi's evens.
                Vector256<double> even = Avx.Shuffle(lo, hi, 0b10_00_10_00).AsDouble();
                Vector256<double> odd = Avx.Shuffle(lo, hi, 0b11_01_11_01).AsDouble();
                Avx.Store(destination + b, Avx2.Permute4x64(even, 0b11_01_10_00).AsSingle());
                Avx.Store(destination + b + 8, Avx2.Permute4x64(odd, 0b11_01_10_00).AsSingle());
            }
        }

        for (; b < main; b += block)
        {
            for (int j = 0; j < lanes; j++)
            {
                destination[b + j] = x[b + 2 * j];
                destination[b + lanes + j] = x[b + 2 * j + 1];
            }
        }

        for (int c = main; c < cols; c++)
        {
            destination[c] = x[c];
        }
    }

    private struct DecodeBf16Job<TV, TS> : IPoolJob where TV : unmanaged where TS : ISimd<TV>
    {
        public ushort* Weights;   // [RowCount, ColCount]
        public float* X;          // [TokenCount, ColCount], each row permuted
        public float* Y;          // [TokenCount, RowCount]
        public int TokenCount, RowCount, ColCount, ChunkRows;
        public bool Accumulate;
        public DecodeKernel Kernel;

        public readonly void Execute(int index, int worker)
        {
            int r0 = index * ChunkRows;
            int r1 = Math.Min(r0 + ChunkRows, RowCount);
            bool oneRow = Kernel == DecodeKernel.OneRow;
            if (TokenCount == 1 && oneRow)
            {
                DecodeRowBf16<TV, TS>(Weights, ColCount, X, r0, r1, Y, Accumulate);
            }
            else if (TokenCount == 1 && Kernel == DecodeKernel.FourStreams)
            {
                DecodeFourStreamsBf16<TV, TS>(Weights, ColCount, X, r0, r1, Y, Accumulate);
            }
            else if (TokenCount == 1)
            {
                DecodeRowsBf16<TV, TS>(Weights, ColCount, X, r0, r1, Y, Accumulate);
            }
            else
            {
                BatchRowsBf16<TV, TS>(Weights, ColCount, X, TokenCount, r0, r1, Y, RowCount, Accumulate, prefetch: true);
            }
        }
    }

    /// <summary>
    /// Rows one at a time, one sequential stream, four independent accumulators (even/odd × two blocks), no
    /// software prefetch: the hardware prefetchers follow a single stream better than four page-long ones.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DecodeRowBf16<TV, TS>(ushort* w, int cols, float* xp, int r0, int r1, float* y, bool accumulate)
        where TV : unmanaged where TS : ISimd<TV>
    {
        int lanes = TS.Count, block = 2 * lanes;
        int main = cols - cols % block;
        int main2 = main - main % (2 * block);
        for (int r = r0; r < r1; r++)
        {
            ushort* p = w + (long)r * cols;
            TV a0 = TS.Zero, b0 = TS.Zero, a1 = TS.Zero, b1 = TS.Zero;
            int c = 0;
            for (; c < main2; c += 2 * block)
            {
                TS.LoadBf16Pair(p + c, out TV e, out TV o);
                a0 = TS.MultiplyAdd(e, TS.Load(xp + c), a0);
                b0 = TS.MultiplyAdd(o, TS.Load(xp + c + lanes), b0);
                TS.LoadBf16Pair(p + c + block, out e, out o);
                a1 = TS.MultiplyAdd(e, TS.Load(xp + c + block), a1);
                b1 = TS.MultiplyAdd(o, TS.Load(xp + c + block + lanes), b1);
            }

            for (; c < main; c += block)
            {
                TS.LoadBf16Pair(p + c, out TV e, out TV o);
                a0 = TS.MultiplyAdd(e, TS.Load(xp + c), a0);
                b0 = TS.MultiplyAdd(o, TS.Load(xp + c + lanes), b0);
            }

            Store(y + r, TS.Sum(TS.Add(TS.Add(a0, b0), TS.Add(a1, b1))) + Bf16Tail(p, xp, main, cols), accumulate);
        }
    }

    /// <summary>
    /// The item's rows as four streams side by side: quarter j is rows r0 + j·q .. r0 + (j+1)·q − 1 (q = ⌊n / 4⌋, 64 KiB
    /// of 2048-column rows in a 64-row item), and pass i reads row i of each quarter, so each stream runs on through its
    /// quarter's rows without a break and the four are far apart (the quantized decode's four-stream walk). No software
    /// prefetch; per row the arithmetic of <see cref="DecodeRowBf16"/> in its order (16 accumulators: the same bits).
    /// Rows past 4q take the one-row kernel.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DecodeFourStreamsBf16<TV, TS>(ushort* w, int cols, float* xp, int r0, int r1, float* y, bool accumulate)
        where TV : unmanaged where TS : ISimd<TV>
    {
        int q = (r1 - r0) / 4;
        int lanes = TS.Count, block = 2 * lanes;
        int main = cols - cols % block;
        int main2 = main - main % (2 * block);
        long stride = (long)q * cols;
        for (int i = 0; i < q; i++)
        {
            int r = r0 + i;
            ushort* p0 = w + (long)r * cols, p1 = p0 + stride, p2 = p1 + stride, p3 = p2 + stride;
            TV a0 = TS.Zero, b0 = TS.Zero, c0 = TS.Zero, d0 = TS.Zero;
            TV a1 = TS.Zero, b1 = TS.Zero, c1 = TS.Zero, d1 = TS.Zero;
            TV a2 = TS.Zero, b2 = TS.Zero, c2 = TS.Zero, d2 = TS.Zero;
            TV a3 = TS.Zero, b3 = TS.Zero, c3 = TS.Zero, d3 = TS.Zero;
            int c = 0;
            for (; c < main2; c += 2 * block)
            {
                Bf16BlockOfFour<TV, TS>(p0, p1, p2, p3, c, xp, ref a0, ref b0, ref a1, ref b1, ref a2, ref b2, ref a3, ref b3);
                Bf16BlockOfFour<TV, TS>(p0, p1, p2, p3, c + block, xp, ref c0, ref d0, ref c1, ref d1, ref c2, ref d2, ref c3, ref d3);
            }

            for (; c < main; c += block)
            {
                Bf16BlockOfFour<TV, TS>(p0, p1, p2, p3, c, xp, ref a0, ref b0, ref a1, ref b1, ref a2, ref b2, ref a3, ref b3);
            }

            Store(y + r, TS.Sum(TS.Add(TS.Add(a0, b0), TS.Add(c0, d0))) + Bf16Tail(p0, xp, main, cols), accumulate);
            Store(y + r + q, TS.Sum(TS.Add(TS.Add(a1, b1), TS.Add(c1, d1))) + Bf16Tail(p1, xp, main, cols), accumulate);
            Store(y + r + 2 * q, TS.Sum(TS.Add(TS.Add(a2, b2), TS.Add(c2, d2))) + Bf16Tail(p2, xp, main, cols), accumulate);
            Store(y + r + 3 * q, TS.Sum(TS.Add(TS.Add(a3, b3), TS.Add(c3, d3))) + Bf16Tail(p3, xp, main, cols), accumulate);
        }

        DecodeRowBf16<TV, TS>(w, cols, xp, r0 + 4 * q, r1, y, accumulate);
    }

    /// <summary>One block (2 vectors of columns from <paramref name="c"/>) of four rows: even elements into a, odd into b.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Bf16BlockOfFour<TV, TS>(ushort* p0, ushort* p1, ushort* p2, ushort* p3, int c, float* xp,
        ref TV a0, ref TV b0, ref TV a1, ref TV b1, ref TV a2, ref TV b2, ref TV a3, ref TV b3)
        where TV : unmanaged where TS : ISimd<TV>
    {
        TV xe = TS.Load(xp + c), xo = TS.Load(xp + c + TS.Count);
        TS.LoadBf16Pair(p0 + c, out TV e, out TV o);
        a0 = TS.MultiplyAdd(e, xe, a0);
        b0 = TS.MultiplyAdd(o, xo, b0);
        TS.LoadBf16Pair(p1 + c, out e, out o);
        a1 = TS.MultiplyAdd(e, xe, a1);
        b1 = TS.MultiplyAdd(o, xo, b1);
        TS.LoadBf16Pair(p2 + c, out e, out o);
        a2 = TS.MultiplyAdd(e, xe, a2);
        b2 = TS.MultiplyAdd(o, xo, b2);
        TS.LoadBf16Pair(p3 + c, out e, out o);
        a3 = TS.MultiplyAdd(e, xe, a3);
        b3 = TS.MultiplyAdd(o, xo, b3);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DecodeRowsBf16<TV, TS>(ushort* w, int cols, float* xp, int r0, int r1, float* y, bool accumulate)
        where TV : unmanaged where TS : ISimd<TV>
    {
        int lanes = TS.Count, block = 2 * lanes;
        int main = cols - cols % block;
        int r = r0;
        for (; r + 4 <= r1; r += 4)
        {
            ushort* p0 = w + (long)r * cols;
            ushort* p1 = p0 + cols;
            ushort* p2 = p1 + cols;
            ushort* p3 = p2 + cols;
            TV a0 = TS.Zero, b0 = TS.Zero, a1 = TS.Zero, b1 = TS.Zero;
            TV a2 = TS.Zero, b2 = TS.Zero, a3 = TS.Zero, b3 = TS.Zero;
            ushort* next = p0 + 4L * cols;     // the next group of rows, streamed in ahead (rows are short streams)
            for (int c = 0; c < main; c += block)
            {
                if (((c * sizeof(ushort)) & 63) == 0)
                {
                    SimdMath.Prefetch(next + c);
                    SimdMath.Prefetch(next + cols + c);
                    SimdMath.Prefetch(next + 2 * cols + c);
                    SimdMath.Prefetch(next + 3 * cols + c);
                }

                Bf16BlockOfFour<TV, TS>(p0, p1, p2, p3, c, xp, ref a0, ref b0, ref a1, ref b1, ref a2, ref b2, ref a3, ref b3);
            }

            Store(y + r, TS.Sum(TS.Add(a0, b0)) + Bf16Tail(p0, xp, main, cols), accumulate);
            Store(y + r + 1, TS.Sum(TS.Add(a1, b1)) + Bf16Tail(p1, xp, main, cols), accumulate);
            Store(y + r + 2, TS.Sum(TS.Add(a2, b2)) + Bf16Tail(p2, xp, main, cols), accumulate);
            Store(y + r + 3, TS.Sum(TS.Add(a3, b3)) + Bf16Tail(p3, xp, main, cols), accumulate);
        }

        for (; r < r1; r++)
        {
            ushort* p = w + (long)r * cols;
            TV a = TS.Zero, b = TS.Zero;
            for (int c = 0; c < main; c += block)
            {
                TS.LoadBf16Pair(p + c, out TV e, out TV o);
                a = TS.MultiplyAdd(e, TS.Load(xp + c), a);
                b = TS.MultiplyAdd(o, TS.Load(xp + c + lanes), b);
            }

            Store(y + r, TS.Sum(TS.Add(a, b)) + Bf16Tail(p, xp, main, cols), accumulate);
        }
    }

    /// <summary>
    /// A few tokens (batched decode) straight from bf16: per group of 4 rows, tokens in pairs (8 accumulators),
    /// the rows' bf16 data re-read from L1 for each pair instead of converted to float32.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void BatchRowsBf16<TV, TS>(ushort* w, int cols, float* xp, int tokenCount, int r0, int r1, float* y,
        int rowCount, bool accumulate, bool prefetch = true)
        where TV : unmanaged where TS : ISimd<TV>
    {
        int lanes = TS.Count, block = 2 * lanes;
        int main = cols - cols % block;
        int r = r0;
        for (; r + 4 <= r1; r += 4)
        {
            ushort* p0 = w + (long)r * cols;
            ushort* p1 = p0 + cols;
            ushort* p2 = p1 + cols;
            ushort* p3 = p2 + cols;
            ushort* next = p0 + 4L * cols;
            int t = 0;
            for (; t + 2 <= tokenCount; t += 2)
            {
                float* xa = xp + (long)t * cols;
                float* xb = xa + cols;
                TV a0 = TS.Zero, a1 = TS.Zero, a2 = TS.Zero, a3 = TS.Zero;
                TV b0 = TS.Zero, b1 = TS.Zero, b2 = TS.Zero, b3 = TS.Zero;
                for (int c = 0; c < main; c += block)
                {
                    if (prefetch && t == 0 && ((c * sizeof(ushort)) & 63) == 0)
                    {
                        SimdMath.Prefetch(next + c);
                        SimdMath.Prefetch(next + cols + c);
                        SimdMath.Prefetch(next + 2 * cols + c);
                        SimdMath.Prefetch(next + 3 * cols + c);
                    }

                    TV xae = TS.Load(xa + c), xao = TS.Load(xa + c + lanes);
                    TV xbe = TS.Load(xb + c), xbo = TS.Load(xb + c + lanes);
                    TS.LoadBf16Pair(p0 + c, out TV e, out TV o);
                    a0 = TS.MultiplyAdd(o, xao, TS.MultiplyAdd(e, xae, a0));
                    b0 = TS.MultiplyAdd(o, xbo, TS.MultiplyAdd(e, xbe, b0));
                    TS.LoadBf16Pair(p1 + c, out e, out o);
                    a1 = TS.MultiplyAdd(o, xao, TS.MultiplyAdd(e, xae, a1));
                    b1 = TS.MultiplyAdd(o, xbo, TS.MultiplyAdd(e, xbe, b1));
                    TS.LoadBf16Pair(p2 + c, out e, out o);
                    a2 = TS.MultiplyAdd(o, xao, TS.MultiplyAdd(e, xae, a2));
                    b2 = TS.MultiplyAdd(o, xbo, TS.MultiplyAdd(e, xbe, b2));
                    TS.LoadBf16Pair(p3 + c, out e, out o);
                    a3 = TS.MultiplyAdd(o, xao, TS.MultiplyAdd(e, xae, a3));
                    b3 = TS.MultiplyAdd(o, xbo, TS.MultiplyAdd(e, xbe, b3));
                }

                float* ya = y + (long)t * rowCount + r;
                float* yb = ya + rowCount;
                Store(ya, TS.Sum(a0) + Bf16Tail(p0, xa, main, cols), accumulate);
                Store(ya + 1, TS.Sum(a1) + Bf16Tail(p1, xa, main, cols), accumulate);
                Store(ya + 2, TS.Sum(a2) + Bf16Tail(p2, xa, main, cols), accumulate);
                Store(ya + 3, TS.Sum(a3) + Bf16Tail(p3, xa, main, cols), accumulate);
                Store(yb, TS.Sum(b0) + Bf16Tail(p0, xb, main, cols), accumulate);
                Store(yb + 1, TS.Sum(b1) + Bf16Tail(p1, xb, main, cols), accumulate);
                Store(yb + 2, TS.Sum(b2) + Bf16Tail(p2, xb, main, cols), accumulate);
                Store(yb + 3, TS.Sum(b3) + Bf16Tail(p3, xb, main, cols), accumulate);
            }

            if (t < tokenCount)
            {
                DecodeRow<TV, TS>(w, cols, xp + (long)t * cols, r, r + 4, y + (long)t * rowCount, accumulate, prefetch);
            }
        }

        for (int t = 0; r < r1 && t < tokenCount; t++)
        {
            DecodeRow<TV, TS>(w, cols, xp + (long)t * cols, r, r1, y + (long)t * rowCount, accumulate, prefetch);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void DecodeRow<TV, TS>(ushort* w, int cols, float* xp, int r0, int r1, float* y, bool accumulate, bool fourRows)
        where TV : unmanaged where TS : ISimd<TV>
    {
        if (fourRows)
        {
            DecodeRowsBf16<TV, TS>(w, cols, xp, r0, r1, y, accumulate);
        }
        else
        {
            DecodeRowBf16<TV, TS>(w, cols, xp, r0, r1, y, accumulate);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Bf16Tail(ushort* p, float* x, int from, int to)
    {
        float sum = 0;
        for (int c = from; c < to; c++)
        {
            sum += BitConverter.UInt32BitsToSingle((uint)p[c] << 16) * x[c];
        }

        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* y, float value, bool accumulate) => *y = accumulate ? *y + value : value;

    private struct TiledJob<TV, TS> : IPoolJob where TV : unmanaged where TS : ISimd<TV>
    {
        public byte* Weights;     // [RowCount, ColCount] of DType
        public DType DType;
        public float* X;          // [TokenCount, ColCount]
        public float* Y;          // [TokenCount, RowCount]
        public int TokenCount, RowCount, ColCount;
        public bool Accumulate, OneTokenAtATime;
        public void** Scratch;    // per worker: [RowBlock, ColumnBlock] floats

        public readonly void Execute(int index, int worker)
            => TiledRows<TV, TS>(Weights, DType, X, TokenCount, RowCount, ColCount, index * RowBlock,
                (float*)Scratch[worker], Y, Accumulate, OneTokenAtATime);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TiledRows<TV, TS>(byte* weights, DType dtype, float* x, int tokenCount, int rowCount, int cols,
        int r0, float* scratch, float* y, bool accumulate, bool oneTokenAtATime)
        where TV : unmanaged where TS : ISimd<TV>
    {
        int r1 = Math.Min(r0 + RowBlock, rowCount);
        int rows = r1 - r0;
        for (int k0 = 0; k0 < cols; k0 += ColumnBlock)
        {
            int kn = Math.Min(ColumnBlock, cols - k0);
            float* wb;           // [rows, kn] with row stride ws
            long ws;
            if (dtype == DType.F32)
            {
                wb = (float*)weights + (long)r0 * cols + k0;
                ws = cols;
            }
            else
            {
                ConvertBlock<TV, TS>((ushort*)weights + (long)r0 * cols + k0, cols, dtype, rows, kn, scratch);
                wb = scratch;
                ws = kn;
            }

            bool add = accumulate || k0 > 0;
            float* xb = x + k0;
            int t = 0;
            if (TS.WideTile && !oneTokenAtATime)    // batch invariant: every token through the decode's 1 × 4 tiles below
            {
                for (; t + 4 <= tokenCount; t += 4)
                {
                    int r = 0;
                    for (; r + 4 <= rows; r += 4)
                    {
                        Tile4x4<TV, TS>(xb + (long)t * cols, cols, wb + r * ws, ws, kn, y + (long)t * rowCount + r0 + r, rowCount, add);
                    }

                    for (; r < rows; r++)
                    {
                        for (int tt = t; tt < t + 4; tt++)
                        {
                            Dot1<TV, TS>(xb + (long)tt * cols, wb + r * ws, kn, y + (long)tt * rowCount + r0 + r, add);
                        }
                    }
                }
            }

            for (; t + 2 <= tokenCount && !oneTokenAtATime; t += 2)
            {
                int r = 0;
                for (; r + 4 <= rows; r += 4)
                {
                    Tile2x4<TV, TS>(xb + (long)t * cols, cols, wb + r * ws, ws, kn, y + (long)t * rowCount + r0 + r, rowCount, add);
                }

                for (; r < rows; r++)
                {
                    Dot1<TV, TS>(xb + (long)t * cols, wb + r * ws, kn, y + (long)t * rowCount + r0 + r, add);
                    Dot1<TV, TS>(xb + (long)(t + 1) * cols, wb + r * ws, kn, y + (long)(t + 1) * rowCount + r0 + r, add);
                }
            }

            for (; t < tokenCount; t++)
            {
                int r = 0;
                for (; r + 4 <= rows; r += 4)
                {
                    Tile1x4<TV, TS>(xb + (long)t * cols, wb + r * ws, ws, kn, y + (long)t * rowCount + r0 + r, add);
                }

                for (; r < rows; r++)
                {
                    Dot1<TV, TS>(xb + (long)t * cols, wb + r * ws, kn, y + (long)t * rowCount + r0 + r, add);
                }
            }
        }
    }

    /// <summary>x [tokenCount, cols] into panels [panelCount][cols][panelTokens], zero past the last token.</summary>
    private struct PackJob : IPoolJob
    {
        public float* X;
        public float* Packed;
        public int TokenCount, ColCount, PanelTokens;

        public readonly void Execute(int index, int worker)
        {
            int cols = ColCount, nr = PanelTokens;
            float* panel = Packed + (long)index * cols * nr;
            for (int j = 0; j < nr; j++)
            {
                int t = index * nr + j;
                if (t < TokenCount)
                {
                    float* xt = X + (long)t * cols;
                    for (int k = 0; k < cols; k++)
                    {
                        panel[(long)k * nr + j] = xt[k];
                    }
                }
                else
                {
                    for (int k = 0; k < cols; k++)
                    {
                        panel[(long)k * nr + j] = 0;
                    }
                }
            }
        }
    }

    private struct PanelJob<TV, TS> : IPoolJob where TV : unmanaged where TS : ISimd<TV>
    {
        public WeightView Source; // the matrix (affine: its codes, scales and biases)
        public byte* Weights;     // [RowCount, ColCount] of DType
        public DType DType;
        public float* Packed;     // [panelCount][ColCount][2 * TS.Count]
        public float* Y;          // [TokenCount, RowCount]
        public int TokenCount, RowCount, ColCount;
        public bool Accumulate;
        public void** Scratch;    // per worker: [PanelRowBlock, ColCount] floats + a 64-float spill area

        public readonly void Execute(int index, int worker)
            => PanelRows<TV, TS>(Weights, DType, Packed, TokenCount, RowCount, ColCount, index * PanelRowBlock,
                (float*)Scratch[worker], Y, Accumulate, Source);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PanelRows<TV, TS>(byte* weights, DType dtype, float* packed, int tokenCount, int rowCount, int cols,
        int r0, float* scratch, float* y, bool accumulate, in WeightView source)
        where TV : unmanaged where TS : ISimd<TV>
    {
        int rows = Math.Min(PanelRowBlock, rowCount - r0);
        int nr = 2 * TS.Count;
        float* wb;               // [rows, cols]
        float* spill;            // [2 * TS.Count] accumulators on their way to y
        if (dtype == DType.F32)
        {
            wb = (float*)weights + (long)r0 * cols;
            spill = scratch;
        }
        else if (dtype == DType.Affine)
        {
            AffineMatMul.DequantizeRows(source, r0, rows, scratch);   // MLX affine (prefill): to float32 once per row block
            wb = scratch;
            spill = scratch + (long)PanelRowBlock * cols;
        }
        else if (dtype.IsBlockQuantized())
        {
            for (int r = 0; r < rows; r++)                              // GGML blocks (prefill): to float32 once per row block
            {
                QuantMatMul.DequantizeRow(source, r0 + r, scratch + (long)r * cols);
            }

            wb = scratch;
            spill = scratch + (long)PanelRowBlock * cols;
        }
        else
        {
            ConvertBlock<TV, TS>((ushort*)weights + (long)r0 * cols, cols, dtype, rows, cols, scratch);
            wb = scratch;
            spill = scratch + (long)PanelRowBlock * cols;
        }

        // Column blocks keep a panel's slice [PanelColumnBlock, nr] in L2 while every row group of the block
        // passes over it; blocks after the first add into y.
        for (int k0 = 0; k0 < cols; k0 += PanelColumnBlock)
        {
            int kn = Math.Min(PanelColumnBlock, cols - k0);
            bool add = accumulate || k0 > 0;
            for (int t0 = 0; t0 < tokenCount; t0 += nr)
            {
                float* panel = packed + (long)t0 * cols + (long)k0 * nr;
                int tokens = Math.Min(nr, tokenCount - t0);
                float* yt = y + (long)t0 * rowCount + r0;
                float* wk = wb + k0;
                int r = 0;
                if (TS.WideTile)
                {
                    for (; r + 12 <= rows; r += 12)
                    {
                        Panel12<TV, TS>(panel, wk + (long)r * cols, cols, kn, yt + r, rowCount, tokens, add, spill);
                    }
                }

                for (; r + 6 <= rows; r += 6)
                {
                    Panel6<TV, TS>(panel, wk + (long)r * cols, cols, kn, yt + r, rowCount, tokens, add, spill);
                }

                for (; r < rows; r++)
                {
                    Panel1<TV, TS>(panel, wk + (long)r * cols, kn, yt + r, rowCount, tokens, add, spill);
                }
            }
        }
    }

    /// <summary>Writes one row's accumulators (tokens along the vector) to y[t, row] for the panel's valid tokens.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StorePanelRow<TV, TS>(TV lo, TV hi, float* y, int ys, int tokens, bool add, float* spill)
        where TV : unmanaged where TS : ISimd<TV>
    {
        TS.Store(lo, spill);
        TS.Store(hi, spill + TS.Count);
        for (int j = 0; j < tokens; j++)
        {
            Store(y + (long)j * ys, spill[j], add);
        }
    }

    /// <summary>6 rows × 2 vectors of tokens over kn columns: 12 accumulators, no horizontal sums.</summary>
    /// <remarks>Not inlined, so the register allocator sees only this loop: two row pointers and two strides
    /// address the six rows (no spills with 16 general registers).</remarks>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Panel6<TV, TS>(float* panel, float* w, int cols, int kn, float* y, int ys, int tokens, bool add, float* spill)
        where TV : unmanaged where TS : ISimd<TV>
    {
        int lanes = TS.Count, nr = 2 * lanes;
        long c1 = cols, c2 = 2L * cols;
        float* a = w, d = w + 3L * cols, end = w + kn;
        TV c00 = TS.Zero, c01 = TS.Zero, c10 = TS.Zero, c11 = TS.Zero, c20 = TS.Zero, c21 = TS.Zero;
        TV c30 = TS.Zero, c31 = TS.Zero, c40 = TS.Zero, c41 = TS.Zero, c50 = TS.Zero, c51 = TS.Zero;
        float* p = panel;
        for (; a < end; a++, d++, p += nr)
        {
            TV xa = TS.Load(p), xb = TS.Load(p + lanes);
            TV b = TS.Broadcast(*a);
            c00 = TS.MultiplyAdd(b, xa, c00); c01 = TS.MultiplyAdd(b, xb, c01);
            b = TS.Broadcast(a[c1]);
            c10 = TS.MultiplyAdd(b, xa, c10); c11 = TS.MultiplyAdd(b, xb, c11);
            b = TS.Broadcast(a[c2]);
            c20 = TS.MultiplyAdd(b, xa, c20); c21 = TS.MultiplyAdd(b, xb, c21);
            b = TS.Broadcast(*d);
            c30 = TS.MultiplyAdd(b, xa, c30); c31 = TS.MultiplyAdd(b, xb, c31);
            b = TS.Broadcast(d[c1]);
            c40 = TS.MultiplyAdd(b, xa, c40); c41 = TS.MultiplyAdd(b, xb, c41);
            b = TS.Broadcast(d[c2]);
            c50 = TS.MultiplyAdd(b, xa, c50); c51 = TS.MultiplyAdd(b, xb, c51);
        }

        StorePanelRow<TV, TS>(c00, c01, y, ys, tokens, add, spill);
        StorePanelRow<TV, TS>(c10, c11, y + 1, ys, tokens, add, spill);
        StorePanelRow<TV, TS>(c20, c21, y + 2, ys, tokens, add, spill);
        StorePanelRow<TV, TS>(c30, c31, y + 3, ys, tokens, add, spill);
        StorePanelRow<TV, TS>(c40, c41, y + 4, ys, tokens, add, spill);
        StorePanelRow<TV, TS>(c50, c51, y + 5, ys, tokens, add, spill);
    }

    /// <summary>12 rows × 2 vectors of tokens: 24 accumulators, for 32-register machines (AVX-512).</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Panel12<TV, TS>(float* panel, float* w, int cols, int kn, float* y, int ys, int tokens, bool add, float* spill)
        where TV : unmanaged where TS : ISimd<TV>
    {
        int lanes = TS.Count, nr = 2 * lanes;
        long c1 = cols, c2 = 2L * cols;
        float* a = w, d = w + 3L * cols, e = w + 6L * cols, f = w + 9L * cols, end = w + kn;
        TV c00 = TS.Zero, c01 = TS.Zero, c10 = TS.Zero, c11 = TS.Zero, c20 = TS.Zero, c21 = TS.Zero;
        TV c30 = TS.Zero, c31 = TS.Zero, c40 = TS.Zero, c41 = TS.Zero, c50 = TS.Zero, c51 = TS.Zero;
        TV c60 = TS.Zero, c61 = TS.Zero, c70 = TS.Zero, c71 = TS.Zero, c80 = TS.Zero, c81 = TS.Zero;
        TV c90 = TS.Zero, c91 = TS.Zero, cA0 = TS.Zero, cA1 = TS.Zero, cB0 = TS.Zero, cB1 = TS.Zero;
        float* p = panel;
        for (; a < end; a++, d++, e++, f++, p += nr)
        {
            TV xa = TS.Load(p), xb = TS.Load(p + lanes);
            TV b = TS.Broadcast(*a);
            c00 = TS.MultiplyAdd(b, xa, c00); c01 = TS.MultiplyAdd(b, xb, c01);
            b = TS.Broadcast(a[c1]);
            c10 = TS.MultiplyAdd(b, xa, c10); c11 = TS.MultiplyAdd(b, xb, c11);
            b = TS.Broadcast(a[c2]);
            c20 = TS.MultiplyAdd(b, xa, c20); c21 = TS.MultiplyAdd(b, xb, c21);
            b = TS.Broadcast(*d);
            c30 = TS.MultiplyAdd(b, xa, c30); c31 = TS.MultiplyAdd(b, xb, c31);
            b = TS.Broadcast(d[c1]);
            c40 = TS.MultiplyAdd(b, xa, c40); c41 = TS.MultiplyAdd(b, xb, c41);
            b = TS.Broadcast(d[c2]);
            c50 = TS.MultiplyAdd(b, xa, c50); c51 = TS.MultiplyAdd(b, xb, c51);
            b = TS.Broadcast(*e);
            c60 = TS.MultiplyAdd(b, xa, c60); c61 = TS.MultiplyAdd(b, xb, c61);
            b = TS.Broadcast(e[c1]);
            c70 = TS.MultiplyAdd(b, xa, c70); c71 = TS.MultiplyAdd(b, xb, c71);
            b = TS.Broadcast(e[c2]);
            c80 = TS.MultiplyAdd(b, xa, c80); c81 = TS.MultiplyAdd(b, xb, c81);
            b = TS.Broadcast(*f);
            c90 = TS.MultiplyAdd(b, xa, c90); c91 = TS.MultiplyAdd(b, xb, c91);
            b = TS.Broadcast(f[c1]);
            cA0 = TS.MultiplyAdd(b, xa, cA0); cA1 = TS.MultiplyAdd(b, xb, cA1);
            b = TS.Broadcast(f[c2]);
            cB0 = TS.MultiplyAdd(b, xa, cB0); cB1 = TS.MultiplyAdd(b, xb, cB1);
        }

        StorePanelRow<TV, TS>(c00, c01, y, ys, tokens, add, spill);
        StorePanelRow<TV, TS>(c10, c11, y + 1, ys, tokens, add, spill);
        StorePanelRow<TV, TS>(c20, c21, y + 2, ys, tokens, add, spill);
        StorePanelRow<TV, TS>(c30, c31, y + 3, ys, tokens, add, spill);
        StorePanelRow<TV, TS>(c40, c41, y + 4, ys, tokens, add, spill);
        StorePanelRow<TV, TS>(c50, c51, y + 5, ys, tokens, add, spill);
        StorePanelRow<TV, TS>(c60, c61, y + 6, ys, tokens, add, spill);
        StorePanelRow<TV, TS>(c70, c71, y + 7, ys, tokens, add, spill);
        StorePanelRow<TV, TS>(c80, c81, y + 8, ys, tokens, add, spill);
        StorePanelRow<TV, TS>(c90, c91, y + 9, ys, tokens, add, spill);
        StorePanelRow<TV, TS>(cA0, cA1, y + 10, ys, tokens, add, spill);
        StorePanelRow<TV, TS>(cB0, cB1, y + 11, ys, tokens, add, spill);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Panel1<TV, TS>(float* panel, float* w, int kn, float* y, int ys, int tokens, bool add, float* spill)
        where TV : unmanaged where TS : ISimd<TV>
    {
        int lanes = TS.Count, nr = 2 * lanes;
        TV c0 = TS.Zero, c1 = TS.Zero;
        float* p = panel;
        for (int k = 0; k < kn; k++, p += nr)
        {
            TV b = TS.Broadcast(w[k]);
            c0 = TS.MultiplyAdd(b, TS.Load(p), c0);
            c1 = TS.MultiplyAdd(b, TS.Load(p + lanes), c1);
        }

        StorePanelRow<TV, TS>(c0, c1, y, ys, tokens, add, spill);
    }

    /// <summary>rows × kn elements of a bf16/f16 matrix (row stride <paramref name="stride"/>) to float32 [rows, kn].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ConvertBlock<TV, TS>(ushort* source, int stride, DType dtype, int rows, int kn, float* destination)
        where TV : unmanaged where TS : ISimd<TV>
    {
        int block = 2 * TS.Count;
        int main = kn - kn % block;
        for (int i = 0; i < rows; i++)
        {
            ushort* s = source + (long)i * stride;
            float* d = destination + (long)i * kn;
            if (dtype == DType.BF16)
            {
                for (int c = 0; c < main; c += block)
                {
                    TS.Bf16ToSingle(s + c, d + c);
                }

                for (int c = main; c < kn; c++)
                {
                    d[c] = BitConverter.UInt32BitsToSingle((uint)s[c] << 16);
                }
            }
            else
            {
                for (int c = 0; c < main; c += block)
                {
                    TS.F16ToSingle(s + c, d + c);
                }

                for (int c = main; c < kn; c++)
                {
                    d[c] = (float)BitConverter.UInt16BitsToHalf(s[c]);
                }
            }
        }
    }

    /// <summary>y[t, r] (+)= x[t, :kn] · w[r, :kn] for 4 tokens × 4 rows: 16 accumulators.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Tile4x4<TV, TS>(float* x, long xs, float* w, long ws, int kn, float* y, int ys, bool add)
        where TV : unmanaged where TS : ISimd<TV>
    {
        int lanes = TS.Count;
        int main = kn - kn % lanes;
        float* x0 = x, x1 = x + xs, x2 = x + 2 * xs, x3 = x + 3 * xs;
        float* w0 = w, w1 = w + ws, w2 = w + 2 * ws, w3 = w + 3 * ws;
        TV c00 = TS.Zero, c01 = TS.Zero, c02 = TS.Zero, c03 = TS.Zero;
        TV c10 = TS.Zero, c11 = TS.Zero, c12 = TS.Zero, c13 = TS.Zero;
        TV c20 = TS.Zero, c21 = TS.Zero, c22 = TS.Zero, c23 = TS.Zero;
        TV c30 = TS.Zero, c31 = TS.Zero, c32 = TS.Zero, c33 = TS.Zero;
        for (int k = 0; k < main; k += lanes)
        {
            TV v0 = TS.Load(w0 + k), v1 = TS.Load(w1 + k), v2 = TS.Load(w2 + k), v3 = TS.Load(w3 + k);
            TV u = TS.Load(x0 + k);
            c00 = TS.MultiplyAdd(u, v0, c00); c01 = TS.MultiplyAdd(u, v1, c01);
            c02 = TS.MultiplyAdd(u, v2, c02); c03 = TS.MultiplyAdd(u, v3, c03);
            u = TS.Load(x1 + k);
            c10 = TS.MultiplyAdd(u, v0, c10); c11 = TS.MultiplyAdd(u, v1, c11);
            c12 = TS.MultiplyAdd(u, v2, c12); c13 = TS.MultiplyAdd(u, v3, c13);
            u = TS.Load(x2 + k);
            c20 = TS.MultiplyAdd(u, v0, c20); c21 = TS.MultiplyAdd(u, v1, c21);
            c22 = TS.MultiplyAdd(u, v2, c22); c23 = TS.MultiplyAdd(u, v3, c23);
            u = TS.Load(x3 + k);
            c30 = TS.MultiplyAdd(u, v0, c30); c31 = TS.MultiplyAdd(u, v1, c31);
            c32 = TS.MultiplyAdd(u, v2, c32); c33 = TS.MultiplyAdd(u, v3, c33);
        }

        Finish4(TS.Sum(c00), TS.Sum(c01), TS.Sum(c02), TS.Sum(c03), x0, w0, ws, main, kn, y, add);
        Finish4(TS.Sum(c10), TS.Sum(c11), TS.Sum(c12), TS.Sum(c13), x1, w0, ws, main, kn, y + ys, add);
        Finish4(TS.Sum(c20), TS.Sum(c21), TS.Sum(c22), TS.Sum(c23), x2, w0, ws, main, kn, y + 2 * ys, add);
        Finish4(TS.Sum(c30), TS.Sum(c31), TS.Sum(c32), TS.Sum(c33), x3, w0, ws, main, kn, y + 3 * ys, add);
    }

    /// <summary>2 tokens × 4 rows: 8 accumulators (fits 16 registers).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Tile2x4<TV, TS>(float* x, long xs, float* w, long ws, int kn, float* y, int ys, bool add)
        where TV : unmanaged where TS : ISimd<TV>
    {
        int lanes = TS.Count;
        int main = kn - kn % lanes;
        float* x0 = x, x1 = x + xs;
        float* w0 = w, w1 = w + ws, w2 = w + 2 * ws, w3 = w + 3 * ws;
        TV c00 = TS.Zero, c01 = TS.Zero, c02 = TS.Zero, c03 = TS.Zero;
        TV c10 = TS.Zero, c11 = TS.Zero, c12 = TS.Zero, c13 = TS.Zero;
        for (int k = 0; k < main; k += lanes)
        {
            TV v0 = TS.Load(w0 + k), v1 = TS.Load(w1 + k), v2 = TS.Load(w2 + k), v3 = TS.Load(w3 + k);
            TV u = TS.Load(x0 + k);
            c00 = TS.MultiplyAdd(u, v0, c00); c01 = TS.MultiplyAdd(u, v1, c01);
            c02 = TS.MultiplyAdd(u, v2, c02); c03 = TS.MultiplyAdd(u, v3, c03);
            u = TS.Load(x1 + k);
            c10 = TS.MultiplyAdd(u, v0, c10); c11 = TS.MultiplyAdd(u, v1, c11);
            c12 = TS.MultiplyAdd(u, v2, c12); c13 = TS.MultiplyAdd(u, v3, c13);
        }

        Finish4(TS.Sum(c00), TS.Sum(c01), TS.Sum(c02), TS.Sum(c03), x0, w0, ws, main, kn, y, add);
        Finish4(TS.Sum(c10), TS.Sum(c11), TS.Sum(c12), TS.Sum(c13), x1, w0, ws, main, kn, y + ys, add);
    }

    /// <summary>1 token × 4 rows, two accumulators per row (the F32/F16 matvec).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Tile1x4<TV, TS>(float* x, float* w, long ws, int kn, float* y, bool add)
        where TV : unmanaged where TS : ISimd<TV>
    {
        int lanes = TS.Count;
        int main = kn - kn % lanes;
        int pairs = main - main % (2 * lanes);
        float* w0 = w, w1 = w + ws, w2 = w + 2 * ws, w3 = w + 3 * ws;
        TV a0 = TS.Zero, a1 = TS.Zero, a2 = TS.Zero, a3 = TS.Zero;
        TV b0 = TS.Zero, b1 = TS.Zero, b2 = TS.Zero, b3 = TS.Zero;
        int k = 0;
        for (; k < pairs; k += 2 * lanes)
        {
            TV u = TS.Load(x + k), v = TS.Load(x + k + lanes);
            a0 = TS.MultiplyAdd(u, TS.Load(w0 + k), a0); b0 = TS.MultiplyAdd(v, TS.Load(w0 + k + lanes), b0);
            a1 = TS.MultiplyAdd(u, TS.Load(w1 + k), a1); b1 = TS.MultiplyAdd(v, TS.Load(w1 + k + lanes), b1);
            a2 = TS.MultiplyAdd(u, TS.Load(w2 + k), a2); b2 = TS.MultiplyAdd(v, TS.Load(w2 + k + lanes), b2);
            a3 = TS.MultiplyAdd(u, TS.Load(w3 + k), a3); b3 = TS.MultiplyAdd(v, TS.Load(w3 + k + lanes), b3);
        }

        for (; k < main; k += lanes)
        {
            TV u = TS.Load(x + k);
            a0 = TS.MultiplyAdd(u, TS.Load(w0 + k), a0);
            a1 = TS.MultiplyAdd(u, TS.Load(w1 + k), a1);
            a2 = TS.MultiplyAdd(u, TS.Load(w2 + k), a2);
            a3 = TS.MultiplyAdd(u, TS.Load(w3 + k), a3);
        }

        Finish4(TS.Sum(TS.Add(a0, b0)), TS.Sum(TS.Add(a1, b1)), TS.Sum(TS.Add(a2, b2)), TS.Sum(TS.Add(a3, b3)),
            x, w0, ws, main, kn, y, add);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Dot1<TV, TS>(float* x, float* w, int kn, float* y, bool add)
        where TV : unmanaged where TS : ISimd<TV>
    {
        int lanes = TS.Count;
        int main = kn - kn % lanes;
        TV a = TS.Zero;
        for (int k = 0; k < main; k += lanes)
        {
            a = TS.MultiplyAdd(TS.Load(x + k), TS.Load(w + k), a);
        }

        float s = TS.Sum(a);
        for (int k = main; k < kn; k++)
        {
            s += x[k] * w[k];
        }

        Store(y, s, add);
    }

    /// <summary>Adds the scalar column tail [main, kn) to four row sums of one token and stores them.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Finish4(float s0, float s1, float s2, float s3, float* x, float* w0, long ws, int main, int kn,
        float* y, bool add)
    {
        for (int k = main; k < kn; k++)
        {
            float xk = x[k];
            s0 += xk * w0[k];
            s1 += xk * w0[ws + k];
            s2 += xk * w0[2 * ws + k];
            s3 += xk * w0[3 * ws + k];
        }

        Store(y, s0, add);
        Store(y + 1, s1, add);
        Store(y + 2, s2, add);
        Store(y + 3, s3, add);
    }
}

using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Qwen3Sharp.Kernels.Jit;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Kernels;

/// <summary>
/// BF16 prefill products through the generated AVX512_BF16 microkernels (<see cref="Bf16PanelKernels"/>):
/// activations rounded to bf16 once per call (round-to-nearest-even, as llama.cpp does), weights used in place.
/// </summary>
/// <remarks>
/// x [tokenCount, cols] is packed by the pool into panels of <see cref="Bf16PanelKernels.PanelTokens"/> tokens,
/// <c>[panel][cols / 2][panelTokens]</c> dwords (one bf16 pair per token), zero past the last token. A work item is
/// <see cref="TilesPerItem"/> row tiles; for each panel it runs the row tile over the whole K and writes the tile
/// (tokens along the vector) into y. An odd last column is added from managed code (a pair load there would
/// read past the row). Accumulation is float32 in the kernel; only the activations' rounding differs from the
/// managed float32 kernels (relative error ≤ 2⁻⁹ per activation).
/// </remarks>
internal static unsafe class Bf16Prefill
{
    /// <summary>Row tiles per work item: the item's rows stay in L2 while every panel passes over them.</summary>
    internal const int TilesPerItem = 4;

    private static readonly Lazy<Bf16PanelKernels> s_kernels = new(() => new Bf16PanelKernels());

    /// <summary>The process's kernels, generated on first use (a few KB of code, kept for the process's life).</summary>
    internal static Bf16PanelKernels Shared => s_kernels.Value;

    /// <summary>Fewest tokens the dispatcher sends here (one full panel; smaller batches stay on the managed kernels).</summary>
    internal const int MinTokens = 32;

    /// <summary>float32 to bf16, round to nearest even; NaN stays a (quiet) NaN.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static uint ToBf16(float value)
    {
        uint u = BitConverter.SingleToUInt32Bits(value);
        if ((u & 0x7FFF_FFFF) > 0x7F80_0000)
        {
            return (u >> 16) | 0x40;
        }

        return (u + 0x7FFF + ((u >> 16) & 1)) >> 16;
    }

    /// <summary>
    /// destination[p · stride] = bf16(x[2p]) | bf16(x[2p+1]) &lt;&lt; 16 for p &lt; pairs, as <see cref="ToBf16"/> rounds;
    /// 16 pairs per step with 512-bit vectors where they are accelerated (the pair stores stay scalar: they go to one
    /// token's column of the panel).
    /// </summary>
    internal static void PackPairs(float* x, int pairs, uint* destination, int stride)
    {
        int p = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            uint* packed = stackalloc uint[16];
            for (; p + 16 <= pairs; p += 16)
            {
                Vector512<ulong> a = RoundBits(Vector512.Load((uint*)x + 2 * p)).AsUInt64();
                Vector512<ulong> b = RoundBits(Vector512.Load((uint*)x + 2 * p + 16)).AsUInt64();
                // Each 64-bit lane holds one pair's rounded bits (even element low): keep the two upper halves.
                a = ((a >> 16) & Vector512.Create(0xFFFFUL)) | ((a >> 32) & Vector512.Create(0xFFFF_0000UL));
                b = ((b >> 16) & Vector512.Create(0xFFFFUL)) | ((b >> 32) & Vector512.Create(0xFFFF_0000UL));
                Vector512.Narrow(a, b).Store(packed);
                for (int i = 0; i < 16; i++)
                {
                    destination[(long)(p + i) * stride] = packed[i];
                }
            }
        }

        for (; p < pairs; p++)
        {
            destination[(long)p * stride] = ToBf16(x[2 * p]) | (ToBf16(x[2 * p + 1]) << 16);
        }
    }

    /// <summary>float32 bits with the bf16 result of <see cref="ToBf16"/> in the upper 16 bits (lower bits are junk).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<uint> RoundBits(Vector512<uint> u)
    {
        Vector512<uint> rounded = u + Vector512.Create(0x7FFFu) + ((u >> 16) & Vector512<uint>.One);
        Vector512<uint> nan = Vector512.GreaterThan(u & Vector512.Create(0x7FFF_FFFFu), Vector512.Create(0x7F80_0000u));
        return Vector512.ConditionalSelect(nan, u | Vector512.Create(0x0040_0000u), rounded);
    }

    /// <summary>The float32 value of <see cref="ToBf16"/>: what the kernel multiplies by.</summary>
    internal static float RoundToBf16(float value) => BitConverter.UInt32BitsToSingle(ToBf16(value) << 16);

    /// <summary>y (+)= x · wᵀ for BF16 <paramref name="w"/> with the given kernels (checks as <see cref="MatMul.Multiply"/>).</summary>
    internal static void Run(WorkerPool pool, Bf16PanelKernels kernels, ReadOnlySpan<float> x, int tokenCount, in WeightView w,
        Span<float> destination, bool accumulate)
    {
        ArgumentNullException.ThrowIfNull(pool);
        ArgumentNullException.ThrowIfNull(kernels);
        ArgumentOutOfRangeException.ThrowIfNegative(tokenCount);
        if (w.DType != DType.BF16)
        {
            throw new ArgumentException($"the bf16 prefill kernel needs BF16 weights, not {w.DType}", nameof(w));
        }

        int rows = w.RowCount, cols = w.ColCount;
        if (x.Length < (long)tokenCount * cols)
        {
            MatMul.ThrowLength(nameof(x), x.Length, (long)tokenCount * cols);
        }

        if (destination.Length < (long)tokenCount * rows)
        {
            MatMul.ThrowLength(nameof(destination), destination.Length, (long)tokenCount * rows);
        }

        if (tokenCount == 0 || rows == 0)
        {
            return;
        }

        if (cols < 2)
        {
            // No pair to feed the kernel: the managed path (it rounds nothing, which differs only in the last bits).
            MatMul.Run<float, SimdScalar>(pool, x, tokenCount, w, destination, accumulate);
            return;
        }

        int nt = kernels.PanelTokens;
        int pairs = cols / 2;
        int panelCount = (tokenCount + nt - 1) / nt;
        long packedBytes = (long)panelCount * pairs * nt * sizeof(uint);
        long tailBytes = (cols & 1) == 0 ? 0 : (long)tokenCount * sizeof(float);
        byte* shared = (byte*)pool.SharedScratch(packedBytes + tailBytes);
        pool.EnsureWorkerScratch((long)kernels.RowTile * nt * sizeof(float));
        fixed (float* px = x, py = destination)
        {
            var pack = new PackJob
            {
                X = px,
                Packed = (uint*)shared,
                LastColumn = tailBytes == 0 ? null : (float*)(shared + packedBytes),
                TokenCount = tokenCount,
                ColCount = cols,
                PanelTokens = nt,
            };
            pool.Run(ref pack, panelCount);

            int tileRows = kernels.RowTile;
            var job = new PanelJob
            {
                Full = kernels.For(tileRows),
                Tail = rows % tileRows == 0 ? null : kernels.For(rows % tileRows),
                TileRows = tileRows,
                PanelTokens = nt,
                Packed = (uint*)shared,
                LastColumn = pack.LastColumn,
                Weights = (ushort*)w.Data,
                Y = py,
                TokenCount = tokenCount,
                RowCount = rows,
                ColCount = cols,
                Accumulate = accumulate,
                Scratch = pool.WorkerScratchTable,
            };
            int itemRows = TilesPerItem * tileRows;
            pool.Run(ref job, (rows + itemRows - 1) / itemRows);
        }
    }

    /// <summary>x [tokenCount, cols] into bf16 pair panels [panelCount][cols / 2][panelTokens]; an odd last column into LastColumn [tokenCount].</summary>
    private struct PackJob : IPoolJob
    {
        public float* X;
        public uint* Packed;
        public float* LastColumn;
        public int TokenCount, ColCount, PanelTokens;

        public readonly void Execute(int index, int worker)
        {
            int cols = ColCount, nt = PanelTokens, pairs = cols / 2;
            uint* panel = Packed + (long)index * pairs * nt;
            for (int j = 0; j < nt; j++)
            {
                int t = index * nt + j;
                if (t < TokenCount)
                {
                    float* xt = X + (long)t * cols;
                    PackPairs(xt, pairs, panel + j, nt);

                    if (LastColumn != null)
                    {
                        LastColumn[t] = RoundToBf16(xt[cols - 1]);
                    }
                }
                else
                {
                    for (int p = 0; p < pairs; p++)
                    {
                        panel[(long)p * nt + j] = 0;
                    }
                }
            }
        }
    }

    private struct PanelJob : IPoolJob
    {
        public delegate* unmanaged<uint*, ushort*, long, long, float*, void> Full;   // TileRows rows
        public delegate* unmanaged<uint*, ushort*, long, long, float*, void> Tail;   // RowCount % TileRows rows
        public int TileRows, PanelTokens;
        public uint* Packed;      // [panelCount][ColCount / 2][panelTokens]
        public float* LastColumn; // [TokenCount] or null when ColCount is even
        public ushort* Weights;   // [RowCount, ColCount]
        public float* Y;          // [TokenCount, RowCount]
        public int TokenCount, RowCount, ColCount;
        public bool Accumulate;
        public void** Scratch;    // per worker: [RowTile, panelTokens] floats

        public readonly void Execute(int index, int worker)
        {
            int tileRows = TileRows, nt = PanelTokens;
            int r0 = index * TilesPerItem * tileRows, r1 = Math.Min(r0 + TilesPerItem * tileRows, RowCount);
            int cols = ColCount, pairs = cols / 2;
            float* tile = (float*)Scratch[worker];
            for (int t0 = 0; t0 < TokenCount; t0 += nt)
            {
                uint* panel = Packed + (long)t0 * pairs;
                int tokens = Math.Min(nt, TokenCount - t0);
                for (int r = r0; r < r1; r += tileRows)
                {
                    int n = Math.Min(tileRows, r1 - r);
                    ushort* wr = Weights + (long)r * cols;
                    delegate* unmanaged<uint*, ushort*, long, long, float*, void> kernel = n == tileRows ? Full : Tail;
                    kernel(panel, wr, (long)cols * sizeof(ushort), pairs, tile);
                    WriteTile(tile, nt, n, tokens, wr, cols, LastColumn == null ? null : LastColumn + t0,
                        Y + (long)t0 * RowCount + r, RowCount, Accumulate);
                }
            }
        }
    }

    /// <summary>tile [rows][nt] (tokens along a row) to y[t, r], plus the odd last column when there is one.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void WriteTile(float* tile, int nt, int rows, int tokens, ushort* w, int cols, float* lastColumn,
        float* y, int ys, bool accumulate)
    {
        for (int i = 0; i < rows; i++)
        {
            float* ti = tile + i * nt;
            if (lastColumn != null)
            {
                float wl = BitConverter.UInt32BitsToSingle((uint)w[(long)i * cols + cols - 1] << 16);
                for (int j = 0; j < tokens; j++)
                {
                    ti[j] += lastColumn[j] * wl;
                }
            }

            float* yi = y + i;
            if (accumulate)
            {
                for (int j = 0; j < tokens; j++)
                {
                    yi[(long)j * ys] += ti[j];
                }
            }
            else
            {
                for (int j = 0; j < tokens; j++)
                {
                    yi[(long)j * ys] = ti[j];
                }
            }
        }
    }
}

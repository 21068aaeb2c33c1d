using System.Runtime.InteropServices;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Kernels.Reference;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Tests.Kernels;

/// <summary>
/// Q4_0, Q4_K, Q6_K and Q8_0 repacked into 8-row groups (<see cref="DType.Q4_0x8"/>, <see cref="DType.Q4_Kx8"/>,
/// <see cref="DType.Q6_Kx8"/>, <see cref="DType.Q8_0x8"/>; QuantMatMul.Q4x8.cs, Q6x8.cs, Q8x8.cs): the repack keeps every element,
/// the AVX2 kernel equals its scalar twin bit for bit, and both equal the float64 reference of the same integer math
/// and the row-layout int8 kernel to float32 summation order; row counts not multiples of 8, 1..31 tokens, accumulate
/// and overwrite.
/// </summary>
public sealed unsafe class Q4x8MatMulTests
{
    private static readonly int[] TokenCounts = [1, 2, 3, 4, 5, 7, 9, 31];

    // one block, odd block counts, rows short of a group, one row over, Qwen3-1.7B's widths (Q4_K: columns × 8)
    private static readonly (int Rows, int Blocks)[] Shapes = [(1, 1), (3, 2), (8, 1), (9, 3), (17, 5), (37, 64), (13, 192)];

    private static DType Grouped(DType dtype) => dtype switch
    {
        DType.Q4_0 => DType.Q4_0x8,
        DType.Q8_0 => DType.Q8_0x8,
        DType.Q6_K => DType.Q6_Kx8,
        DType.Q5_K => DType.Q5_Kx8,
        _ => DType.Q4_Kx8,
    };

    private static bool Blocks32(DType dtype) => dtype is DType.Q4_0 or DType.Q8_0;

    private static int Columns(DType dtype, int blocks) => blocks * (Blocks32(dtype) ? 32 : 256) / (Blocks32(dtype) || blocks < 64 ? 1 : 8);

    internal static byte* Source(DType dtype, int rows, int cols, int seed) => Blocks32(dtype)
        ? Int8MatMulTests.Quantized(dtype, rows, cols, seed)
        : KQuantInt8Tests.Quantized(dtype, rows, cols, seed);

    internal static byte* Repacked(DType dtype, byte* rows, int rowCount, int cols)
    {
        long bytes = QuantMatMul.RepackedBytes(dtype, rowCount, cols);
        byte* data = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 64);
        new Span<byte>(data, (int)bytes).Fill(0xA5);   // the repack must write every byte, padding included
        QuantMatMul.Repack(dtype, rows, rowCount, cols, data);

        return data;
    }

    [Avx2Theory]
    [InlineData(8 * 5 + 3, 7)]     // a short last group (the scalar loop's zero rows)
    [InlineData(16, 64)]
    [InlineData(5, 3)]             // only a short group
    public void RepackQ8_0x8_TransposedForm_WritesTheScalarFormsBytes(int rows, int blocks)
    {
        int cols = 32 * blocks;
        var rng = new Random(rows * blocks);
        byte[] source = new byte[rows * blocks * 34];
        rng.NextBytes(source);
        long bytes = QuantMatMul.RepackedBytes(DType.Q8_0, rows, cols);
        byte[] scalar = new byte[bytes], transposed = new byte[bytes];
        Array.Fill(scalar, (byte)0xA5);
        Array.Fill(transposed, (byte)0x5A);   // every byte written by both
        fixed (byte* s = source, a = scalar, b = transposed)
        {
            QuantMatMul.RepackQ8_0x8Scalar(s, rows, cols, a, 0);
            QuantMatMul.RepackQ8_0x8Avx2(s, rows, cols, b);
        }

        Assert.Equal(scalar, transposed);
    }

    [Theory]
    [InlineData(DType.Q4_0)]
    [InlineData(DType.Q4_K)]
    [InlineData(DType.Q5_K)]
    [InlineData(DType.Q6_K)]
    [InlineData(DType.Q8_0)]
    public void Repack_KeepsEveryElement_AndDequantizedRowsMatchTheRowLayout(DType dtype)
    {
        foreach (var (rows, blocks) in Shapes)
        {
            int cols = Columns(dtype, blocks);
            byte* source = Source(dtype, rows, cols, rows * 7 + cols);
            byte* packed = Repacked(dtype, source, rows, cols);
            try
            {
                var x8 = new WeightView(packed, Grouped(dtype), rows, cols);
                var original = new WeightView(source, dtype, rows, cols);
                Assert.Equal(QuantMatMul.RepackedBytes(dtype, rows, cols), x8.DataBytes);
                var want = new float[cols];
                var got = new float[cols];
                for (int r = 0; r < rows; r++)
                {
                    fixed (float* pw = want, pg = got)
                    {
                        QuantMatMul.DequantizeRow(original, r, pw);
                        QuantMatMul.DequantizeRow(x8, r, pg);
                    }

                    Assert.Equal(want, got);
                    for (int c = 0; c < cols; c++)
                    {
                        Assert.Equal(QuantScalar.Element(original.Row(r), dtype, c), x8[r, c]);
                    }
                }
            }
            finally
            {
                NativeMemory.AlignedFree(source);
                NativeMemory.AlignedFree(packed);
            }
        }
    }

    [Theory]
    [InlineData(DType.Q4_0, 18)]
    [InlineData(DType.Q8_0, 34)]
    public void Repack_PutsEachBlocksScalesInFrontOfItsCodes_OneStreamPerGroup(DType dtype, int rowBlockBytes)
    {
        // Block k of a group sits at k × (16 + code bytes) from the group's start and begins with the 8 rows' fp16 scales,
        // so a decode walk reads each group front to back: with all scales after the codes, the kernels read a second
        // stream 8 KiB ahead, which the Zen 5's prefetcher served at a third of the speed (QuantMatMul.GroupScaleBytes)
        const int rows = 8 * 3 + 5, blocks = 5, cols = 32 * blocks;
        int blockBytes = 8 * rowBlockBytes;
        byte* source = Source(dtype, rows, cols, 3);
        byte* packed = Repacked(dtype, source, rows, cols);
        try
        {
            Assert.Equal(4L * blocks * blockBytes, QuantMatMul.RepackedBytes(dtype, rows, cols));
            for (int g = 0; g < 4; g++)
            {
                for (int k = 0; k < blocks; k++)
                {
                    ushort* scales = (ushort*)(packed + ((long)g * blocks + k) * blockBytes);
                    for (int i = 0; i < 8; i++)
                    {
                        int r = 8 * g + i;
                        ushort want = r < rows ? *(ushort*)(source + ((long)r * blocks + k) * rowBlockBytes) : (ushort)0;
                        Assert.Equal(want, scales[i]);
                    }
                }
            }
        }
        finally
        {
            NativeMemory.AlignedFree(source);
            NativeMemory.AlignedFree(packed);
        }
    }

    [Theory]
    [InlineData(0x7C00)]   // +inf
    [InlineData(0xFE00)]   // NaN
    public void Q6_KRepack_RefusesAnInfiniteOrNaNSuperBlockScale(int bits)
    {
        byte* source = KQuantInt8Tests.Quantized(DType.Q6_K, 3, 512, 1);
        try
        {
            Assert.True(QuantMatMul.CanRepackQ6_Kx8(source, 3, 512));
            *(ushort*)(source + 2 * 420 + 210 + 208) = (ushort)bits;   // row 2, super-block 1
            Assert.False(QuantMatMul.CanRepackQ6_Kx8(source, 3, 512));
            Assert.True(QuantMatMul.CanRepackQ6_Kx8(source, 2, 512));   // rows 0 and 1 still can
        }
        finally
        {
            NativeMemory.AlignedFree(source);
        }
    }

    /// <summary>
    /// Q6_K at the integer limits: every code 0 (q − 32 = −32) or 63, scales −128 and 127, activations at full scale
    /// (codes ±127), so a group's int16 sums reach 8·32·127 = 32512 and a sub-block's dot 128·32·32·127 &lt; 2^24: the
    /// unsigned partial sums wrap in int16 and the result must still be exact.
    /// </summary>
    [Fact]
    public void Q6_Kx8Kernel_AtTheIntegerLimits_IsExactAndMatchesItsScalarTwin()
    {
        const int rows = 11, cols = 512, superBlocks = cols / 256;
        byte* source = (byte*)NativeMemory.AlignedAlloc((nuint)(rows * superBlocks * 210), 64);
        byte* packed = null;
        using var pool = new WorkerPool(2);
        try
        {
            for (int r = 0; r < rows; r++)
            {
                for (int k = 0; k < superBlocks; k++)
                {
                    byte* block = source + (r * superBlocks + k) * 210;
                    bool low = (r + k) % 2 == 0;    // all codes 0 or all 63
                    new Span<byte>(block, 192).Fill(low ? (byte)0 : (byte)0xFF);
                    for (int g = 0; g < 16; g++)
                    {
                        block[192 + g] = (byte)(sbyte)((g + r) % 3 == 0 ? 127 : -128);
                    }

                    *(ushort*)(block + 208) = BitConverter.HalfToUInt16Bits((Half)(1f / 1024));
                }
            }

            packed = Repacked(DType.Q6_K, source, rows, cols);
            var x8 = new WeightView(packed, DType.Q6_Kx8, rows, cols);
            var original = new WeightView(source, DType.Q6_K, rows, cols);
            foreach (float sign in new[] { 1f, -1f })
            {
                const int tokens = 3;
                float[] x = new float[tokens * cols];
                for (int i = 0; i < x.Length; i++)
                {
                    x[i] = i / cols == 1 ? (i % 2 == 0 ? 1 : -1) : sign;   // token 1 alternates (offsets of both signs)
                }

                var expected = new double[tokens * rows];
                fixed (float* px = x)
                fixed (double* pe = expected)
                {
                    KQuantInt8Tests.Reference(px, tokens, original, pe, null);
                }

                float[] scalar = Run(QuantMatMul.Isa.Scalar, pool, x, tokens, x8, float.NaN, accumulate: false);
                for (int i = 0; i < scalar.Length; i++)
                {
                    Assert.Equal(expected[i], scalar[i], 1e-6 * Math.Abs(expected[i]));   // integer sums × (d·d_x): one rounding per sub-block
                }

                if (QuantMatMul.Best != QuantMatMul.Isa.Scalar)
                {
                    Assert.Equal(scalar, Run(QuantMatMul.Isa.Avx2, pool, x, tokens, x8, float.NaN, accumulate: false));
                    Assert.Equal(scalar.AsSpan(0, rows).ToArray(), Run(QuantMatMul.Isa.Avx2, pool, x.AsSpan(0, cols).ToArray(), 1, x8, 0, accumulate: false));
                }
            }
        }
        finally
        {
            NativeMemory.AlignedFree(source);
            NativeMemory.AlignedFree(packed);
        }
    }

    [Fact]
    public void Repack_RefusesInfiniteOrNaNScales()
    {
        byte* source = Int8MatMulTests.Quantized(DType.Q4_0, 3, 64, 1);
        try
        {
            Assert.True(QuantMatMul.CanRepackQ4_0x8(source, 3, 64));
            *(ushort*)(source + 2 * 36 + 18) = 0x7C00;   // +inf in row 2, block 1
            Assert.False(QuantMatMul.CanRepackQ4_0x8(source, 3, 64));
        }
        finally
        {
            NativeMemory.AlignedFree(source);
        }
    }

    [Theory]
    [InlineData(DType.Q4_0)]
    [InlineData(DType.Q4_K)]
    [InlineData(DType.Q5_K)]
    [InlineData(DType.Q6_K)]
    [InlineData(DType.Q8_0)]
    public void X8Kernel_Avx2AndScalarTwin_AgreeBitForBit_AndMatchTheReferenceAndTheRowKernel(DType dtype)
    {
        using var pool = new WorkerPool(2);
        var rng = new Random(11);
        foreach (var (rows, blocks) in Shapes)
        {
            int cols = Columns(dtype, blocks);
            byte* source = Source(dtype, rows, cols, rows * 31 + cols);
            if (dtype == DType.Q8_0)
            {
                for (int r = 0; r < rows; r += 2)
                {
                    source[r * (cols / 32 * 34) + 2 + r % 32] = 0x80;   // code −128 (files may hold it; our quantizer never writes it)
                }
            }

            byte* packed = Repacked(dtype, source, rows, cols);
            try
            {
                var x8 = new WeightView(packed, Grouped(dtype), rows, cols);
                var original = new WeightView(source, dtype, rows, cols);
                foreach (int tokens in TokenCounts)
                {
                    float[] x = Blocks32(dtype) ? Int8MatMulTests.Activations(rng, tokens * cols) : KQuantInt8Tests.Activations(rng, tokens * cols);
                    var expected = new double[tokens * rows];
                    var magnitude = new double[tokens * rows];
                    fixed (float* px = x)
                    fixed (double* pe = expected, pm = magnitude)
                    {
                        if (Blocks32(dtype))
                        {
                            QuantScalar.Int8MatMul(px, tokens, original, pe, pm);
                        }
                        else
                        {
                            KQuantInt8Tests.Reference(px, tokens, original, pe, pm);
                        }
                    }

                    foreach (bool accumulate in new[] { false, true })
                    {
                        float start = accumulate ? 0.5f : float.NaN;
                        float[] scalar = Run(QuantMatMul.Isa.Scalar, pool, x, tokens, x8, start, accumulate);
                        float[] rowKernel = Run(QuantMatMul.Best, pool, x, tokens, original, start, accumulate);
                        for (int i = 0; i < scalar.Length; i++)
                        {
                            double want = expected[i] + (accumulate ? 0.5 : 0);
                            double tolerance = 1e-6 * magnitude[i] + 1e-6;
                            string at = $"{dtype} {rows}x{cols} tokens {tokens} acc {accumulate} [{i}]";
                            Assert.True(Math.Abs(scalar[i] - want) <= tolerance, $"{at}: {scalar[i]} vs {want} (tol {tolerance:G3})");
                            Assert.True(Math.Abs(scalar[i] - rowKernel[i]) <= 2 * tolerance, $"{at}: x8 {scalar[i]} vs rows {rowKernel[i]}");
                        }

                        if (QuantMatMul.Best != QuantMatMul.Isa.Scalar)
                        {
                            float[] avx2 = Run(QuantMatMul.Isa.Avx2, pool, x, tokens, x8, start, accumulate);
                            Assert.Equal(scalar, avx2);   // bit for bit (NaN-free: the kernel writes every row)
                        }
                    }

                    if (tokens > 1 && QuantMatMul.Best != QuantMatMul.Isa.Scalar)
                    {
                        // each token of a batch has the bits it has when decoded alone (every token: Q6_K; the last: the others)
                        float[] batch = Run(QuantMatMul.Isa.Avx2, pool, x, tokens, x8, 0, accumulate: false);
                        for (int t = dtype == DType.Q6_K ? 0 : tokens - 1; t < tokens; t++)
                        {
                            float[] alone = Run(QuantMatMul.Isa.Avx2, pool, x.AsSpan(t * cols, cols).ToArray(), 1, x8, 0, accumulate: false);
                            Assert.Equal(alone, batch.AsSpan(t * rows, rows).ToArray());
                        }
                    }
                }
            }
            finally
            {
                NativeMemory.AlignedFree(source);
                NativeMemory.AlignedFree(packed);
            }
        }
    }

    [Theory]
    [InlineData(DType.Q8_0)]
    [InlineData(DType.Q4_0)]
    [InlineData(DType.Q6_K)]
    public void X8Decode_TwoGroupsPerPass_MatchesTheScalarTwinAndBatchesBitForBit(DType dtype)
    {
        // One token takes two groups per pass (DotGroupPair*_256) within a work item: 26 groups, the last one 5 rows,
        // make items of 3 (a pair and a single) and a last item of a pair whose second group is short.
        const int rows = 8 * 25 + 5;
        int cols = dtype == DType.Q6_K ? 2 * 256 : 4 * 32;
        using var pool = new WorkerPool(2);
        var rng = new Random(17);
        byte* source = Source(dtype, rows, cols, 99);
        byte* packed = Repacked(dtype, source, rows, cols);
        bool savedQ6 = QuantMatMul.Q6PairWalk;
        QuantMatMul.Q6PairWalk = true;   // Q6_K's pair walk is the AVX2 machines' choice: reach it everywhere
        try
        {
            var x8 = new WeightView(packed, Grouped(dtype), rows, cols);
            float[] x = Int8MatMulTests.Activations(rng, 3 * cols);
            foreach (bool accumulate in new[] { false, true })
            {
                float start = accumulate ? 0.5f : float.NaN;
                float[] one = x.AsSpan(0, cols).ToArray();
                // QuantMatMul.Best is AVX2 where it is supported (the pair path); under DOTNET_EnableAVX2=0 the scalar twin
                Assert.Equal(Run(QuantMatMul.Isa.Scalar, pool, one, 1, x8, start, accumulate), Run(QuantMatMul.Best, pool, one, 1, x8, start, accumulate));
                float[] batch = Run(QuantMatMul.Best, pool, x, 3, x8, start, accumulate);   // the multi-token kernel
                Assert.Equal(Run(QuantMatMul.Best, pool, one, 1, x8, start, accumulate), batch.AsSpan(0, rows).ToArray());
            }
        }
        finally
        {
            QuantMatMul.Q6PairWalk = savedQ6;
            NativeMemory.AlignedFree(source);
            NativeMemory.AlignedFree(packed);
        }
    }

    [Theory]
    [InlineData(DType.Q8_0, 8 * 23 + 5, 1)]   // items of 4 groups (one per quarter), the matrix's short last group in a full item
    [InlineData(DType.Q8_0, 8 * 31 + 5, 2)]   // items of 8 groups (two per quarter: 32 groups give 2 threads 2 items each)
    [InlineData(DType.Q8_0, 8 * 33 + 5, 2)]   // and a short last item of 2 groups, which takes the pair walk
    [InlineData(DType.Q8_0, 8 * 23 + 5, 9)]   // longer streams asked for than 24 groups allow: capped at one group per quarter
    [InlineData(DType.Q4_0, 8 * 23 + 5, 1)]
    [InlineData(DType.Q4_0, 8 * 33 + 5, 2)]
    public void X8Decode_FourStreams_MatchesTheScalarTwinAndThePairWalkBitForBit(DType dtype, int rows, int quarterGroups)
    {
        // QuantMatMul.FourStreamDecode: each item's quarters side by side (DotGroupQuad*_256). Real shapes make quarters
        // of 64 KiB; FourStreamBytes is shortened so that 128 columns reach every case of the walk.
        const int cols = 4 * 32;
        using var pool = new WorkerPool(2);
        byte* source = Source(dtype, rows, cols, 23);
        byte* packed = Repacked(dtype, source, rows, cols);
        try
        {
            AssertFourStreamsMatchScalarAndPairWalk(pool, new WeightView(packed, Grouped(dtype), rows, cols), Int8MatMulTests.Activations(new Random(rows), cols),
                quarterGroups);
        }
        finally
        {
            NativeMemory.AlignedFree(source);
            NativeMemory.AlignedFree(packed);
        }
    }

    /// <summary>
    /// One token through the four-stream walk with <paramref name="quarterGroups"/> groups per quarter (FourStreamBytes
    /// shortened to reach it on a small matrix) equals, bit for bit, the scalar twin and the pair walk, written and
    /// accumulated (also for the affine groups: AffineX8Tests).
    /// </summary>
    internal static void AssertFourStreamsMatchScalarAndPairWalk(WorkerPool pool, in WeightView x8, float[] one, int quarterGroups)
    {
        long saved = QuantMatMul.FourStreamBytes;
        try
        {
            QuantMatMul.FourStreamBytes = (quarterGroups - 1) * QuantMatMul.GroupRows * x8.RowBytes + 1;
            foreach (bool accumulate in new[] { false, true })
            {
                float start = accumulate ? 0.5f : float.NaN;
                float[] four = Run(QuantMatMul.Best, pool, one, 1, x8, start, accumulate);
                Assert.Equal(Run(QuantMatMul.Isa.Scalar, pool, one, 1, x8, start, accumulate), four);
                QuantMatMul.FourStreamDecode = false;
                try
                {
                    Assert.Equal(Run(QuantMatMul.Best, pool, one, 1, x8, start, accumulate), four);
                }
                finally
                {
                    QuantMatMul.FourStreamDecode = true;
                }
            }
        }
        finally
        {
            QuantMatMul.FourStreamBytes = saved;
        }
    }

    [Theory]
    [InlineData(DType.Q4_0)]
    [InlineData(DType.Q4_K)]
    [InlineData(DType.Q5_K)]
    [InlineData(DType.Q6_K)]
    [InlineData(DType.Q8_0)]
    public void Prefill_Int8TokenTiles_GiveEachTokenItsDecodeBits(DType dtype)
    {
        // A product of several tokens (a batched decode step, a prefill) with a group matrix takes the int8 path in tiles
        // of QuantMatMul.TileTokens tokens where AVX2 runs (QWEN3_QUANT_PREFILL's default): 70 tokens = 31 + 31 + 8, and
        // every token's row has the bits of its own one-token (decode) product. On AVX-512 Q4_0 and the K-quants take the token-pair tiles
        // of 32 tokens (QuantMatMul.PairTiles): 71 = 32 + 32 + 7, an odd tile's last token beside zeros. Without AVX2 it
        // takes the float panels from 32 tokens on (fewer stay on the int8 path, the scalar twins): the float64 product of
        // the dequantized weights to float32 rounding.
        const int rows = 8 * 9 + 3;
        int cols = Blocks32(dtype) ? 4 * 32 : 2 * 256;
        using var pool = new WorkerPool(2);
        byte* source = Source(dtype, rows, cols, 7);
        byte* packed = Repacked(dtype, source, rows, cols);
        try
        {
            var w = new WeightView(packed, Grouped(dtype), rows, cols);
            foreach (int tokens in new[] { 2, 3, 32, 33, 70, 71 })
            {
                float[] x = Int8MatMulTests.Activations(new Random(tokens), tokens * cols);
                var prefill = new float[tokens * rows];
                MatMul.Multiply(pool, x, tokens, w, prefill, PrefillKernel.Managed, QuantDecodeKernel.Int8);
                for (int t = 0; t < tokens; t++)
                {
                    var alone = new float[rows];
                    MatMul.Multiply(pool, x.AsSpan(t * cols, cols), 1, w, alone, PrefillKernel.Managed, QuantDecodeKernel.Int8);
                    float[] row = prefill.AsSpan(t * rows, rows).ToArray();
                    if (MatMul.PrefillsInt8(w.DType) || tokens < MatMul.QuantPanelTokens)   // small batches: the int8 path on every ISA
                    {
                        Assert.Equal(alone, row);
                    }
                    else
                    {
                        // the float panels: float32 activations against the dequantized weights, to float32 rounding
                        var weights = new float[cols];
                        for (int i = 0; i < rows; i++)
                        {
                            fixed (float* pw = weights)
                            {
                                QuantMatMul.DequantizeRow(w, i, pw);
                            }

                            double want = 0, magnitude = 0;
                            for (int c = 0; c < cols; c++)
                            {
                                want += (double)weights[c] * x[t * cols + c];
                                magnitude += Math.Abs((double)weights[c] * x[t * cols + c]);
                            }

                            Assert.True(Math.Abs(row[i] - want) <= 1e-5 * magnitude + 1e-6, $"{dtype} token {t} row {i}: {row[i]} vs {want}");
                        }
                    }
                }
            }
        }
        finally
        {
            NativeMemory.AlignedFree(source);
            NativeMemory.AlignedFree(packed);
        }
    }

    [VnniTheory]
    [InlineData(DType.Q8_0)]
    [InlineData(DType.Q4_0)]
    [InlineData(DType.Q4_K)]
    [InlineData(DType.Q5_K)]
    [InlineData(DType.Q6_K)]
    public void X8_AvxVnniForms_GiveTheBitsOfTheAvx2Forms_InEveryWalk(DType dtype)
    {
        // QuantMatMul.Vnni.cs: vpdpbusd on the sign-flipped Q8_0 codes less 128·Σx per block, on Q4_0's nibbles less 8·Σx,
        // on Q4_K's nibbles and Q5_K's 5-bit codes per sub-block, on Q6_K's 16-element groups times their scales (the K-quants have no four-stream
        // walk; Q4_K has no pair walk either).
        // The block dot is exact either way, so the VNNI forms must give the AVX2 forms' bits: one group, two per pass,
        // four streams (FourStreamBytes shortened), and token tiles (prefill, 31 + 9 tokens), written and accumulated,
        // with Q8_0 code −128 in the weights and ±127 in the activations (Activations' 127·0.25 blocks).
        const int rows = 8 * 33 + 5;
        int cols = Blocks32(dtype) ? 6 * 32 : 2 * 256;
        using var pool = new WorkerPool(2);
        byte* source = Source(dtype, rows, cols, 41);
        for (int r = 0; dtype == DType.Q8_0 && r < rows; r += 3)
        {
            source[r * (cols / 32 * 34) + 2 + r % 32] = 0x80;
        }

        byte* packed = Repacked(dtype, source, rows, cols);
        long savedStream = QuantMatMul.FourStreamBytes;
        bool savedVnni = QuantMatMul.UseVnni;
        try
        {
            var w = new WeightView(packed, Grouped(dtype), rows, cols);
            float[] x = Int8MatMulTests.Activations(new Random(43), 40 * cols);
            foreach ((bool fourStreams, bool pairs) in new[] { (true, true), (false, true), (false, false) })
            {
                QuantMatMul.FourStreamDecode = fourStreams;
                QuantMatMul.TwoGroupsPerPass = pairs;
                QuantMatMul.FourStreamBytes = 2 * QuantMatMul.GroupRows * w.RowBytes;   // quarters of 2 groups
                foreach (int tokens in new[] { 1, 2, 3, 31, 40 })
                {
                    float[] xt = x.AsSpan(0, tokens * cols).ToArray();
                    foreach (bool accumulate in new[] { false, true })
                    {
                        float start = accumulate ? 0.5f : float.NaN;
                        QuantMatMul.UseVnni = false;
                        float[] avx2 = Run(QuantMatMul.Isa.Avx2, pool, xt, tokens, w, start, accumulate);
                        QuantMatMul.UseVnni = true;
                        float[] vnni = Run(QuantMatMul.Isa.Avx2, pool, xt, tokens, w, start, accumulate);
                        Assert.Equal(avx2, vnni);
                        if (tokens == 1)
                        {
                            Assert.Equal(Run(QuantMatMul.Isa.Scalar, pool, xt, tokens, w, start, accumulate), vnni);
                        }
                    }
                }
            }
        }
        finally
        {
            QuantMatMul.UseVnni = savedVnni;
            QuantMatMul.FourStreamDecode = true;
            QuantMatMul.TwoGroupsPerPass = true;
            QuantMatMul.FourStreamBytes = savedStream;
            NativeMemory.AlignedFree(source);
            NativeMemory.AlignedFree(packed);
        }
    }

    private static float[] Run(QuantMatMul.Isa isa, WorkerPool pool, float[] x, int tokens, in WeightView w, float start, bool accumulate)
    {
        var y = new float[tokens * w.RowCount];
        Array.Fill(y, start);
        QuantMatMul.Run(isa, pool, x, tokens, w, y, accumulate, QuantDecodeKernel.Int8);
        return y;
    }
}

/// <summary>A theory that runs AVX2 code; skipped where the CPU (or the runtime's ISA switches) lack AVX2.</summary>
public sealed class Avx2TheoryAttribute : TheoryAttribute
{
    public Avx2TheoryAttribute()
    {
        if (!System.Runtime.Intrinsics.X86.Avx2.IsSupported)
        {
            Skip = "needs AVX2; this CPU or the runtime's ISA switches (DOTNET_EnableAVX2=0) lack it";
        }
    }
}

/// <summary>A theory that runs the AVX-VNNI kernels; skipped where the CPU (or the runtime's ISA switches) lack AVX-VNNI.</summary>
public sealed class VnniTheoryAttribute : TheoryAttribute
{
    public VnniTheoryAttribute()
    {
        if (!System.Runtime.Intrinsics.X86.AvxVnni.IsSupported)
        {
            Skip = "needs AVX-VNNI (Zen 5, Intel since Alder Lake); this CPU or the runtime's ISA switches lack it";
        }
    }
}

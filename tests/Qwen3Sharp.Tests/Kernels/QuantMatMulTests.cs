using System.Runtime.InteropServices;
using Qwen3Sharp.Kernels;
using Qwen3Sharp.Kernels.Reference;
using Qwen3Sharp.Tensors;

namespace Qwen3Sharp.Tests.Kernels;

/// <summary>Q8_0 / Q4_0 / Q4_K / Q5_K / Q6_K products against the float64 scalar twin on the dequantized weights, on every ISA the machine has.</summary>
public sealed unsafe class QuantMatMulTests
{
    private static readonly int[] TokenCounts = [1, 2, 3, 4, 5, 9];

    // Odd row counts (not multiples of the 16-row chunk), one block, a few blocks, Qwen3-1.7B's width.
    private static readonly (int Rows, int Cols)[] Shapes = [(1, 32), (3, 64), (17, 96), (37, 160), (19, 2048)];

    // K-quants: one super-block, several, Qwen3-1.7B's width; odd row counts.
    private static readonly (int Rows, int Cols)[] KShapes = [(1, 256), (3, 512), (17, 768), (37, 256), (19, 2048)];

    private static readonly DType[] KFormats = [DType.Q4_K, DType.Q5_K, DType.Q6_K];

    public static TheoryData<DType, string> Cases()
    {
        var data = new TheoryData<DType, string>();
        foreach (DType d in new[] { DType.Q8_0, DType.Q4_0, DType.Q4_K, DType.Q5_K, DType.Q6_K })
        {
            data.Add(d, nameof(QuantMatMul.Isa.Scalar));
            data.Add(d, nameof(QuantMatMul.Isa.Avx2));
            data.Add(d, nameof(QuantMatMul.Isa.Avx512));
        }

        return data;
    }

    private static bool Supported(QuantMatMul.Isa isa) => isa switch
    {
        QuantMatMul.Isa.Avx512 => QuantMatMul.Best == QuantMatMul.Isa.Avx512,
        QuantMatMul.Isa.Avx2 => QuantMatMul.Best != QuantMatMul.Isa.Scalar,
        _ => true,
    };

    /// <summary>Random weights quantized with llama.cpp's reference rounding (one matrix, native memory).</summary>
    private sealed class QuantMatrix : IDisposable
    {
        public QuantMatrix(DType dtype, int rows, int cols, int seed)
        {
            var rng = new Random(seed);
            long rowBytes = dtype.RowBytes(cols);
            Data = (byte*)NativeMemory.AlignedAlloc((nuint)(rows * rowBytes), 64);
            View = new WeightView(Data, dtype, rows, cols);
            if (dtype.IsKQuant())
            {
                FillKBlocks(rng, dtype, Data, rows * rowBytes / dtype.BlockBytes());
                return;
            }

            var f = new float[cols];
            fixed (float* pf = f)
            {
                for (int r = 0; r < rows; r++)
                {
                    for (int c = 0; c < cols; c++)
                    {
                        f[c] = (float)(rng.NextDouble() * 2 - 1) * (r % 3 == 0 ? 0.01f : 1f);
                    }

                    if (dtype == DType.Q8_0)
                    {
                        QuantScalar.QuantizeRowQ8_0(pf, cols, Data + r * rowBytes);
                    }
                    else
                    {
                        QuantScalar.QuantizeRowQ4_0(pf, cols, Data + r * rowBytes);
                    }
                }
            }
        }

        public byte* Data { get; }

        public WeightView View { get; }

        public void Dispose() => NativeMemory.AlignedFree(Data);
    }

    /// <summary>
    /// K-quant super-blocks of random bytes (every bit pattern is a valid code, scale and min) with finite fp16 super-scales
    /// sized so the weights are of order one; the row's sign of d varies as it may in real files.
    /// </summary>
    internal static void FillKBlocks(Random rng, DType dtype, byte* data, long blockCount)
    {
        rng.NextBytes(new Span<byte>(data, (int)(blockCount * dtype.BlockBytes())));
        for (long b = 0; b < blockCount; b++)
        {
            byte* block = data + b * dtype.BlockBytes();
            float sign = rng.Next(2) == 0 ? 1 : -1;
            if (dtype == DType.Q6_K)
            {
                *(Half*)(block + 208) = (Half)(sign * (0.5f + rng.NextSingle()) / (64 * 32));
            }
            else
            {
                *(Half*)block = (Half)(sign * (0.5f + rng.NextSingle()) / (32 * 16));
                *(Half*)(block + 2) = (Half)((0.5f + rng.NextSingle()) / (32 * 16));
            }
        }
    }

    [Theory, MemberData(nameof(Cases))]
    public void Matches_the_float64_reference_on_dequantized_weights(DType dtype, string isaName)
    {
        var isa = Enum.Parse<QuantMatMul.Isa>(isaName);
        if (!Supported(isa))
        {
            return;   // this ISA is checked on machines (and CI reruns) that have it
        }

        using var pool = new WorkerPool(2);
        var rng = new Random(7);
        foreach (var (rows, cols) in dtype.IsKQuant() ? KShapes : Shapes)
        {
            using var m = new QuantMatrix(dtype, rows, cols, rows * 31 + cols);
            foreach (int tokens in TokenCounts)
            {
                var x = new float[tokens * cols];
                for (int i = 0; i < x.Length; i++)
                {
                    x[i] = (float)(rng.NextDouble() * 2 - 1);
                }

                var expected = new double[tokens * rows];
                var magnitude = new double[tokens * rows];   // Σ |x·w|: the float32 rounding scales with it
                fixed (float* px = x)
                fixed (double* pe = expected)
                {
                    QuantScalar.MatMul(px, tokens, m.View, pe);
                }

                for (int t = 0; t < tokens; t++)
                {
                    for (int r = 0; r < rows; r++)
                    {
                        for (int c = 0; c < cols; c++)
                        {
                            magnitude[t * rows + r] += Math.Abs(x[t * cols + c] * m.View[r, c]);
                        }
                    }
                }

                foreach (bool accumulate in new[] { false, true })
                {
                    var y = new float[tokens * rows];
                    Array.Fill(y, accumulate ? 0.5f : float.NaN);
                    QuantMatMul.Run(isa, pool, x, tokens, m.View, y, accumulate);
                    for (int i = 0; i < y.Length; i++)
                    {
                        double want = expected[i] + (accumulate ? 0.5 : 0);
                        double scale = dtype.IsKQuant() ? 2e-6 * magnitude[i] + 1e-6 : 1e-5 * Math.Sqrt(cols) + 1e-6;
                        Assert.True(Math.Abs(y[i] - want) <= scale,
                            $"{dtype} {isa} {rows}x{cols} tokens {tokens} acc {accumulate} [{i}]: {y[i]} vs {want}");
                    }
                }
            }
        }
    }

    [Theory]
    [InlineData(DType.Q8_0, 96)]
    [InlineData(DType.Q4_0, 160)]
    [InlineData(DType.Q4_K, 512)]
    [InlineData(DType.Q5_K, 256)]
    [InlineData(DType.Q6_K, 768)]
    public void Prefill_batches_go_through_the_panels_and_match_the_reference(DType dtype, int cols)
    {
        using var pool = new WorkerPool(2);
        using var m = new QuantMatrix(dtype, 53, cols, 5);   // 53 rows: a full 48-row panel block and a partial one
        var rng = new Random(11);
        foreach (int tokens in new[] { MatMul.QuantPanelTokens, 45, 70 })
        {
            var x = new float[tokens * cols];
            for (int i = 0; i < x.Length; i++)
            {
                x[i] = (float)(rng.NextDouble() * 2 - 1);
            }

            var expected = new double[tokens * m.View.RowCount];
            fixed (float* px = x)
            fixed (double* pe = expected)
            {
                QuantScalar.MatMul(px, tokens, m.View, pe);
            }

            foreach (bool accumulate in new[] { false, true })
            {
                var y = new float[tokens * m.View.RowCount];
                Array.Fill(y, accumulate ? 0.5f : float.NaN);
                if (accumulate)
                {
                    MatMul.MultiplyAdd(pool, x, tokens, m.View, y);
                }
                else
                {
                    MatMul.Multiply(pool, x, tokens, m.View, y);
                }

                for (int i = 0; i < y.Length; i++)
                {
                    double want = expected[i] + (accumulate ? 0.5 : 0);
                    Assert.True(Math.Abs(y[i] - want) <= 1e-4 * Math.Sqrt(cols) + 1e-5, $"{dtype} tokens {tokens} acc {accumulate} [{i}]: {y[i]} vs {want}");
                }
            }
        }
    }

    [Theory]
    [InlineData(DType.Q8_0, 128)]
    [InlineData(DType.Q4_0, 128)]
    [InlineData(DType.Q4_K, 512)]
    [InlineData(DType.Q5_K, 512)]
    [InlineData(DType.Q6_K, 512)]
    public void MatMul_entry_point_and_embedding_gather_handle_block_formats(DType dtype, int cols)
    {
        using var pool = new WorkerPool(2);
        using var m = new QuantMatrix(dtype, 21, cols, 3);
        var x = new float[3 * cols];
        for (int i = 0; i < x.Length; i++)
        {
            x[i] = MathF.Sin(i * 0.37f);
        }

        var y = new float[3 * 21];
        MatMul.Multiply(pool, x, 3, m.View, y);
        var expected = new double[3 * 21];
        fixed (float* px = x)
        fixed (double* pe = expected)
        {
            if (KernelSelection.QuantDecode == QuantDecodeKernel.Int8 && dtype.IsKQuant())
            {
                KQuantInt8Tests.Reference(px, 3, m.View, pe, null);   // the default decode path quantizes the activations
            }
            else if (KernelSelection.QuantDecode == QuantDecodeKernel.Int8 && QuantMatMul.HasInt8Kernel(dtype))
            {
                QuantScalar.Int8MatMul(px, 3, m.View, pe);   // the default decode path quantizes the activations
            }
            else
            {
                QuantScalar.MatMul(px, 3, m.View, pe);
            }
        }

        for (int i = 0; i < y.Length; i++)
        {
            Assert.Equal(expected[i], y[i], 1e-4 * Math.Max(1, Math.Abs(expected[i])));
        }

        var rows = new float[2 * cols];
        Embedding.Gather(m.View, [20, 0], rows);
        for (int c = 0; c < cols; c++)
        {
            Assert.Equal(m.View[20, c], rows[c]);             // bit-equal: both follow ggml's order of operations
            Assert.Equal(m.View[0, c], rows[cols + c]);
        }
    }

    [Theory]
    [InlineData(DType.Q4_K)]
    [InlineData(DType.Q5_K)]
    [InlineData(DType.Q6_K)]
    public void K_quant_rows_must_be_whole_super_blocks(DType dtype)
    {
        using var pool = new WorkerPool(1);
        byte* data = stackalloc byte[dtype.BlockBytes()];
        var w = new WeightView(data, dtype, 1, 128);
        var e = Assert.Throws<ArgumentException>(() => QuantMatMul.Run(pool, new float[128], 1, w, new float[1], false));
        Assert.Contains("multiple of 256", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void K_quant_layouts_follow_ggml_on_hand_made_super_blocks()
    {
        // Q4_K: d = 0.5, dmin = 0.25; sub-block 1 (elements 32..63, high nibbles of bytes 0..31) has scale 3, min 2
        // (bytes 1 and 5, low six bits); sub-block 6 (elements 192..223, low nibbles of bytes 96..127) has scale
        // 0x2A = 42 (low nibble 0xA in byte 10, high two bits 0b10 in byte 2's top bits) and min 0x15 = 21 (byte 10's
        // high nibble 0x5, top bits 0b01 of byte 6).
        byte* q4 = stackalloc byte[144];
        new Span<byte>(q4, 144).Clear();
        *(Half*)q4 = (Half)0.5f;
        *(Half*)(q4 + 2) = (Half)0.25f;
        q4[4 + 1] = 3;
        q4[4 + 5] = 2;
        q4[4 + 10] = 0x5A;
        q4[4 + 2] = 0b10 << 6;
        q4[4 + 6] = 0b01 << 6;
        q4[16 + 7] = 0x9C;        // element 7: low nibble 12 (sub-block 0: scale 0, min 0); element 39: high nibble 9
        q4[16 + 96 + 5] = 0x0B;   // element 197: low nibble 11 in sub-block 6
        Assert.Equal(0f, QuantScalar.Element(q4, DType.Q4_K, 7));
        Assert.Equal(0.5f * 3 * 9 - 0.25f * 2, QuantScalar.Element(q4, DType.Q4_K, 39));
        Assert.Equal(-0.25f * 2, QuantScalar.Element(q4, DType.Q4_K, 40));
        Assert.Equal(0.5f * 42 * 11 - 0.25f * 21, QuantScalar.Element(q4, DType.Q4_K, 197));

        // Q5_K: the same scales; qh (bytes 16..47) bit 2c of byte l sets the fifth bit of element 64c + l, bit 2c + 1
        // that of element 64c + 32 + l; the low nibbles move to bytes 48..175.
        byte* q5 = stackalloc byte[176];
        new Span<byte>(q5, 176).Clear();
        new Span<byte>(q4, 16).CopyTo(new Span<byte>(q5, 16));
        q5[48 + 7] = 0x9C;
        q5[16 + 7] = 0b10;        // bit 1: element 32 + 7 = 39 gets +16
        q5[16 + 5] = 1 << 6;      // bit 6 (chunk 3, low): element 192 + 5 = 197 gets +16
        q5[48 + 96 + 5] = 0x0B;
        Assert.Equal(0.5f * 3 * (9 + 16) - 0.25f * 2, QuantScalar.Element(q5, DType.Q5_K, 39));
        Assert.Equal(0.5f * 42 * (11 + 16) - 0.25f * 21, QuantScalar.Element(q5, DType.Q5_K, 197));
        Assert.Equal(0f, QuantScalar.Element(q5, DType.Q5_K, 5));

        // Q6_K: d = 0.125 at byte 208, int8 scales at 192. Element 128 + 64 + 3 = 195 (half 1, part 2): high nibble of
        // ql[64 + 3], qh[128 + 32 + 3] bits 4-5, scale 195 / 16 = 12.
        byte* q6 = stackalloc byte[210];
        new Span<byte>(q6, 210).Clear();
        *(Half*)(q6 + 208) = (Half)0.125f;
        ((sbyte*)(q6 + 192))[12] = -5;
        q6[64 + 3] = 0x70;        // high nibble 7
        q6[160 + 3] = 0b10 << 4;  // high part 2 → q = 7 | 32 = 39
        Assert.Equal(0.125f * -5 * (39 - 32), QuantScalar.Element(q6, DType.Q6_K, 195));
        Assert.Equal(0f, QuantScalar.Element(q6, DType.Q6_K, 3));   // scale 0

        float* row = stackalloc float[256];
        foreach ((DType t, nint p) in new[] { (DType.Q4_K, (nint)q4), (DType.Q5_K, (nint)q5), (DType.Q6_K, (nint)q6) })
        {
            QuantMatMul.DequantizeRow((byte*)p, t, 256, row);
            for (int j = 0; j < 256; j++)
            {
                Assert.Equal(QuantScalar.Element((byte*)p, t, j), row[j]);
            }
        }
    }

    [Fact]
    public void Half_to_single_without_a_call_equals_the_runtime_conversion_for_all_65536_values()
    {
        for (int h = 0; h < 65536; h++)
        {
            float expected = (float)BitConverter.UInt16BitsToHalf((ushort)h), actual = QuantMatMul.HalfToSingle((ushort)h);
            Assert.True(BitConverter.SingleToUInt32Bits(expected) == BitConverter.SingleToUInt32Bits(actual) || (float.IsNaN(expected) && float.IsNaN(actual)),
                $"0x{h:X4}: {actual} vs {expected}");
        }
    }

    [Theory]
    [InlineData(DType.Q4_K)]
    [InlineData(DType.Q5_K)]
    [InlineData(DType.Q6_K)]
    public void Super_block_dequantization_equals_the_scalar_twin_bit_for_bit(DType dtype)
    {
        using var m = new QuantMatrix(dtype, 7, 1024, 11);
        var row = new float[1024];
        fixed (float* pr = row)
        {
            for (int r = 0; r < m.View.RowCount; r++)
            {
                QuantMatMul.DequantizeRow(m.View.Row(r), dtype, 1024, pr);
                for (int c = 0; c < 1024; c++)
                {
                    Assert.Equal(QuantScalar.Element(m.View.Row(r), dtype, c), row[c]);
                }
            }
        }
    }

    [Fact]
    public void Quantizers_follow_llama_cpp_rounding_on_a_known_block()
    {
        // Block 0..31 / 31 · 2 − 1 → Q8_0: d = 1/127, codes round(x·127) half away from zero.
        var v = new float[32];
        for (int j = 0; j < 32; j++)
        {
            v[j] = j / 31f * 2 - 1;
        }

        byte* q8 = stackalloc byte[34];
        byte* q4 = stackalloc byte[18];
        fixed (float* pv = v)
        {
            QuantScalar.QuantizeRowQ8_0(pv, 32, q8);
            QuantScalar.QuantizeRowQ4_0(pv, 32, q4);
        }

        Assert.Equal((Half)(1f / 127f), BitConverter.UInt16BitsToHalf(*(ushort*)q8));
        Assert.Equal(-127, ((sbyte*)(q8 + 2))[0]);
        Assert.Equal(127, ((sbyte*)(q8 + 2))[31]);
        // Q4_0: the largest magnitude is +1 (last element, after −1 at j = 0 ties: the first strictly greater wins → −1),
        // so d = −1 / −8 = 0.125 and code(−1) = min(15, trunc(−1 / 0.125 + 8.5)) = 0.
        Assert.Equal((Half)0.125f, BitConverter.UInt16BitsToHalf(*(ushort*)q4));
        Assert.Equal(0, q4[2] & 0xF);
        Assert.Equal(15, q4[2 + 15] >> 4);   // element 31 = +1 → trunc(8 + 8.5) = 16 → clamped to 15
    }
}
